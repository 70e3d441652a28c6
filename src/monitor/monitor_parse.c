/* One import log, line by line: the text checks (printable UTF-8, package names, numbers,
 * times), each KEY VALUE line stored into the process it describes, and pl_mon_process_free(). */
#include "monitor_collect_internal.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

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

bool mc_grow(void **items, size_t *cap, size_t need, size_t size)
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
	if (!mc_grow((void **)&st->events, &st->cap_events, st->n_events + 1, sizeof(*st->events)))
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
	if (!mc_grow((void **)&st->versions, &st->cap_versions, st->n_versions + 1,
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
	if (!mc_grow((void **)&st->dists, &st->cap_dists, st->n_dists + 1, sizeof(*st->dists)))
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
int mc_parse_line(struct parse_state *st, const char *line, size_t len)
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

void mc_process_init(struct pl_mon_process *p)
{
	memset(p, 0, sizeof(*p));
	p->pid = p->ppid = p->rank = p->status = -1;
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
	mc_process_init(p);
}
