/* The node's tally of its processes: counted keys (tallies), the packages imported (a hash
 * index), statuses and task pids, sorted and bounded for the record. */
#include "monitor_collect_internal.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

	if (!mc_grow((void **)&t->items, &t->cap, t->n + 1, sizeof(*t->items)))
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
	if (!mc_grow((void **)&tb->items, &tb->cap, tb->n + 1, sizeof(*tb->items)))
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
	if (!mc_grow((void **)&pkg->ranks, &pkg->cap_ranks, pkg->n_ranks + 1, sizeof(*pkg->ranks)))
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
int mc_add_pid(long long **pids, size_t *n, long long pid)
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
	    (!p->forked && mc_add_pid(&node->log_pids, &node->n_log_pids, p->pid) < 0))
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
