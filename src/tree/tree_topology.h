/* The broadcast tree of a job's nodes: the node list, the k-ary tree over it, the listening ports.
 * Pure: no Slurm (the node list is expanded here, not by libslurm), no I/O; errors come back as
 * one line in a caller buffer.
 *
 * The nodes, in the order of the job's node list (SLURM_NODELIST), are numbered 0..n-1 and form a
 * complete k-ary tree rooted at node 0: node i has the parent (i-1)/k and the children
 * k*i+1 .. k*i+k (those below n). A node's ancestors, nearest first, are the path a child walks
 * up when its parent fails: it re-attaches to the grandparent, then the one above, and reads the
 * shared file system itself only when the root is gone too. Functions taking a fan-out k expect
 * 1 <= k (tree.fanout is 1..64); k = 0 is treated as a tree of the root alone. */
#ifndef PL_TREE_TOPOLOGY_H
#define PL_TREE_TOPOLOGY_H

#include <stddef.h>
#include <stdint.h>

/* Beyond any Slurm cluster's node count; bounds what a hostile or broken list can make us
 * allocate (at most PL_HOSTLIST_MAX names of PL_NODE_NAME_MAX characters). */
#define PL_HOSTLIST_MAX 100000
/* A DNS name's limit; Slurm's own node names are far shorter. */
#define PL_NODE_NAME_MAX 255
/* "No such node": the parent of the root, the index of a name not in the list. */
#define PL_TREE_NONE SIZE_MAX

struct pl_hostlist {
	size_t n;
	char **names; /* n names, list order */
	/* private: the names' storage, and (name, index) sorted by name for lookups */
	char *text;
	struct pl_hostlist_entry *sorted;
};

/* Expands a Slurm hostlist expression: names and bracketed ranges separated by commas,
 * "node[1-3,7],gpu05" -> node1 node2 node3 node7 gpu05, in Slurm's order (which is the tree's):
 * two brackets in one name vary the first slowest, "r[1-2]n[1-2]" -> r1n1 r1n2 r2n1 r2n2 (three
 * or more follow Slurm's own order too, though Slurm never writes them in a node list); text after
 * the last bracket ("n[1-2]-ib") is refused, as Slurm 22.05 refuses it. A range whose first number
 * has a leading zero is zero-padded to that width: "n[001-010]" -> n001 ... n010 (and
 * "n[08-10]" -> n08 n09 n10). Strict: names are made of letters, digits, '-', '_' and '.'; no
 * spaces, no empty names or ranges, no reversed ranges, no nested or unbalanced brackets, no
 * duplicate names (a tree position must be unique); at most PL_HOSTLIST_MAX names of at most
 * PL_NODE_NAME_MAX characters. Checked before anything is generated, so "n[0-999999999]" costs
 * nothing. On error out is left empty (pl_hostlist_free() is harmless on it). */
int pl_hostlist_expand(const char *expr, struct pl_hostlist *out, char *err, size_t errlen);
void pl_hostlist_free(struct pl_hostlist *hl);

/* Position of name in the list (O(log n)), PL_TREE_NONE when it is not a node of the job. */
size_t pl_hostlist_index(const struct pl_hostlist *hl, const char *name);

/* Parent of node i, PL_TREE_NONE for the root. */
size_t pl_tree_parent(size_t i, unsigned k);

/* Children of node i in a tree of n nodes: returns their number (0..k); they are
 * *first .. *first + count - 1 (*first is set only when count > 0). */
size_t pl_tree_children(size_t i, size_t n, unsigned k, size_t *first);

/* Level of node i: its number of ancestors (0 for the root). */
unsigned pl_tree_level(size_t i, unsigned k);

/* Depth of a tree of n nodes: the levels below the root (0 for n <= 1; n-1 for k = 1),
 * i.e. the hops the last node's data makes. */
unsigned pl_tree_depth(size_t n, unsigned k);

/* Ancestors of node i, nearest first (parent, grandparent, ..., root): writes the first
 * min(count, cap) of them to out and returns count (= pl_tree_level(i, k)). */
size_t pl_tree_ancestors(size_t i, unsigned k, size_t *out, size_t cap);

/* Listening port of a job's tree on a node, candidate number attempt (0, 1, ...) in lo..hi
 * (lo <= hi; tree.ports).
 *
 * Candidate 0, the job's home port, is lo + job_id mod R (R = hi - lo + 1): jobs whose ids differ
 * by less than R never share a home port, which a hash could not promise (ids are handed out in
 * sequence, and jobs sharing nodes are mostly near each other in it). A node whose candidate is
 * taken (another job, any other program) binds the next candidate; the next candidates step by a
 * stride near 0.618 R and coprime to R, so that they visit every port of the range and a job
 * pushed off its home port lands on the home port of a job about 0.6 R ids away, not on that of
 * the next job. A child tries the same sequence when it connects, and the handshake (job id,
 * session key, MUNGE) tells it whether it reached its parent or someone else. Several sessions of
 * one job on a node (the prolog and a step's own staging) share the home port and so take
 * successive candidates. */
unsigned pl_tree_port(uint32_t job_id, unsigned attempt, unsigned lo, unsigned hi);

/* Candidates a parent tries to bind and a child tries to connect to before giving up on the tree
 * (capped by the range's size R: candidates repeat after R). */
#define PL_TREE_PORT_ATTEMPTS 8

#endif
