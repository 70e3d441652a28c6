#include "monitor_collect.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* A user can fill the spool with junk: name the first few skipped logs, count the rest. */
#define SKIP_LOG_NAMED 5
#define LOG_NAME_SHOWN 64

long long pl_mon_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------ text checks */

/* Length of the UTF-8 sequence at s (at most len bytes) encoding one printable
 * character, or 0: overlong forms, surrogates, code points past U+10FFFF, C0 and C1
 * controls and DEL are refused. */
static size_t printable_char_len(const unsigned char *s, size_t len)
{
	unsigned cp, min;
	size_t n;

	if (s[0] < 0x80)
		return (s[0] >= 0x20 && s[0] != 0x7f) ? 1 : 0;
	if ((s[0] & 0xe0) == 0xc0) {
		n = 2, cp = s[0] & 0x1fU, min = 0x80;
	} else if ((s[0] & 0xf0) == 0xe0) {
		n = 3, cp = s[0] & 0x0fU, min = 0x800;
	} else if ((s[0] & 0xf8) == 0xf0) {
		n = 4, cp = s[0] & 0x07U, min = 0x10000;
	} else {
		return 0;
	}
	if (n > len)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3fU);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || cp < 0xa0)
		return 0;
	return n;
}

static bool is_printable_utf8(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;

	while (len > 0) {
		size_t n = printable_char_len(p, len);

		if (n == 0)
			return false;
		p += n;
		len -= n;
	}
	return true;
}

/* A top-level package name as the hook writes it: a Python identifier, which has no
 * space, dot or slash; anything else a crafted log might hold is refused. */
static bool is_package_name(const char *s, size_t len)
{
	return len > 0 && len <= PL_MON_NAME_MAX && is_printable_utf8(s, len) &&
	       !memchr(s, ' ', len) && !memchr(s, '.', len) && !memchr(s, '/', len);
}

static bool parse_count(const char *s, size_t len, long long *out)
{
	unsigned long long v = 0;

	if (len == 0 || len > 10)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned long long)(s[i] - '0');
	}
	if (v > UINT32_MAX)
		return false;
	*out = (long long)v;
	return true;
}

/* "1700000000.123456": digits and at most one dot, a plausible Unix time. */
static bool parse_time(const char *s, size_t len, double *out)
{
	char buf[32];
	char *end;
	double v;

	if (len == 0 || len >= sizeof(buf) || strspn(s, "0123456789.") < len)
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	v = strtod(buf, &end);
	if (*end != '\0' || !isfinite(v) || v <= 0 || v > 1e11)
		return false;
	*out = v;
	return true;
}

/* ------------------------------------------------------------------ parsing */

struct field {
	const char *s;
	size_t len;
};

/* Splits a line at tabs into at most max fields; the number found (more than max
 * counts as max + 1). */
static size_t split_fields(const char *line, size_t len, struct field *f, size_t max)
{
	size_t n = 0;
	const char *p = line, *end = line + len;

	for (;;) {
		const char *tab = memchr(p, '\t', (size_t)(end - p));
		const char *stop = tab ? tab : end;

		if (n == max)
			return max + 1;
		f[n].s = p;
		f[n].len = (size_t)(stop - p);
		n++;
		if (!tab)
			return n;
		p = tab + 1;
	}
}

struct text_key {
	const char *key;
	size_t offset;
	size_t max;
};

#define PROC_FIELD(member) offsetof(struct pl_mon_process, member)

static const struct text_key text_keys[] = {
    {"job", PROC_FIELD(job), 32},
    {"step", PROC_FIELD(step), 32},
    {"executable", PROC_FIELD(executable), 4096},
    {"python", PROC_FIELD(python), 256},
    {"pyver", PROC_FIELD(pyver), 32},
    {"implementation", PROC_FIELD(implementation), 32},
    {"main", PROC_FIELD(main), 4096},
    {"container", PROC_FIELD(container), 32},
    {"hook", PROC_FIELD(hook), 32},
};

static const struct text_key *find_text_key(const struct field *key)
{
	for (size_t i = 0; i < sizeof(text_keys) / sizeof(text_keys[0]); i++)
		if (strlen(text_keys[i].key) == key->len &&
		    memcmp(text_keys[i].key, key->s, key->len) == 0)
			return &text_keys[i];
	return NULL;
}

static bool key_is(const struct field *key, const char *name)
{
	return strlen(name) == key->len && memcmp(name, key->s, key->len) == 0;
}

/* Imports, retractions and versions are kept in the order of the log and settled at
 * its end: the last import or unimport of a name decides, the first version counts. */
struct import_event {
	char *name;
	size_t order;
	bool retract;
};

struct version_line {
	char *name;
	char *version;
	char *dist, *origin; /* set for a "dist" line */
};

struct parse_state {
	struct pl_mon_process *p;
	struct import_event *events;
	size_t n_events, cap_events;
	struct version_line *versions;
	size_t n_versions, cap_versions;
	struct version_line *dists;
	size_t n_dists, cap_dists;
	bool out_of_memory;
};

static bool grow(void **items, size_t *cap, size_t need, size_t size)
{
	size_t cap2 = *cap ? *cap * 2 : 16;
	void *grown;

	if (need <= *cap)
		return true;
	while (cap2 < need)
		cap2 *= 2;
	grown = realloc(*items, cap2 * size);
	if (!grown)
		return false;
	*items = grown;
	*cap = cap2;
	return true;
}

/* 1 stored, 0 refused (counts as a skipped line), -1 out of memory. */
static int store_text(struct parse_state *st, const struct text_key *k, const struct field *value)
{
	char **slot = (char **)(void *)((char *)st->p + k->offset);

	if (value->len == 0 || value->len > k->max || !is_printable_utf8(value->s, value->len))
		return 0;
	if (*slot && k->offset != PROC_FIELD(main))
		return 1; /* the first one counts; a later main (a spawn worker's) replaces */
	free(*slot);
	*slot = strndup(value->s, value->len);
	return *slot ? 1 : -1;
}

static int store_import(struct parse_state *st, const struct field *name, bool retract)
{
	struct import_event *ev;

	if (!is_package_name(name->s, name->len) || st->n_events >= 2 * PL_MON_IMPORTS_MAX)
		return 0;
	if (!grow((void **)&st->events, &st->cap_events, st->n_events + 1, sizeof(*st->events)))
		return -1;
	ev = &st->events[st->n_events];
	ev->name = strndup(name->s, name->len);
	ev->order = st->n_events;
	ev->retract = retract;
	if (!ev->name)
		return -1;
	st->n_events++;
	return 1;
}

static int store_version(struct parse_state *st, const struct field *name,
			 const struct field *version)
{
	struct version_line *v;

	if (!is_package_name(name->s, name->len) || version->len == 0 ||
	    version->len > PL_MON_VERSION_MAX || !is_printable_utf8(version->s, version->len) ||
	    st->n_versions >= PL_MON_IMPORTS_MAX)
		return 0;
	if (!grow((void **)&st->versions, &st->cap_versions, st->n_versions + 1,
		  sizeof(*st->versions)))
		return -1;
	v = &st->versions[st->n_versions];
	v->name = strndup(name->s, name->len);
	v->version = strndup(version->s, version->len);
	if (!v->name || !v->version) {
		free(v->name);
		free(v->version);
		return -1;
	}
	st->n_versions++;
	return 1;
}

/* "dist NAME DIST VERSION ORIGIN"; DIST and VERSION "-" when the hook found none. */
static int store_dist(struct parse_state *st, const struct field *f)
{
	static const char *const origins[] = {"bundle", "venv", "user", "system", "other"};
	struct version_line *v;
	bool known_origin = false, has_dist = !(f[2].len == 1 && f[2].s[0] == '-');
	bool has_version = !(f[3].len == 1 && f[3].s[0] == '-');

	for (size_t i = 0; i < sizeof(origins) / sizeof(origins[0]); i++)
		known_origin |= key_is(&f[4], origins[i]);
	if (!is_package_name(f[1].s, f[1].len) || !known_origin || f[2].len == 0 ||
	    f[2].len > PL_MON_NAME_MAX || !is_printable_utf8(f[2].s, f[2].len) || f[3].len == 0 ||
	    f[3].len > PL_MON_VERSION_MAX || !is_printable_utf8(f[3].s, f[3].len) ||
	    st->n_dists >= PL_MON_IMPORTS_MAX)
		return 0;
	if (!grow((void **)&st->dists, &st->cap_dists, st->n_dists + 1, sizeof(*st->dists)))
		return -1;
	v = &st->dists[st->n_dists];
	memset(v, 0, sizeof(*v));
	v->name = strndup(f[1].s, f[1].len);
	v->origin = strndup(f[4].s, f[4].len);
	v->dist = has_dist ? strndup(f[2].s, f[2].len) : NULL;
	v->version = has_version ? strndup(f[3].s, f[3].len) : NULL;
	if (!v->name || !v->origin || (has_dist && !v->dist) || (has_version && !v->version)) {
		free(v->name);
		free(v->origin);
		free(v->dist);
		free(v->version);
		return -1;
	}
	st->n_dists++;
	return 1;
}

static int store_number(struct pl_mon_process *p, const struct field *key,
			const struct field *value)
{
	long long *slot = key_is(key, "pid")	     ? &p->pid
			  : key_is(key, "ppid")	     ? &p->ppid
			  : key_is(key, "status")    ? &p->status
			  : key_is(key, "inherited") ? &p->inherited
			  : key_is(key, "truncated") ? &p->truncated
			  : key_is(key, "lost")	     ? &p->lost
						     : &p->rank;

	return parse_count(value->s, value->len, slot) ? 1 : 0;
}

static bool is_number_key(const struct field *key)
{
	static const char *const keys[] = {"pid",	"ppid",	     "rank", "status",
					   "inherited", "truncated", "lost"};

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (key_is(key, keys[i]))
			return true;
	return false;
}

static int store_time(struct pl_mon_process *p, const struct field *key, const struct field *value)
{
	double t;

	if (!parse_time(value->s, value->len, &t))
		return 0;
	if (key_is(key, "exit"))
		p->exited = true;
	else if (p->start == 0)
		p->start = t;
	return 1;
}

/* 1 used or ignored (unknown key), 0 malformed, -1 out of memory. */
static int parse_line(struct parse_state *st, const char *line, size_t len)
{
	struct field f[6];
	size_t n;
	const struct text_key *tk;

	if (len > PL_MON_LINE_MAX || !memchr(line, '\t', len))
		return 0;
	n = split_fields(line, len, f, 5);
	if (n > 5)
		return 0;
	if (key_is(&f[0], "dist"))
		return n == 5 ? store_dist(st, f) : 0;
	if (n > 3)
		return 0;
	if (key_is(&f[0], "import") || key_is(&f[0], "unimport"))
		return n == 2 ? store_import(st, &f[1], f[0].s[0] == 'u') : 0;
	if (key_is(&f[0], "version"))
		return n == 3 ? store_version(st, &f[1], &f[2]) : 0;
	if (n != 2)
		return 0;
	if ((tk = find_text_key(&f[0])))
		return store_text(st, tk, &f[1]);
	if (is_number_key(&f[0]))
		return store_number(st->p, &f[0], &f[1]);
	if (key_is(&f[0], "start") || key_is(&f[0], "exit"))
		return store_time(st->p, &f[0], &f[1]);
	if (key_is(&f[0], "forked")) {
		st->p->forked = f[1].len == 1 && f[1].s[0] == '1';
		return 1;
	}
	/* A key of a later version of the format. */
	return f[0].len > 0 && is_printable_utf8(f[0].s, f[0].len) ? 1 : 0;
}

static int compare_events(const void *a, const void *b)
{
	const struct import_event *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c)
		return c;
	return x->order < y->order ? -1 : (x->order > y->order);
}

static int compare_imports(const void *a, const void *b)
{
	return strcmp(((const struct pl_mon_import *)a)->name,
		      ((const struct pl_mon_import *)b)->name);
}

/* The installed metadata is the truth: its version replaces __version__. The first
 * "dist" line of a name counts. */
static void apply_dist(struct pl_mon_process *p, struct version_line *d)
{
	struct pl_mon_import key = {.name = d->name};
	struct pl_mon_import *imp = p->n_imports ? bsearch(&key, p->imports, p->n_imports,
							   sizeof(*p->imports), compare_imports)
						 : NULL;

	if (!imp || imp->origin)
		return;
	imp->origin = d->origin;
	d->origin = NULL;
	imp->dist = d->dist;
	d->dist = NULL;
	if (d->version) {
		free(imp->version);
		imp->version = d->version;
		d->version = NULL;
	}
}

/* The imports that stand (the last event of their name is an import), sorted by name,
 * each with the first version given for it; -1 when memory ran out. */
static int settle_imports(struct parse_state *st)
{
	struct pl_mon_process *p = st->p;

	if (st->n_events > 1)
		qsort(st->events, st->n_events, sizeof(*st->events), compare_events);
	if (st->n_events && !(p->imports = calloc(st->n_events, sizeof(*p->imports))))
		return -1;
	for (size_t i = 0; i < st->n_events; i++) {
		bool last = i + 1 == st->n_events ||
			    strcmp(st->events[i].name, st->events[i + 1].name) != 0;

		if (last && !st->events[i].retract && p->n_imports < PL_MON_IMPORTS_MAX) {
			p->imports[p->n_imports++].name = st->events[i].name;
			st->events[i].name = NULL;
		} else if (last && !st->events[i].retract) {
			p->lines_skipped++;
		}
	}
	for (size_t i = 0; i < st->n_versions; i++) {
		struct pl_mon_import key = {.name = st->versions[i].name};
		struct pl_mon_import *imp = p->n_imports
						? bsearch(&key, p->imports, p->n_imports,
							  sizeof(*p->imports), compare_imports)
						: NULL;

		if (imp && !imp->version) {
			imp->version = st->versions[i].version;
			st->versions[i].version = NULL;
		}
	}
	for (size_t i = 0; i < st->n_dists; i++)
		apply_dist(p, &st->dists[i]);
	return 0;
}

static void free_parse_state(struct parse_state *st)
{
	for (size_t i = 0; i < st->n_events; i++)
		free(st->events[i].name);
	free(st->events);
	for (size_t i = 0; i < st->n_versions; i++) {
		free(st->versions[i].name);
		free(st->versions[i].version);
	}
	free(st->versions);
	for (size_t i = 0; i < st->n_dists; i++) {
		free(st->dists[i].name);
		free(st->dists[i].version);
		free(st->dists[i].dist);
		free(st->dists[i].origin);
	}
	free(st->dists);
}

static void process_init(struct pl_mon_process *p)
{
	memset(p, 0, sizeof(*p));
	p->pid = p->ppid = p->rank = p->status = -1;
}

int pl_mon_parse(const char *data, size_t len, struct pl_mon_process *p, char *err, size_t errlen)
{
	struct parse_state st = {.p = p};
	size_t magic = strlen(PL_MON_FORMAT_PREFIX);
	const char *nul;
	size_t pos;

	process_init(p);
	/* The hook preallocates its log: what follows the first NUL byte is unused. */
	nul = memchr(data, '\0', len);
	if (nul)
		len = (size_t)(nul - data);
	if (len <= magic + 1 || memcmp(data, PL_MON_FORMAT_PREFIX, magic) != 0 ||
	    data[magic] < '1' || data[magic] > '0' + PL_MON_FORMAT_MAX || data[magic + 1] != '\n') {
		snprintf(err, errlen, "not a log of format \"%s1\" to %d", PL_MON_FORMAT_PREFIX,
			 PL_MON_FORMAT_MAX);
		return -1;
	}
	for (pos = magic + 2; pos < len && !st.out_of_memory;) {
		const char *nl = memchr(data + pos, '\n', len - pos);
		size_t line_len = nl ? (size_t)(nl - (data + pos)) : len - pos;
		int rc = nl ? parse_line(&st, data + pos, line_len) : 0;

		if (rc < 0)
			st.out_of_memory = true;
		else if (rc == 0)
			p->lines_skipped++;
		pos += line_len + 1;
	}
	if (!st.out_of_memory && settle_imports(&st) < 0)
		st.out_of_memory = true;
	free_parse_state(&st);
	if (st.out_of_memory) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

void pl_mon_process_free(struct pl_mon_process *p)
{
	for (size_t i = 0; i < sizeof(text_keys) / sizeof(text_keys[0]); i++)
		free(*(char **)(void *)((char *)p + text_keys[i].offset));
	for (size_t i = 0; i < p->n_imports; i++) {
		free(p->imports[i].name);
		free(p->imports[i].version);
		free(p->imports[i].dist);
		free(p->imports[i].origin);
	}
	free(p->imports);
	process_init(p);
}

/* ------------------------------------------------------------------ tallies */

static int compare_keys(const char *a, const char *b)
{
	if (!a || !b)
		return (a != NULL) - (b != NULL);
	return strcmp(a, b);
}

static bool same_keys(const struct pl_mon_tally *t, const char *const keys[3])
{
	for (int i = 0; i < 3; i++)
		if (compare_keys(t->keys[i], keys[i]) != 0)
			return false;
	return true;
}

static void tallies_init(struct pl_mon_tallies *t, size_t max)
{
	memset(t, 0, sizeof(*t));
	t->max = max;
}

static void tallies_free(struct pl_mon_tallies *t)
{
	for (size_t i = 0; i < t->n; i++)
		for (int k = 0; k < 3; k++)
			free(t->items[i].keys[k]);
	free(t->items);
	memset(t, 0, sizeof(*t));
}

static int tally_new(struct pl_mon_tallies *t, const char *const keys[3])
{
	struct pl_mon_tally *item;

	if (!grow((void **)&t->items, &t->cap, t->n + 1, sizeof(*t->items)))
		return -1;
	item = &t->items[t->n];
	memset(item, 0, sizeof(*item));
	for (int k = 0; k < 3; k++) {
		if (keys[k] && !(item->keys[k] = strdup(keys[k]))) {
			for (int j = 0; j < k; j++)
				free(item->keys[j]);
			return -1;
		}
	}
	item->processes = 1;
	t->n++;
	return 0;
}

/* Counts one process under keys (NULL keys allowed: "not given"). */
static int tally_add(struct pl_mon_tallies *t, const char *k0, const char *k1, const char *k2)
{
	const char *const keys[3] = {k0, k1, k2};

	for (size_t i = 0; i < t->n; i++) {
		if (same_keys(&t->items[i], keys)) {
			t->items[i].processes++;
			return 0;
		}
	}
	if (t->n >= t->max) {
		t->dropped++;
		return 0;
	}
	return tally_new(t, keys);
}

static int compare_tallies(const void *a, const void *b)
{
	const struct pl_mon_tally *x = a, *y = b;

	if (x->processes != y->processes)
		return x->processes > y->processes ? -1 : 1;
	for (int k = 0; k < 3; k++) {
		int c = compare_keys(x->keys[k], y->keys[k]);

		if (c)
			return c;
	}
	return 0;
}

static void tallies_sort(struct pl_mon_tallies *t)
{
	if (t->n > 1)
		qsort(t->items, t->n, sizeof(*t->items), compare_tallies);
}

/* ------------------------------------------------------------------ packages */

static uint64_t hash_name(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static size_t *index_slot(size_t *index, size_t cap, const struct pl_mon_package *items,
			  const char *name)
{
	size_t i = (size_t)hash_name(name) & (cap - 1);

	while (index[i] && strcmp(items[index[i] - 1].name, name) != 0)
		i = (i + 1) & (cap - 1);
	return &index[i];
}

static int index_grow(struct pl_mon_table *tb)
{
	size_t cap = tb->index_cap ? tb->index_cap * 2 : 64;
	size_t *index;

	if (tb->index_cap && tb->n * 2 < tb->index_cap)
		return 0;
	index = calloc(cap, sizeof(*index));
	if (!index)
		return -1;
	for (size_t i = 0; i < tb->n; i++)
		*index_slot(index, cap, tb->items, tb->items[i].name) = i + 1;
	free(tb->index);
	tb->index = index;
	tb->index_cap = cap;
	return 0;
}

/* The entry called name, added if new; NULL when full (counted) or out of memory. */
static struct pl_mon_package *package_for(struct pl_mon_table *tb, const char *name, bool *oom)
{
	struct pl_mon_package *pkg;
	size_t *slot;

	if (index_grow(tb) < 0)
		goto fail;
	slot = index_slot(tb->index, tb->index_cap, tb->items, name);
	if (*slot)
		return &tb->items[*slot - 1];
	if (tb->n >= PL_MON_PACKAGES_MAX) {
		tb->dropped++;
		return NULL;
	}
	if (!grow((void **)&tb->items, &tb->cap, tb->n + 1, sizeof(*tb->items)))
		goto fail;
	pkg = &tb->items[tb->n];
	memset(pkg, 0, sizeof(*pkg));
	tallies_init(&pkg->versions, PL_MON_VERSIONS_MAX);
	tallies_init(&pkg->origins, PL_MON_ORIGINS_MAX);
	if (!(pkg->name = strdup(name)))
		goto fail;
	tb->n++;
	*slot = tb->n;
	return pkg;
fail:
	*oom = true;
	return NULL;
}

static int add_rank(struct pl_mon_package *pkg, uint32_t rank)
{
	size_t lo = 0, hi = pkg->n_ranks;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (pkg->ranks[mid] == rank)
			return 0;
		if (pkg->ranks[mid] < rank)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (pkg->n_ranks >= PL_MON_RANKS_MAX) {
		pkg->ranks_truncated = true;
		return 0;
	}
	if (!grow((void **)&pkg->ranks, &pkg->cap_ranks, pkg->n_ranks + 1, sizeof(*pkg->ranks)))
		return -1;
	memmove(pkg->ranks + lo + 1, pkg->ranks + lo, (pkg->n_ranks - lo) * sizeof(*pkg->ranks));
	pkg->ranks[lo] = rank;
	pkg->n_ranks++;
	return 0;
}

/* Counts one process under the entry name of tb. */
static int add_use(struct pl_mon_table *tb, const char *name, const struct pl_mon_process *p,
		   const struct pl_mon_import *imp)
{
	bool oom = false;
	struct pl_mon_package *pkg = package_for(tb, name, &oom);

	if (!pkg)
		return oom ? -1 : 0;
	pkg->processes++;
	if (!p->exited)
		pkg->incomplete++;
	if (p->rank >= 0 && add_rank(pkg, (uint32_t)p->rank) < 0)
		return -1;
	if (imp->dist && !pkg->distribution && !(pkg->distribution = strdup(imp->dist)))
		return -1;
	if (tally_add(&pkg->origins, imp->origin, NULL, NULL) < 0)
		return -1;
	return tally_add(&pkg->versions, imp->version, NULL, NULL);
}

static int compare_import_dists(const void *a, const void *b)
{
	const struct pl_mon_import *const *x = a, *const *y = b;

	return strcmp((*x)->dist, (*y)->dist);
}

/* Each distribution once per process, however many of its top-level names it imported. */
static int add_dists(struct pl_mon_node *node, const struct pl_mon_process *p)
{
	const struct pl_mon_import **with = calloc(p->n_imports + 1, sizeof(*with));
	size_t n = 0;
	int rc = 0;

	if (!with)
		return -1;
	for (size_t i = 0; i < p->n_imports; i++)
		if (p->imports[i].dist)
			with[n++] = &p->imports[i];
	if (n > 1)
		qsort(with, n, sizeof(*with), compare_import_dists);
	for (size_t i = 0; i < n && rc == 0; i++)
		if (i == 0 || strcmp(with[i]->dist, with[i - 1]->dist) != 0)
			rc = add_use(&node->dists, with[i]->dist, p, with[i]);
	free(with);
	return rc;
}

static void table_free(struct pl_mon_table *tb)
{
	for (size_t i = 0; i < tb->n; i++) {
		free(tb->items[i].name);
		free(tb->items[i].ranks);
		free(tb->items[i].distribution);
		tallies_free(&tb->items[i].versions);
		tallies_free(&tb->items[i].origins);
	}
	free(tb->items);
	free(tb->index);
	memset(tb, 0, sizeof(*tb));
}

static int compare_packages(const void *a, const void *b)
{
	return strcmp(((const struct pl_mon_package *)a)->name,
		      ((const struct pl_mon_package *)b)->name);
}

static void table_sort(struct pl_mon_table *tb)
{
	if (tb->n > 1)
		qsort(tb->items, tb->n, sizeof(*tb->items), compare_packages);
	/* The index no longer matches the order: no more additions. */
	free(tb->index);
	tb->index = NULL;
	tb->index_cap = 0;
	for (size_t i = 0; i < tb->n; i++) {
		tallies_sort(&tb->items[i].versions);
		tallies_sort(&tb->items[i].origins);
	}
}

static bool table_truncated(const struct pl_mon_table *tb)
{
	if (tb->dropped)
		return true;
	for (size_t i = 0; i < tb->n; i++)
		if (tb->items[i].versions.dropped || tb->items[i].origins.dropped ||
		    tb->items[i].ranks_truncated)
			return true;
	return false;
}

/* ------------------------------------------------------------------ node */

void pl_mon_node_init(struct pl_mon_node *node)
{
	memset(node, 0, sizeof(*node));
	tallies_init(&node->steps, PL_MON_STEPS_MAX);
	tallies_init(&node->mains, PL_MON_TALLY_MAX);
	tallies_init(&node->interpreters, PL_MON_TALLY_MAX);
	tallies_init(&node->containers, PL_MON_TALLY_MAX);
	tallies_init(&node->statuses, PL_MON_TALLY_MAX);
	tallies_init(&node->hooks, PL_MON_TALLY_MAX);
}

void pl_mon_node_free(struct pl_mon_node *node)
{
	table_free(&node->pkgs);
	table_free(&node->dists);
	tallies_free(&node->steps);
	tallies_free(&node->mains);
	tallies_free(&node->interpreters);
	tallies_free(&node->containers);
	tallies_free(&node->statuses);
	tallies_free(&node->hooks);
	free(node->log_pids);
	free(node->task_pids);
	pl_mon_node_init(node);
}

/* A pid to one of the node's lists (bounded: past PL_MON_PIDS_MAX the match of task
 * notes and logs undercounts the unhooked tasks, never overcounts). */
static int add_pid(long long **pids, size_t *n, long long pid)
{
	long long *grown;

	if (pid < 0 || *n >= PL_MON_PIDS_MAX)
		return 0;
	if (!(*n & (*n + 1)) || *n == 0) {
		grown = realloc(*pids, (*n * 2 + 2) * sizeof(**pids));
		if (!grown)
			return -1;
		*pids = grown;
	}
	(*pids)[(*n)++] = pid;
	return 0;
}

static int add_status(struct pl_mon_node *node, const struct pl_mon_process *p)
{
	char buf[24];

	if (!p->exited)
		return tally_add(&node->statuses, "killed", NULL, NULL);
	if (p->status < 0)
		return tally_add(&node->statuses, NULL, NULL, NULL);
	snprintf(buf, sizeof(buf), "%lld", p->status);
	return tally_add(&node->statuses, buf, NULL, NULL);
}

int pl_mon_node_add(struct pl_mon_node *node, const struct pl_mon_process *p)
{
	node->processes++;
	if (!p->exited)
		node->incomplete++;
	if (p->forked)
		node->forked++;
	if (p->truncated > 0) {
		node->processes_truncated++;
		node->imports_truncated += (uint64_t)p->truncated;
	}
	node->lines_lost += p->lost > 0 ? (uint64_t)p->lost : 0;
	if (p->start > 0 && (node->start == 0 || p->start < node->start))
		node->start = p->start;
	if (tally_add(&node->steps, p->step, NULL, NULL) < 0 ||
	    tally_add(&node->mains, p->main, NULL, NULL) < 0 ||
	    tally_add(&node->interpreters, p->executable, p->pyver, p->implementation) < 0 ||
	    (p->container && tally_add(&node->containers, p->container, NULL, NULL) < 0) ||
	    tally_add(&node->hooks, p->hook, NULL, NULL) < 0 || add_status(node, p) < 0 ||
	    (!p->forked && add_pid(&node->log_pids, &node->n_log_pids, p->pid) < 0))
		return -1;
	for (size_t i = 0; i < p->n_imports; i++)
		if (add_use(&node->pkgs, p->imports[i].name, p, &p->imports[i]) < 0)
			return -1;
	return add_dists(node, p);
}

static int compare_pids(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return (x > y) - (x < y);
}

void pl_mon_node_match_tasks(struct pl_mon_node *node)
{
	if (node->n_log_pids > 1)
		qsort(node->log_pids, node->n_log_pids, sizeof(*node->log_pids), compare_pids);
	node->python_tasks_unhooked = 0;
	for (size_t i = 0; i < node->n_task_pids; i++)
		if (!node->n_log_pids ||
		    !bsearch(&node->task_pids[i], node->log_pids, node->n_log_pids,
			     sizeof(*node->log_pids), compare_pids))
			node->python_tasks_unhooked++;
}

void pl_mon_node_sort(struct pl_mon_node *node)
{
	table_sort(&node->pkgs);
	table_sort(&node->dists);
	tallies_sort(&node->steps);
	tallies_sort(&node->mains);
	tallies_sort(&node->interpreters);
	tallies_sort(&node->containers);
	tallies_sort(&node->statuses);
	tallies_sort(&node->hooks);
}

bool pl_mon_node_truncated(const struct pl_mon_node *node)
{
	return table_truncated(&node->pkgs) || table_truncated(&node->dists) ||
	       node->steps.dropped || node->mains.dropped || node->interpreters.dropped ||
	       node->containers.dropped || node->statuses.dropped || node->hooks.dropped ||
	       node->processes_truncated;
}

/* ------------------------------------------------------------------ the spool */

struct collect_state {
	int dir_fd;
	uid_t uid;
	const char *job_id;
	char *buf; /* PL_MON_LOG_MAX + 1 bytes, reused for every log */
	unsigned skipped_named;
	struct pl_mon_node *node;
};

/* A file name fit for the slurmd log: what a user chose may hold anything. */
static void shown_name(const char *name, char *out, size_t len)
{
	size_t i;

	for (i = 0; name[i] && i + 1 < len && i < LOG_NAME_SHOWN; i++)
		out[i] = (name[i] >= 0x20 && name[i] < 0x7f) ? name[i] : '?';
	out[i] = '\0';
}

static void skip_log(struct collect_state *cs, const char *name, const char *reason)
{
	char shown[LOG_NAME_SHOWN + 1];

	cs->node->logs_skipped++;
	if (cs->skipped_named++ >= SKIP_LOG_NAMED)
		return;
	shown_name(name, shown, sizeof(shown));
	pl_info("monitor: job %s: skipping spool file \"%s\": %s", cs->job_id, shown, reason);
}

/* Reads the log into cs->buf; its length, or -1 with reason set. */
static ssize_t read_log(struct collect_state *cs, const char *name, const char **reason)
{
	struct stat st;
	ssize_t total = -1;
	size_t used = 0;
	int fd =
	    openat(cs->dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);

	if (fd < 0) {
		*reason = errno == ELOOP ? "a symbolic link" : strerror(errno);
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		*reason = strerror(errno);
		goto done;
	}
	if (!S_ISREG(st.st_mode)) {
		*reason = "not a regular file";
		goto done;
	}
	if (st.st_uid != cs->uid) {
		*reason = "not owned by the job's user";
		goto done;
	}
	if (st.st_nlink != 1) {
		*reason = "has other hard links";
		goto done;
	}
	if (st.st_size > PL_MON_LOG_MAX) {
		*reason = "larger than 1 MiB";
		goto done;
	}
	for (;;) {
		ssize_t n = read(fd, cs->buf + used, PL_MON_LOG_MAX + 1 - used);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*reason = strerror(errno);
			goto done;
		}
		if (n == 0)
			break;
		used += (size_t)n;
		if (used > PL_MON_LOG_MAX) {
			*reason = "larger than 1 MiB";
			goto done;
		}
	}
	total = (ssize_t)used;
done:
	close(fd);
	return total;
}

static bool has_suffix(const char *name, const char *suffix)
{
	size_t len = strlen(name), n = strlen(suffix);

	return len > n && strcmp(name + len - n, suffix) == 0;
}

static bool is_log_name(const char *name)
{
	return has_suffix(name, PL_MON_LOG_SUFFIX);
}

/* The pid a marker's name starts with ("123-ab.unlogged", "123.python-task"), or -1. */
static long long name_pid(const char *name)
{
	long long pid = 0;
	size_t i;

	for (i = 0; name[i] >= '0' && name[i] <= '9' && i < 10; i++)
		pid = pid * 10 + (name[i] - '0');
	return i > 0 && (name[i] == '-' || name[i] == '.') ? pid : -1;
}

/* 1 when name is a marker (counted), 0 when not, -1 when memory ran out. */
static int count_marker(struct pl_mon_node *node, const char *name)
{
	if (has_suffix(name, PL_MON_UNLOGGED_SUFFIX)) {
		node->unlogged++;
		return add_pid(&node->log_pids, &node->n_log_pids, name_pid(name)) < 0 ? -1 : 1;
	}
	if (has_suffix(name, PL_MON_TASK_SUFFIX) && name_pid(name) >= 0) {
		node->python_tasks++;
		return add_pid(&node->task_pids, &node->n_task_pids, name_pid(name)) < 0 ? -1 : 1;
	}
	return 0;
}

/* -1 only when memory ran out. */
static int collect_one(struct collect_state *cs, const char *name)
{
	struct pl_mon_process p;
	const char *reason = NULL;
	char err[128];
	ssize_t len = read_log(cs, name, &reason);
	int rc = 0;

	if (len < 0) {
		skip_log(cs, name, reason);
		return 0;
	}
	if (pl_mon_parse(cs->buf, (size_t)len, &p, err, sizeof(err)) < 0) {
		skip_log(cs, name, err);
		rc = strcmp(err, "out of memory") == 0 ? -1 : 0;
		goto done;
	}
	if (!p.job || strcmp(p.job, cs->job_id) != 0) {
		skip_log(cs, name, "written for another job");
		goto done;
	}
	cs->node->logs_read++;
	cs->node->lines_skipped += p.lines_skipped;
	rc = pl_mon_node_add(cs->node, &p);
done:
	pl_mon_process_free(&p);
	return rc;
}

int pl_mon_collect(int dir_fd, uid_t uid, const char *job_id, long long deadline_ms,
		   struct pl_mon_node *node)
{
	struct collect_state cs = {.dir_fd = dir_fd, .uid = uid, .job_id = job_id, .node = node};
	struct dirent *e;
	DIR *dir = NULL;
	int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = -1;

	if (fd < 0 || !(dir = fdopendir(fd))) {
		pl_error_errno(errno, "monitor: job %s: cannot read the spool", job_id);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (!(cs.buf = malloc(PL_MON_LOG_MAX + 1))) {
		pl_error("monitor: job %s: out of memory", job_id);
		goto done;
	}
	while ((e = readdir(dir))) {
		int marker = count_marker(node, e->d_name);

		if (marker == 0 && !is_log_name(e->d_name))
			continue;
		if (deadline_ms && pl_mon_now_ms() >= deadline_ms) {
			node->partial = true;
			break;
		}
		if (marker < 0 || (marker == 0 && collect_one(&cs, e->d_name) < 0)) {
			pl_error("monitor: job %s: out of memory; the record is partial", job_id);
			node->partial = true;
			break;
		}
	}
	pl_mon_node_match_tasks(node);
	if (cs.skipped_named > SKIP_LOG_NAMED)
		pl_info("monitor: job %s: %u more spool files skipped", job_id,
			cs.skipped_named - SKIP_LOG_NAMED);
	rc = 0;
done:
	free(cs.buf);
	closedir(dir);
	return rc;
}
