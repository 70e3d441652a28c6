#include "tree_topology.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 18 digits always fit in 64 bits; node numbers need far fewer. */
#define MAX_DIGITS 18
#define NAME_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."

struct pl_hostlist_entry {
	const char *name;
	size_t index;
};

/* The expression is parsed into these before any name is made. A term ("r[1-2]n[3]x") is a run
 * of pieces, each a literal followed by an optional bracket: (r,[1-2]) (n,[3]) (x,none). */
struct range {
	uint64_t lo, hi;
	int width; /* zero-padding, 0 for none */
};

struct piece {
	const char *lit;
	size_t litlen;
	size_t first_range, nranges; /* nranges 0: no bracket */
};

struct term {
	size_t first_piece, npieces;
	size_t count;	/* names it makes */
	size_t namemax; /* longest of them */
};

struct parse {
	const char *expr, *p;
	struct range *ranges;
	struct piece *pieces;
	struct term *terms;
	size_t nranges, npieces, nterms;
	size_t total; /* names of all terms */
	char *err;
	size_t errlen;
};

static int parse_fail(struct parse *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int parse_fail(struct parse *ps, const char *fmt, ...)
{
	va_list ap;
	int n;

	n = snprintf(ps->err, ps->errlen, "node list: ");
	if (n < 0 || (size_t)n >= ps->errlen)
		return -1;
	va_start(ap, fmt);
	vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

static size_t offset_of(const struct parse *ps)
{
	return (size_t)(ps->p - ps->expr);
}

/* What stopped the parser at ps->p, as an error. */
static int unexpected(struct parse *ps, const char *where)
{
	unsigned char c = (unsigned char)*ps->p;

	if (c == '\0')
		return parse_fail(ps, "unexpected end %s", where);
	if (c > ' ' && c < 0x7f)
		return parse_fail(ps, "unexpected '%c' at offset %zu %s", c, offset_of(ps), where);
	return parse_fail(ps, "unexpected character 0x%02x at offset %zu %s", c, offset_of(ps),
			  where);
}

static size_t digits_of(uint64_t v)
{
	size_t n = 1;

	while (v >= 10) {
		v /= 10;
		n++;
	}
	return n;
}

static int parse_number(struct parse *ps, uint64_t *v, size_t *ndigits)
{
	size_t n = strspn(ps->p, "0123456789");

	if (n == 0)
		return unexpected(ps, "in a range (expected a number)");
	if (n > MAX_DIGITS)
		return parse_fail(ps, "number of more than %d digits at offset %zu", MAX_DIGITS,
				  offset_of(ps));
	*v = 0;
	for (size_t i = 0; i < n; i++)
		*v = *v * 10 + (uint64_t)(ps->p[i] - '0');
	*ndigits = n;
	ps->p += n;
	return 0;
}

/* "N" or "N-M" inside brackets. Slurm's padding rule: the width of a first number written with
 * a leading zero. */
static int parse_range(struct parse *ps, struct range *r)
{
	size_t at = offset_of(ps), lo_digits, hi_digits;

	if (parse_number(ps, &r->lo, &lo_digits) < 0)
		return -1;
	r->hi = r->lo;
	if (*ps->p == '-') {
		ps->p++;
		if (parse_number(ps, &r->hi, &hi_digits) < 0)
			return -1;
	}
	if (r->hi < r->lo)
		return parse_fail(ps, "reversed range %" PRIu64 "-%" PRIu64 " at offset %zu", r->lo,
				  r->hi, at);
	r->width = (lo_digits > 1 && ps->expr[at] == '0') ? (int)lo_digits : 0;
	return 0;
}

static size_t range_size(const struct range *r)
{
	return r->hi - r->lo >= PL_HOSTLIST_MAX ? PL_HOSTLIST_MAX + 1 : (size_t)(r->hi - r->lo) + 1;
}

static size_t range_namelen(const struct range *r)
{
	size_t d = digits_of(r->hi);

	return (size_t)r->width > d ? (size_t)r->width : d;
}

/* "[R,R...]": adds the ranges to the piece, and their count and longest number to the out
 * values (names of the bracket, at most PL_HOSTLIST_MAX + 1 when too many). */
static int parse_bracket(struct parse *ps, struct piece *pc, size_t *count, size_t *numlen)
{
	*count = 0;
	*numlen = 0;
	pc->first_range = ps->nranges;
	ps->p++; /* '[' */
	for (;;) {
		struct range *r = &ps->ranges[ps->nranges];

		if (parse_range(ps, r) < 0)
			return -1;
		ps->nranges++;
		*count += range_size(r);
		if (*count > PL_HOSTLIST_MAX)
			*count = PL_HOSTLIST_MAX + 1;
		if (range_namelen(r) > *numlen)
			*numlen = range_namelen(r);
		if (*ps->p == ']')
			break;
		if (*ps->p != ',')
			return unexpected(ps, "in a bracket (expected ',' or ']')");
		ps->p++;
	}
	ps->p++; /* ']' */
	pc->nranges = ps->nranges - pc->first_range;
	return 0;
}

/* The names a term makes: the product of its brackets' counts, and their longest length. */
static int parse_term(struct parse *ps, struct term *t)
{
	size_t at = offset_of(ps);

	t->first_piece = ps->npieces;
	t->count = 1;
	t->namemax = 0;
	for (;;) {
		struct piece *pc = &ps->pieces[ps->npieces++];
		size_t count = 1, numlen = 0;

		pc->lit = ps->p;
		pc->litlen = strspn(ps->p, NAME_CHARS);
		pc->nranges = 0;
		ps->p += pc->litlen;
		if (*ps->p == '[' && parse_bracket(ps, pc, &count, &numlen) < 0)
			return -1;
		t->namemax += pc->litlen + numlen;
		t->count =
		    count > PL_HOSTLIST_MAX / t->count ? PL_HOSTLIST_MAX + 1 : t->count * count;
		if (pc->nranges == 0)
			break;
	}
	/* Slurm refuses "n[1-2]x": what it refuses must not mean something here. */
	if (ps->npieces - t->first_piece > 1 && ps->pieces[ps->npieces - 1].litlen > 0)
		return parse_fail(ps, "text after the last ']' at offset %zu",
				  (size_t)(ps->pieces[ps->npieces - 1].lit - ps->expr));
	t->npieces = ps->npieces - t->first_piece;
	if (t->namemax == 0)
		return parse_fail(ps, "empty name at offset %zu", at);
	if (t->namemax > PL_NODE_NAME_MAX)
		return parse_fail(ps, "name longer than %d characters at offset %zu",
				  PL_NODE_NAME_MAX, at);
	return 0;
}

static int parse_list(struct parse *ps)
{
	if (*ps->p == '\0')
		return parse_fail(ps, "empty");
	for (;;) {
		struct term *t = &ps->terms[ps->nterms];

		if (parse_term(ps, t) < 0)
			return -1;
		ps->nterms++;
		ps->total += t->count;
		if (ps->total > PL_HOSTLIST_MAX)
			return parse_fail(ps, "more than %d names", PL_HOSTLIST_MAX);
		if (*ps->p == '\0')
			return 0;
		if (*ps->p != ',')
			return unexpected(ps, "after a name (expected ',')");
		ps->p++;
	}
}

/* Every piece, range and term takes at least one character of the expression. */
static int parse_alloc(struct parse *ps, size_t len)
{
	ps->ranges = calloc(len + 1, sizeof(*ps->ranges));
	ps->pieces = calloc(len + 1, sizeof(*ps->pieces));
	ps->terms = calloc(len + 1, sizeof(*ps->terms));
	if (!ps->ranges || !ps->pieces || !ps->terms)
		return parse_fail(ps, "out of memory");
	return 0;
}

static void parse_release(struct parse *ps)
{
	free(ps->ranges);
	free(ps->pieces);
	free(ps->terms);
}

/* Generation: the names of one term at a time, written into out->text. A term of m brackets
 * (pieces 0..m-1 carry them; a last piece without one is an empty literal or the whole name) is
 * walked in Slurm's order: its loops, outermost first, run over brackets m-2, m-3, ..., 0 and then
 * m-1 (Slurm expands the last bracket as the host range and the others as prefixes, the last of
 * them outermost). For one or two brackets that is simply the first bracket slowest. */
struct gen {
	const struct parse *ps;
	struct pl_hostlist *out;
	const struct piece *pieces;
	size_t npieces, nbrackets;
	char *cursor;				      /* next free byte of out->text */
	char value[PL_NODE_NAME_MAX][MAX_DIGITS + 1]; /* current number of each bracket */
};

static size_t loop_bracket(size_t level, size_t nbrackets)
{
	return level == nbrackets - 1 ? level : nbrackets - 2 - level;
}

static void gen_emit(struct gen *g)
{
	char *start = g->cursor;

	for (size_t i = 0; i < g->npieces; i++) {
		memcpy(g->cursor, g->pieces[i].lit, g->pieces[i].litlen);
		g->cursor += g->pieces[i].litlen;
		if (i < g->nbrackets) {
			size_t n = strlen(g->value[i]);

			memcpy(g->cursor, g->value[i], n);
			g->cursor += n;
		}
	}
	*g->cursor++ = '\0';
	g->out->names[g->out->n++] = start;
}

static void gen_loops(struct gen *g, size_t level)
{
	const struct piece *pc;

	if (level == g->nbrackets) {
		gen_emit(g);
		return;
	}
	pc = &g->pieces[loop_bracket(level, g->nbrackets)];
	for (size_t r = 0; r < pc->nranges; r++) {
		const struct range *rg = &g->ps->ranges[pc->first_range + r];

		for (uint64_t v = rg->lo; v <= rg->hi; v++) {
			snprintf(g->value[pc - g->pieces], sizeof(g->value[0]), "%0*" PRIu64,
				 rg->width, v);
			gen_loops(g, level + 1);
		}
	}
}

static void gen_term(struct gen *g, const struct term *t)
{
	g->pieces = &g->ps->pieces[t->first_piece];
	g->npieces = t->npieces;
	g->nbrackets = 0;
	while (g->nbrackets < g->npieces && g->pieces[g->nbrackets].nranges > 0)
		g->nbrackets++;
	gen_loops(g, 0);
}

/* Room for every name at its term's longest length: a bound known before generating. */
static int alloc_names(const struct parse *ps, struct pl_hostlist *out)
{
	size_t bytes = 0;

	for (size_t t = 0; t < ps->nterms; t++)
		bytes += ps->terms[t].count * (ps->terms[t].namemax + 1);
	out->names = calloc(ps->total, sizeof(*out->names));
	out->text = malloc(bytes);
	return out->names && out->text ? 0 : -1;
}

static int gen_all(const struct parse *ps, struct pl_hostlist *out)
{
	struct gen *g = calloc(1, sizeof(*g)); /* the bracket values are 5 KiB: not the stack */
	int rc = -1;

	if (!g || alloc_names(ps, out) < 0)
		goto fail;
	g->ps = ps;
	g->out = out;
	g->cursor = out->text;
	for (size_t t = 0; t < ps->nterms; t++)
		gen_term(g, &ps->terms[t]);
	rc = 0;
fail:
	free(g);
	return rc;
}

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct pl_hostlist_entry *)a)->name,
		      ((const struct pl_hostlist_entry *)b)->name);
}

/* Sorted (name, index) pairs: lookups, and the duplicate check on the way. */
static int index_names(struct pl_hostlist *hl, char *err, size_t errlen)
{
	hl->sorted = calloc(hl->n, sizeof(*hl->sorted));
	if (!hl->sorted) {
		snprintf(err, errlen, "node list: out of memory");
		return -1;
	}
	for (size_t i = 0; i < hl->n; i++) {
		hl->sorted[i].name = hl->names[i];
		hl->sorted[i].index = i;
	}
	qsort(hl->sorted, hl->n, sizeof(*hl->sorted), entry_cmp);
	for (size_t i = 1; i < hl->n; i++) {
		if (strcmp(hl->sorted[i - 1].name, hl->sorted[i].name) == 0) {
			snprintf(err, errlen, "node list: duplicate name '%s'", hl->sorted[i].name);
			return -1;
		}
	}
	return 0;
}

int pl_hostlist_expand(const char *expr, struct pl_hostlist *out, char *err, size_t errlen)
{
	struct parse ps = {.expr = expr, .p = expr, .err = err, .errlen = errlen};

	memset(out, 0, sizeof(*out));
	if (!expr) {
		snprintf(err, errlen, "node list: missing");
		return -1;
	}
	if (parse_alloc(&ps, strlen(expr)) < 0 || parse_list(&ps) < 0)
		goto fail;
	if (gen_all(&ps, out) < 0) {
		snprintf(err, errlen, "node list: out of memory");
		goto fail;
	}
	if (index_names(out, err, errlen) < 0)
		goto fail;
	parse_release(&ps);
	return 0;
fail:
	parse_release(&ps);
	pl_hostlist_free(out);
	return -1;
}

void pl_hostlist_free(struct pl_hostlist *hl)
{
	free(hl->names);
	free(hl->text);
	free(hl->sorted);
	memset(hl, 0, sizeof(*hl));
}

size_t pl_hostlist_index(const struct pl_hostlist *hl, const char *name)
{
	struct pl_hostlist_entry key = {.name = name};
	const struct pl_hostlist_entry *hit;

	if (!name || hl->n == 0)
		return PL_TREE_NONE;
	hit = bsearch(&key, hl->sorted, hl->n, sizeof(*hl->sorted), entry_cmp);
	return hit ? hit->index : PL_TREE_NONE;
}

size_t pl_tree_parent(size_t i, unsigned k)
{
	if (i == 0 || k == 0)
		return PL_TREE_NONE;
	return (i - 1) / k;
}

size_t pl_tree_children(size_t i, size_t n, unsigned k, size_t *first)
{
	size_t f;

	if (k == 0 || i > (SIZE_MAX - 1) / k)
		return 0;
	f = k * i + 1;
	if (f >= n)
		return 0;
	*first = f;
	return n - f < k ? n - f : k;
}

unsigned pl_tree_level(size_t i, unsigned k)
{
	unsigned level = 0;

	if (k == 0)
		return 0;
	for (; i > 0; i = (i - 1) / k)
		level++;
	return level;
}

/* The last node is the deepest: levels do not decrease along the list. */
unsigned pl_tree_depth(size_t n, unsigned k)
{
	return n <= 1 ? 0 : pl_tree_level(n - 1, k);
}

size_t pl_tree_ancestors(size_t i, unsigned k, size_t *out, size_t cap)
{
	size_t count = 0;

	for (size_t a = pl_tree_parent(i, k); a != PL_TREE_NONE; a = pl_tree_parent(a, k)) {
		if (count < cap)
			out[count] = a;
		count++;
	}
	return count;
}

static unsigned gcd(unsigned a, unsigned b)
{
	while (b != 0) {
		unsigned t = a % b;

		a = b;
		b = t;
	}
	return a;
}

/* About 0.618 of the range (the golden ratio spreads successive multiples evenly), made coprime
 * to it so that the candidates are a permutation of the range. */
static unsigned port_stride(unsigned range)
{
	unsigned s = (unsigned)(((uint64_t)range * 618 + 999) / 1000);

	while (s > 1 && gcd(s, range) != 1)
		s--;
	return s ? s : 1;
}

unsigned pl_tree_port(uint32_t job_id, unsigned attempt, unsigned lo, unsigned hi)
{
	unsigned range = hi - lo + 1;
	uint64_t home, step;

	if (hi < lo || range == 0)
		return lo;
	home = job_id % range;
	step = (uint64_t)(attempt % range) * port_stride(range);
	return lo + (unsigned)((home + step) % range);
}
