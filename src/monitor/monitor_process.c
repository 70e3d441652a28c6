/* A parsed process settled: its imports in order, retracted ones dropped, distributions
 * matched; pl_mon_parse(). */
#include "monitor_collect_internal.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int pl_mon_parse(const char *data, size_t len, struct pl_mon_process *p, char *err, size_t errlen)
{
	struct parse_state st = {.p = p};
	size_t magic = strlen(PL_MON_FORMAT_PREFIX);
	const char *nul;
	size_t pos;

	mc_process_init(p);
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
		int rc = nl ? mc_parse_line(&st, data + pos, line_len) : 0;

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
