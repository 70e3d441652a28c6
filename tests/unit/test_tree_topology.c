/* Unit tests of src/tree/tree_topology.c: the node list parser, the tree over it, the ports. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above first. */
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tree_topology.h"

#define ERRLEN 256

/* expr expands to the space-separated names of want. */
static void assert_expands(const char *expr, const char *want)
{
	struct pl_hostlist hl;
	char err[ERRLEN] = "", got[4096] = "";
	size_t len = 0;

	if (pl_hostlist_expand(expr, &hl, err, sizeof(err)) < 0)
		fail_msg("'%s': %s", expr, err);
	for (size_t i = 0; i < hl.n; i++)
		len += (size_t)snprintf(got + len, sizeof(got) - len, "%s%s", i ? " " : "",
					hl.names[i]);
	assert_string_equal(got, want);
	pl_hostlist_free(&hl);
}

static void assert_refused(const char *expr, const char *want_err)
{
	struct pl_hostlist hl;
	char err[ERRLEN] = "";

	if (pl_hostlist_expand(expr, &hl, err, sizeof(err)) == 0)
		fail_msg("'%s' was accepted (%zu names)", expr, hl.n);
	assert_int_equal(hl.n, 0);
	assert_null(hl.names);
	if (want_err)
		assert_string_equal(err, want_err);
	else
		assert_true(strncmp(err, "node list: ", 11) == 0);
	pl_hostlist_free(&hl);
}

static void test_plain_names_and_ranges(void **state)
{
	(void)state;
	assert_expands("node1", "node1");
	assert_expands("node[1-3,7],gpu05", "node1 node2 node3 node7 gpu05");
	assert_expands("a,b,c", "a b c");
	assert_expands("n[7]", "n7");
	assert_expands("n[7-7]", "n7");
	assert_expands("n[8-11]", "n8 n9 n10 n11");
	assert_expands("n[3,1,2]", "n3 n1 n2"); /* list order is kept: it is the tree's order */
	assert_expands("[1-3]", "1 2 3");
	assert_expands("n0", "n0");
	assert_expands("rack-1.node_a", "rack-1.node_a");
	assert_expands("n1-ib,n2x", "n1-ib n2x");
}

static void test_zero_padding(void **state)
{
	(void)state;
	assert_expands("n[001-010]", "n001 n002 n003 n004 n005 n006 n007 n008 n009 n010");
	assert_expands("n[08-10]", "n08 n09 n10");
	assert_expands("n[98-101]", "n98 n99 n100 n101");
	assert_expands("n[098-101]", "n098 n099 n100 n101");
	assert_expands("n[09-100]",
		       "n09 n10 n11 n12 n13 n14 n15 n16 n17 n18 n19 n20 n21 n22 n23 "
		       "n24 n25 n26 n27 n28 n29 n30 n31 n32 n33 n34 n35 n36 n37 n38 n39 "
		       "n40 n41 n42 n43 n44 n45 n46 n47 n48 n49 n50 n51 n52 n53 n54 n55 "
		       "n56 n57 n58 n59 n60 n61 n62 n63 n64 n65 n66 n67 n68 n69 n70 n71 "
		       "n72 n73 n74 n75 n76 n77 n78 n79 n80 n81 n82 n83 n84 n85 n86 n87 "
		       "n88 n89 n90 n91 n92 n93 n94 n95 n96 n97 n98 n99 n100");
	assert_expands("n[00-2]", "n00 n01 n02");
	assert_expands("n[0-2]", "n0 n1 n2");
	assert_expands("n[007]", "n007");
	/* Slurm's rule: the width comes from the first number alone. */
	assert_expands("n[1-010]", "n1 n2 n3 n4 n5 n6 n7 n8 n9 n10");
	assert_expands("n[01-02,5,009-010]", "n01 n02 n5 n009 n010");
}

static void test_several_brackets(void **state)
{
	(void)state;
	assert_expands("r[1-2]n[1-3]", "r1n1 r1n2 r1n3 r2n1 r2n2 r2n3");
	assert_expands("a[1,3]b[08-09]", "a1b08 a1b09 a3b08 a3b09");
	assert_expands("[1-2][5-6]", "15 16 25 26");
	assert_expands("r[1-2]-n[1-2],login", "r1-n1 r1-n2 r2-n1 r2-n2 login");
	/* Three or more: Slurm 22.05's order (libslurm's hostlist_create() gives these), the last
	 * bracket fastest, then the first, the second, ... */
	assert_expands("a[1-2]b[1-2]c[1-2]",
		       "a1b1c1 a1b1c2 a2b1c1 a2b1c2 a1b2c1 a1b2c2 a2b2c1 a2b2c2");
	assert_expands("w[1-2]x[1-2]y[1-2]z[1-2]",
		       "w1x1y1z1 w1x1y1z2 w2x1y1z1 w2x1y1z2 w1x2y1z1 w1x2y1z2 w2x2y1z1 w2x2y1z2 "
		       "w1x1y2z1 w1x1y2z2 w2x1y2z1 w2x1y2z2 w1x2y2z1 w1x2y2z2 w2x2y2z1 w2x2y2z2");
}

static void test_commas_inside_and_outside(void **state)
{
	(void)state;
	assert_expands("a[1,3-4],b,c[5]", "a1 a3 a4 b c5");
	assert_expands("gpu[01-02],cpu[1-2,4],io", "gpu01 gpu02 cpu1 cpu2 cpu4 io");
	assert_expands("x[1],x[2],x3", "x1 x2 x3");
}

static void test_malformed_refused(void **state)
{
	static const char *bad[] = {
	    ",",      "a,",	  ",a",	     "a,,b",	  "a[",	       "a[]",  "a[1-]", "a[-1]",
	    "a[1-2",  "a1]",	  "a]1",     "a[[1]]",	  "a[1]]",     "a b",  " a",	"a ",
	    "a\t",    "a\n",	  "a[1,]",   "a[,1]",	  "a[1--2]",   "a[x]", "a/b",	"a[1-2]b]",
	    "a[1 ]",  "a[ 1]",	  "a;b",     "a[1:2]",	  "a[1-2-3]",  "a*",   "../a",	"a[+1]",
	    "a[0x1]", "\xc3\xa9", "a[1]b[",  "a[1,,2]",	  "[]",	       "[",    "]",	"a\"b",
	    "a'b",    "a=b",	  "n[1-2]x", "n[1-2]-ib", "r[1]n[2]x", "[1]a",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_refused(bad[i], NULL);
}

static void test_error_texts(void **state)
{
	(void)state;
	assert_refused("", "node list: empty");
	assert_refused(NULL, "node list: missing");
	assert_refused("a,,b", "node list: empty name at offset 2");
	assert_refused("a,", "node list: empty name at offset 2");
	assert_refused("n[3-1]", "node list: reversed range 3-1 at offset 2");
	assert_refused("n[1-2", "node list: unexpected end in a bracket (expected ',' or ']')");
	assert_refused("n[]",
		       "node list: unexpected ']' at offset 2 in a range (expected a number)");
	assert_refused("n1]", "node list: unexpected ']' at offset 2 after a name (expected ',')");
	assert_refused("a b", "node list: unexpected character 0x20 at offset 1 after a name "
			      "(expected ',')");
	assert_refused("a[1x]", "node list: unexpected 'x' at offset 3 in a bracket (expected ',' "
				"or ']')");
	assert_refused("n[1234567890123456789]",
		       "node list: number of more than 18 digits at offset 2");
	assert_refused("a,b,a", "node list: duplicate name 'a'");
	assert_refused("n[1-3],n2", "node list: duplicate name 'n2'");
	assert_refused("n[1,1]", "node list: duplicate name 'n1'");
	assert_refused("n[1-2],n[01-02],n01", "node list: duplicate name 'n01'");
	assert_refused("n[1-2]-ib", "node list: text after the last ']' at offset 6");
	assert_refused("a,r[1]n[2]x", "node list: text after the last ']' at offset 10");
}

static void test_upper_bound(void **state)
{
	struct pl_hostlist hl;
	char err[ERRLEN];

	(void)state;
	assert_int_equal(pl_hostlist_expand("n[1-100000]", &hl, err, sizeof(err)), 0);
	assert_int_equal(hl.n, 100000);
	assert_string_equal(hl.names[0], "n1");
	assert_string_equal(hl.names[99999], "n100000");
	assert_int_equal(pl_hostlist_index(&hl, "n50000"), 49999);
	assert_int_equal(pl_hostlist_index(&hl, "n100000"), 99999);
	assert_int_equal(pl_hostlist_index(&hl, "n100001"), PL_TREE_NONE);
	pl_hostlist_free(&hl);

	assert_int_equal(pl_hostlist_expand("r[001-100]n[0000-0999]", &hl, err, sizeof(err)), 0);
	assert_int_equal(hl.n, 100000);
	assert_string_equal(hl.names[1000], "r002n0000");
	pl_hostlist_free(&hl);

	assert_refused("n[0-100000]", "node list: more than 100000 names");
	assert_refused("n[1-50000],m[1-50001]", "node list: more than 100000 names");
	assert_refused("n[1-100][0-1000]", "node list: more than 100000 names");
	assert_refused("n[1-100000],x", "node list: more than 100000 names");
	/* Refused from the counts alone, before anything is generated. */
	assert_refused("n[0-999999999999999999]", "node list: more than 100000 names");
	assert_refused("a[1-999999999]b[1-999999999]c[1-999999999]",
		       "node list: more than 100000 names");
}

static void test_name_length_bound(void **state)
{
	char expr[PL_NODE_NAME_MAX + 16], want[64];

	(void)state;
	memset(expr, 'x', PL_NODE_NAME_MAX);
	expr[PL_NODE_NAME_MAX] = '\0';
	assert_expands(expr, expr);
	strcpy(expr + PL_NODE_NAME_MAX, "y");
	assert_refused(expr, "node list: name longer than 255 characters at offset 0");

	/* 253 characters and a number of two digits at most. */
	memset(expr, 'x', PL_NODE_NAME_MAX - 2);
	strcpy(expr + PL_NODE_NAME_MAX - 2, "[9-10]");
	{
		struct pl_hostlist hl;
		char err[ERRLEN];

		assert_int_equal(pl_hostlist_expand(expr, &hl, err, sizeof(err)), 0);
		assert_int_equal(hl.n, 2);
		assert_int_equal(strlen(hl.names[1]), PL_NODE_NAME_MAX);
		pl_hostlist_free(&hl);
	}
	memset(expr, 'x', PL_NODE_NAME_MAX - 2);
	strcpy(expr + PL_NODE_NAME_MAX - 2, "[9-100]");
	assert_refused(expr, "node list: name longer than 255 characters at offset 0");
	/* Padding counts too. */
	memset(expr, 'x', PL_NODE_NAME_MAX - 2);
	strcpy(expr + PL_NODE_NAME_MAX - 2, "[001]");
	assert_refused(expr, "node list: name longer than 255 characters at offset 0");
	snprintf(want, sizeof(want), "node list: name longer than 255 characters at offset 2");
	memcpy(expr, "a,", 2);
	memset(expr + 2, 'x', PL_NODE_NAME_MAX + 1);
	expr[PL_NODE_NAME_MAX + 3] = '\0';
	assert_refused(expr, want);
}

static void test_index_lookup(void **state)
{
	struct pl_hostlist hl;
	char err[ERRLEN];

	(void)state;
	assert_int_equal(pl_hostlist_expand("node[1-3,7],gpu05", &hl, err, sizeof(err)), 0);
	assert_int_equal(pl_hostlist_index(&hl, "node1"), 0);
	assert_int_equal(pl_hostlist_index(&hl, "node7"), 3);
	assert_int_equal(pl_hostlist_index(&hl, "gpu05"), 4);
	assert_int_equal(pl_hostlist_index(&hl, "gpu5"), PL_TREE_NONE);
	assert_int_equal(pl_hostlist_index(&hl, "node"), PL_TREE_NONE);
	assert_int_equal(pl_hostlist_index(&hl, "node10"), PL_TREE_NONE);
	assert_int_equal(pl_hostlist_index(&hl, ""), PL_TREE_NONE);
	assert_int_equal(pl_hostlist_index(&hl, NULL), PL_TREE_NONE);
	pl_hostlist_free(&hl);
	/* A freed or failed list is empty, and harmless. */
	assert_int_equal(pl_hostlist_index(&hl, "node1"), PL_TREE_NONE);
	pl_hostlist_free(&hl);
}

static void test_parent_and_children(void **state)
{
	size_t first = 99;

	(void)state;
	assert_int_equal(pl_tree_parent(0, 2), PL_TREE_NONE);
	assert_int_equal(pl_tree_parent(1, 2), 0);
	assert_int_equal(pl_tree_parent(2, 2), 0);
	assert_int_equal(pl_tree_parent(3, 2), 1);
	assert_int_equal(pl_tree_parent(6, 2), 2);
	assert_int_equal(pl_tree_parent(8, 8), 0);
	assert_int_equal(pl_tree_parent(9, 8), 1);

	assert_int_equal(pl_tree_children(0, 7, 2, &first), 2);
	assert_int_equal(first, 1);
	assert_int_equal(pl_tree_children(2, 7, 2, &first), 2);
	assert_int_equal(first, 5);
	first = 99;
	assert_int_equal(pl_tree_children(3, 7, 2, &first), 0);
	assert_int_equal(first, 99);
	assert_int_equal(pl_tree_children(0, 5, 8, &first), 4); /* fewer than k nodes left */
	assert_int_equal(first, 1);
	assert_int_equal(pl_tree_children(1, 12, 8, &first), 3);
	assert_int_equal(first, 9);
	assert_int_equal(pl_tree_children(0, 1, 8, &first), 0);
	assert_int_equal(pl_tree_children(SIZE_MAX / 2, SIZE_MAX, 8, &first), 0);
	/* k = 0 is a tree of the root alone. */
	assert_int_equal(pl_tree_parent(5, 0), PL_TREE_NONE);
	assert_int_equal(pl_tree_children(0, 5, 0, &first), 0);
}

/* For every small tree: each node but the root is a child of its parent, children partition
 * 1..n-1 in order, levels grow by one per generation, and the depth is the deepest level. */
static void test_tree_invariants(void **state)
{
	(void)state;
	for (unsigned k = 1; k <= 6; k++) {
		for (size_t n = 1; n <= 150; n++) {
			size_t next = 1, first;
			unsigned deepest = 0;

			for (size_t i = 0; i < n; i++) {
				size_t c = pl_tree_children(i, n, k, &first);

				if (c > 0) {
					assert_int_equal(first, next);
					next += c;
				}
				for (size_t j = 0; j < c; j++)
					assert_int_equal(pl_tree_parent(first + j, k), i);
				if (i > 0)
					assert_int_equal(pl_tree_level(i, k),
							 pl_tree_level(pl_tree_parent(i, k), k) +
							     1);
				if (pl_tree_level(i, k) > deepest)
					deepest = pl_tree_level(i, k);
			}
			assert_int_equal(next, n);
			assert_int_equal(pl_tree_depth(n, k), deepest);
		}
	}
}

static void test_depth(void **state)
{
	(void)state;
	assert_int_equal(pl_tree_depth(0, 8), 0);
	assert_int_equal(pl_tree_depth(1, 8), 0);
	assert_int_equal(pl_tree_depth(2, 8), 1);
	assert_int_equal(pl_tree_depth(9, 8), 1);
	assert_int_equal(pl_tree_depth(10, 8), 2);
	assert_int_equal(pl_tree_depth(73, 8), 2); /* 1 + 8 + 64 */
	assert_int_equal(pl_tree_depth(74, 8), 3);
	assert_int_equal(pl_tree_depth(10000, 8), 5);
	assert_int_equal(pl_tree_depth(100000, 64), 3);
	assert_int_equal(pl_tree_depth(7, 2), 2);
	assert_int_equal(pl_tree_depth(8, 2), 3);
	assert_int_equal(pl_tree_depth(5, 1), 4);
	assert_int_equal(pl_tree_depth(100000, 1), 99999);
	assert_int_equal(pl_tree_depth(5, 0), 0);
}

static void test_ancestors(void **state)
{
	size_t out[8];
	size_t *chain;

	(void)state;
	assert_int_equal(pl_tree_ancestors(0, 2, out, 8), 0);
	assert_int_equal(pl_tree_ancestors(10, 2, out, 8), 3);
	assert_int_equal(out[0], 4);
	assert_int_equal(out[1], 1);
	assert_int_equal(out[2], 0);
	/* A short buffer gets the nearest ones; the count is still the whole path. */
	out[1] = 77;
	assert_int_equal(pl_tree_ancestors(10, 2, out, 1), 3);
	assert_int_equal(out[0], 4);
	assert_int_equal(out[1], 77);
	assert_int_equal(pl_tree_ancestors(10, 2, NULL, 0), 3);
	assert_int_equal(pl_tree_ancestors(80, 8, out, 8), 3);
	assert_int_equal(out[0], 9);
	assert_int_equal(out[1], 1);
	assert_int_equal(out[2], 0);

	chain = calloc(100000, sizeof(*chain));
	assert_non_null(chain);
	assert_int_equal(pl_tree_ancestors(99999, 1, chain, 100000), 99999);
	assert_int_equal(chain[0], 99998);
	assert_int_equal(chain[99998], 0);
	free(chain);
}

/* Every candidate lies in the range, and the first R candidates are the whole range. */
static void assert_port_permutation(uint32_t job, unsigned lo, unsigned hi)
{
	unsigned range = hi - lo + 1;
	bool *seen = calloc(range, sizeof(*seen));

	assert_non_null(seen);
	for (unsigned a = 0; a < range; a++) {
		unsigned p = pl_tree_port(job, a, lo, hi);

		assert_in_range(p, lo, hi);
		assert_false(seen[p - lo]);
		seen[p - lo] = true;
	}
	assert_int_equal(pl_tree_port(job, range, lo, hi), pl_tree_port(job, 0, lo, hi));
	free(seen);
}

static void test_ports(void **state)
{
	(void)state;
	/* Home port: job id modulo the range size. */
	assert_int_equal(pl_tree_port(12345, 0, 47000, 47999), 47345);
	/* Next candidates step by 617 (0.618 * 1000, made coprime to 1000). */
	assert_int_equal(pl_tree_port(12345, 1, 47000, 47999), 47962);
	assert_int_equal(pl_tree_port(12345, 2, 47000, 47999), 47579);
	assert_int_equal(pl_tree_port(4294967295u, 0, 47000, 47999), 47295);
	assert_int_equal(pl_tree_port(7, 5, 50000, 50000), 50000);
	assert_int_equal(pl_tree_port(7, 0, 50001, 50000), 50001); /* empty range: lo */

	assert_port_permutation(12345, 47000, 47999);
	assert_port_permutation(1, 1024, 65535);
	assert_port_permutation(99, 47000, 47006);
	assert_port_permutation(3, 47000, 47001);
	assert_port_permutation(4294967295u, 47000, 47000);
	assert_port_permutation(10, 47000, 47011);
}

/* Jobs near each other in the id sequence, the likeliest to share nodes, never share a home
 * port, and a job pushed off its home port does not take the next job's. */
static void test_ports_of_neighbouring_jobs(void **state)
{
	(void)state;
	for (uint32_t job = 5000; job < 5999; job++) {
		for (uint32_t other = job + 1; other < 5999 && other < job + 20; other++)
			assert_int_not_equal(pl_tree_port(job, 0, 47000, 47999),
					     pl_tree_port(other, 0, 47000, 47999));
		assert_int_not_equal(pl_tree_port(job, 1, 47000, 47999),
				     pl_tree_port(job + 1, 0, 47000, 47999));
		assert_int_not_equal(pl_tree_port(job, 1, 47000, 47999),
				     pl_tree_port(job - 1, 0, 47000, 47999));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plain_names_and_ranges),
	    cmocka_unit_test(test_zero_padding),
	    cmocka_unit_test(test_several_brackets),
	    cmocka_unit_test(test_commas_inside_and_outside),
	    cmocka_unit_test(test_malformed_refused),
	    cmocka_unit_test(test_error_texts),
	    cmocka_unit_test(test_upper_bound),
	    cmocka_unit_test(test_name_length_bound),
	    cmocka_unit_test(test_index_lookup),
	    cmocka_unit_test(test_parent_and_children),
	    cmocka_unit_test(test_tree_invariants),
	    cmocka_unit_test(test_depth),
	    cmocka_unit_test(test_ancestors),
	    cmocka_unit_test(test_ports),
	    cmocka_unit_test(test_ports_of_neighbouring_jobs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
