/* --pymonitor: the one JSON record per job and node (monitor_record.h), built from the node's
 * tally and cut to monitor.record_max by dropping the least used packages first. */
#include "monitor_record.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "monitor_record_internal.h"

/* ------------------------------------------------------------------ record parts */

static void add_exit(struct pl_text *t, long long status)
{
	int st = (int)status;

	mr_add_key(t, "exit", false);
	if (status < 0 || status > UINT32_MAX) {
		mr_add_str(t, "null");
		return;
	}
	pl_text_addf(t, "{\"status\":%lld,\"code\":%d,\"signal\":%d}", status,
		     WIFEXITED(st) ? WEXITSTATUS(st) : 0, WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

/* [{"<names[0]>":"...",...,"processes":N}, ...] */
static void add_tallies(struct pl_text *t, const char *key, const struct pl_mon_tallies *tl,
			const char *const names[3], struct cut *cut)
{
	size_t n = tl->n < cut->limit ? tl->n : cut->limit;

	cut->left_out += tl->n - n;
	mr_add_key(t, key, false);
	pl_text_add(t, "[", 1);
	for (size_t i = 0; i < n; i++) {
		if (i)
			pl_text_add(t, ",", 1);
		pl_text_add(t, "{", 1);
		for (int k = 0; k < 3 && names[k]; k++) {
			mr_add_key(t, names[k], k == 0);
			mr_add_json_str_or_null(t, tl->items[i].keys[k]);
		}
		pl_text_addf(t, ",\"processes\":%u}", tl->items[i].processes);
	}
	pl_text_add(t, "]", 1);
}

/* "0-3,8,10-11" */
static void add_ranks(struct pl_text *t, const struct pl_mon_package *pkg)
{
	pl_text_add(t, ",\"ranks\":\"", 10);
	for (size_t i = 0; i < pkg->n_ranks;) {
		size_t j = i;

		while (j + 1 < pkg->n_ranks && pkg->ranks[j + 1] == pkg->ranks[j] + 1)
			j++;
		pl_text_addf(t, "%s%u", i ? "," : "", pkg->ranks[i]);
		if (j > i)
			pl_text_addf(t, "-%u", pkg->ranks[j]);
		i = j + 1;
	}
	pl_text_addf(t, "\",\"rank_count\":%zu", pkg->n_ranks);
}

/* A package (by import name, with its distribution) or a distribution (without). */
static void add_package(struct pl_text *t, const struct pl_mon_package *pkg, bool is_import)
{
	static const char *const version_names[3] = {"version", NULL, NULL};
	static const char *const origin_names[3] = {"origin", NULL, NULL};
	struct cut all = {.limit = SIZE_MAX};

	pl_text_add(t, "{", 1);
	mr_add_key(t, "name", true);
	mr_add_json_str_or_null(t, pkg->name);
	pl_text_addf(t, ",\"processes\":%u,\"incomplete\":%u", pkg->processes, pkg->incomplete);
	add_ranks(t, pkg);
	mr_add_bool_field(t, "ranks_truncated", pkg->ranks_truncated);
	add_tallies(t, "versions", &pkg->versions, version_names, &all);
	pl_text_addf(t, ",\"versions_dropped\":%u", pkg->versions.dropped);
	add_tallies(t, "origins", &pkg->origins, origin_names, &all);
	if (is_import)
		mr_add_str_field(t, "distribution", pkg->distribution);
	pl_text_add(t, "}", 1);
}

static void add_table(struct pl_text *t, const char *key, const struct pl_mon_table *tb,
		      bool is_import, const bool *keep, struct cut *cut)
{
	bool first = true;

	mr_add_key(t, key, false);
	pl_text_add(t, "[", 1);
	for (size_t i = 0; i < tb->n; i++) {
		if (keep && !keep[i]) {
			cut->left_out++;
			continue;
		}
		if (!first)
			pl_text_add(t, ",", 1);
		first = false;
		add_package(t, &tb->items[i], is_import);
	}
	pl_text_add(t, "]", 1);
}

static void add_job(struct pl_text *t, const struct pl_job_meta *meta)
{
	mr_add_str_field(t, "cluster", meta->cluster);
	mr_add_num_field(t, "job_id", meta->job_id);
	mr_add_str_field(t, "node", meta->node);
	mr_add_str_field(t, "user", meta->user);
	mr_add_num_field(t, "uid", meta->uid);
	mr_add_str_field(t, "account", meta->account);
	mr_add_str_field(t, "partition", meta->partition);
	mr_add_str_field(t, "qos", meta->qos);
	mr_add_num_field(t, "num_nodes", meta->num_nodes);
	add_exit(t, meta->exit_status);
}

static void add_counts(struct pl_text *t, const struct pl_mon_node *node, uint64_t left_out)
{
	mr_add_bool_field(t, "partial", node->partial);
	mr_add_bool_field(t, "truncated", pl_mon_node_truncated(node) || left_out > 0);
	mr_add_num_field(t, "processes", node->processes);
	mr_add_num_field(t, "processes_incomplete", node->incomplete);
	mr_add_num_field(t, "processes_forked", node->forked);
	mr_add_num_field(t, "processes_truncated", node->processes_truncated);
	mr_add_num_field(t, "processes_unlogged", node->unlogged);
	mr_add_num_field(t, "python_tasks", node->python_tasks);
	mr_add_num_field(t, "python_tasks_unhooked", node->python_tasks_unhooked);
	mr_add_num_field(t, "logs_read", node->logs_read);
	mr_add_num_field(t, "logs_skipped", node->logs_skipped);
	mr_add_num_field(t, "lines_skipped", (long long)node->lines_skipped);
	mr_add_num_field(t, "lines_lost", (long long)node->lines_lost);
	pl_text_addf(t,
		     ",\"dropped\":{\"packages\":%u,\"distributions\":%u,\"imports\":%llu,"
		     "\"steps\":%u,\"mains\":%u,\"interpreters\":%u,\"containers\":%u,"
		     "\"exit_statuses\":%u,\"record\":%llu}",
		     node->pkgs.dropped, node->dists.dropped,
		     (unsigned long long)node->imports_truncated, node->steps.dropped,
		     node->mains.dropped, node->interpreters.dropped, node->containers.dropped,
		     node->statuses.dropped, (unsigned long long)left_out);
}

/* The record with every list cut as cut says; the entries left out are counted in a
 * first pass over the lists, so that the counts come before them in the text. */
static void build(struct pl_text *t, const struct pl_job_meta *meta, const struct pl_mon_node *node,
		  struct cut *cut)
{
	static const char *const step_names[3] = {"step", NULL, NULL};
	static const char *const main_names[3] = {"main", NULL, NULL};
	static const char *const interp_names[3] = {"executable", "version", "implementation"};
	static const char *const container_names[3] = {"runtime", NULL, NULL};
	static const char *const status_names[3] = {"status", NULL, NULL};
	static const char *const hook_names[3] = {"hook", NULL, NULL};
	struct pl_text lists = {0};

	add_tallies(&lists, "steps", &node->steps, step_names, cut);
	add_tallies(&lists, "interpreters", &node->interpreters, interp_names, cut);
	add_tallies(&lists, "mains", &node->mains, main_names, cut);
	add_tallies(&lists, "containers", &node->containers, container_names, cut);
	add_tallies(&lists, "exit_statuses", &node->statuses, status_names, cut);
	add_tallies(&lists, "hooks", &node->hooks, hook_names, cut);
	add_table(&lists, "packages", &node->pkgs, true, cut->keep_pkgs, cut);
	add_table(&lists, "distributions", &node->dists, false, cut->keep_dists, cut);
	pl_text_addf(t, "{\"schema\":\"%s\",\"schema_version\":%d", PL_MON_RECORD_SCHEMA,
		     PL_MON_RECORD_VERSION);
	add_job(t, meta);
	mr_add_time_field(t, "start_time", node->start);
	mr_add_time_field(t, "end_time", meta->end_time);
	mr_add_bool_field(t, "is_compute", true);
	mr_add_bool_field(t, "is_staff", meta->is_staff);
	mr_add_bool_field(t, "is_container", node->containers.n > 0 || node->containers.dropped);
	add_counts(t, node, cut->left_out);
	if (lists.failed)
		t->failed = true;
	else
		pl_text_add(t, lists.buf, lists.len);
	pl_text_free(&lists);
	pl_text_add(t, "}", 1);
}

static int compare_ranked(const void *a, const void *b)
{
	const struct ranked *x = a, *y = b;

	if (x->pkg->processes != y->pkg->processes)
		return x->pkg->processes > y->pkg->processes ? -1 : 1;
	return x->pos < y->pos ? -1 : (x->pos > y->pos);
}

/* keep[i]: entry i is among the limit most-used ones of tb; false when out of memory. */
static bool choose(const struct pl_mon_table *tb, size_t limit, bool *keep)
{
	struct ranked *r = malloc((tb->n + 1) * sizeof(*r));

	if (!r)
		return false;
	for (size_t i = 0; i < tb->n; i++) {
		r[i].pkg = &tb->items[i];
		r[i].pos = i;
		keep[i] = false;
	}
	if (tb->n > 1)
		qsort(r, tb->n, sizeof(*r), compare_ranked);
	for (size_t i = 0; i < tb->n && i < limit; i++)
		keep[r[i].pos] = true;
	free(r);
	return true;
}

char *pl_monitor_record(const struct pl_job_meta *meta, const struct pl_mon_node *node, size_t *len)
{
	return pl_monitor_record_capped(meta, node, 0, len);
}

char *pl_monitor_record_capped(const struct pl_job_meta *meta, const struct pl_mon_node *node,
			       size_t max, size_t *len)
{
	bool *keep_pkgs = calloc(node->pkgs.n + 1, sizeof(bool));
	bool *keep_dists = calloc(node->dists.n + 1, sizeof(bool));
	size_t biggest = node->pkgs.n > node->dists.n ? node->pkgs.n : node->dists.n;
	struct cut cut = {.limit = SIZE_MAX};
	struct pl_text t = {0};

	build(&t, meta, node, &cut);
	/* Halving the lists until the record fits: a handful of rounds at most. */
	while (max && !t.failed && t.len > max && cut.limit > 0 && keep_pkgs && keep_dists) {
		cut.limit = cut.limit == SIZE_MAX ? biggest / 2 : cut.limit / 2;
		if (!choose(&node->pkgs, cut.limit, keep_pkgs) ||
		    !choose(&node->dists, cut.limit, keep_dists))
			break;
		cut.keep_pkgs = keep_pkgs;
		cut.keep_dists = keep_dists;
		cut.left_out = 0;
		pl_text_free(&t);
		build(&t, meta, node, &cut);
	}
	free(keep_pkgs);
	free(keep_dists);
	if (t.failed || !keep_pkgs || !keep_dists) {
		pl_text_free(&t);
		return NULL;
	}
	*len = t.len;
	return t.buf;
}
