#include "monitor_record.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"

/* A group can have many members: NSS buffers grow up to this. */
#define NSS_BUF_MAX (4 * 1024 * 1024)
#define GROUPS_MAX 65536

/* ------------------------------------------------------------------ text */

void pl_text_free(struct pl_text *t)
{
	free(t->buf);
	memset(t, 0, sizeof(*t));
}

static bool text_reserve(struct pl_text *t, size_t more)
{
	size_t cap = t->cap ? t->cap : 1024;
	char *grown;

	if (t->failed)
		return false;
	if (t->len + more + 1 <= t->cap)
		return true;
	while (cap < t->len + more + 1)
		cap *= 2;
	grown = realloc(t->buf, cap);
	if (!grown) {
		t->failed = true;
		return false;
	}
	t->buf = grown;
	t->cap = cap;
	return true;
}

void pl_text_add(struct pl_text *t, const char *s, size_t len)
{
	if (!text_reserve(t, len))
		return;
	memcpy(t->buf + t->len, s, len);
	t->len += len;
	t->buf[t->len] = '\0';
}

void pl_text_addf(struct pl_text *t, const char *fmt, ...)
{
	char small[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0) {
		t->failed = true;
		return;
	}
	if ((size_t)n < sizeof(small)) {
		pl_text_add(t, small, (size_t)n);
		return;
	}
	if (!text_reserve(t, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(t->buf + t->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	t->len += (size_t)n;
}

static void add_str(struct pl_text *t, const char *s)
{
	pl_text_add(t, s, strlen(s));
}

/* ------------------------------------------------------------------ JSON strings */

/* The code point of the UTF-8 sequence at s, its length in *n; -1 (and *n = 1) when
 * the bytes are not UTF-8 (overlong, surrogate, past U+10FFFF, cut short). */
static long decode_utf8(const unsigned char *s, size_t len, size_t *n)
{
	unsigned long cp, min;
	size_t need;

	*n = 1;
	if (s[0] < 0x80)
		return s[0];
	if ((s[0] & 0xe0) == 0xc0)
		need = 2, cp = s[0] & 0x1fUL, min = 0x80;
	else if ((s[0] & 0xf0) == 0xe0)
		need = 3, cp = s[0] & 0x0fUL, min = 0x800;
	else if ((s[0] & 0xf8) == 0xf0)
		need = 4, cp = s[0] & 0x07UL, min = 0x10000;
	else
		return -1;
	if (need > len)
		return -1;
	for (size_t i = 1; i < need; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return -1;
		cp = (cp << 6) | (s[i] & 0x3fUL);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return -1;
	*n = need;
	return (long)cp;
}

static void add_code_point(struct pl_text *t, unsigned long cp)
{
	if (cp >= 0x10000) {
		cp -= 0x10000;
		pl_text_addf(t, "\\u%04lx\\u%04lx", 0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
		return;
	}
	pl_text_addf(t, "\\u%04lx", cp);
}

static void add_ascii_char(struct pl_text *t, char c)
{
	switch (c) {
	case '"':
		pl_text_add(t, "\\\"", 2);
		break;
	case '\\':
		pl_text_add(t, "\\\\", 2);
		break;
	case '\n':
		pl_text_add(t, "\\n", 2);
		break;
	case '\t':
		pl_text_add(t, "\\t", 2);
		break;
	case '\r':
		pl_text_add(t, "\\r", 2);
		break;
	default:
		if ((unsigned char)c < 0x20 || c == 0x7f)
			add_code_point(t, (unsigned char)c);
		else
			pl_text_add(t, &c, 1);
	}
}

void pl_json_add_string(struct pl_text *t, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;

	pl_text_add(t, "\"", 1);
	while (len > 0) {
		size_t n;
		long cp = decode_utf8(p, len, &n);

		if (cp < 0)
			add_code_point(t, 0xfffd);
		else if (cp < 0x80)
			add_ascii_char(t, (char)cp);
		else
			add_code_point(t, (unsigned long)cp);
		p += n;
		len -= n;
	}
	pl_text_add(t, "\"", 1);
}

/* ------------------------------------------------------------------ JSON values */

static void add_json_str_or_null(struct pl_text *t, const char *s)
{
	if (s)
		pl_json_add_string(t, s, strlen(s));
	else
		add_str(t, "null");
}

/* ,"key": */
static void add_key(struct pl_text *t, const char *key, bool first)
{
	if (!first)
		pl_text_add(t, ",", 1);
	pl_json_add_string(t, key, strlen(key));
	pl_text_add(t, ":", 1);
}

static void add_str_field(struct pl_text *t, const char *key, const char *value)
{
	add_key(t, key, false);
	add_json_str_or_null(t, value);
}

static void add_num_field(struct pl_text *t, const char *key, long long value)
{
	add_key(t, key, false);
	if (value < 0)
		add_str(t, "null");
	else
		pl_text_addf(t, "%lld", value);
}

static void add_bool_field(struct pl_text *t, const char *key, bool value)
{
	add_key(t, key, false);
	add_str(t, value ? "true" : "false");
}

static void add_time_field(struct pl_text *t, const char *key, double value)
{
	char buf[40];

	add_key(t, key, false);
	if (value <= 0) {
		add_str(t, "null");
		return;
	}
	pl_monitor_rfc3339(value, buf, sizeof(buf));
	add_json_str_or_null(t, buf);
}

void pl_monitor_rfc3339(double t, char *buf, size_t len)
{
	time_t secs = (time_t)t; /* t > 0: truncation is floor, and no libm */
	long ms = (long)((t - (double)secs) * 1000.0);
	struct tm tm;

	if (ms > 999)
		ms = 999;
	gmtime_r(&secs, &tm);
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

/* ------------------------------------------------------------------ record parts */

static void add_exit(struct pl_text *t, long long status)
{
	int st = (int)status;

	add_key(t, "exit", false);
	if (status < 0 || status > UINT32_MAX) {
		add_str(t, "null");
		return;
	}
	pl_text_addf(t, "{\"status\":%lld,\"code\":%d,\"signal\":%d}", status,
		     WIFEXITED(st) ? WEXITSTATUS(st) : 0, WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

/* What a record over monitor.record_max leaves out: every list is cut to limit entries
 * (the most-used ones kept); left_out counts what was cut. */
struct cut {
	size_t limit;
	const bool *keep_pkgs, *keep_dists; /* NULL: all */
	uint64_t left_out;
};

/* [{"<names[0]>":"...",...,"processes":N}, ...] */
static void add_tallies(struct pl_text *t, const char *key, const struct pl_mon_tallies *tl,
			const char *const names[3], struct cut *cut)
{
	size_t n = tl->n < cut->limit ? tl->n : cut->limit;

	cut->left_out += tl->n - n;
	add_key(t, key, false);
	pl_text_add(t, "[", 1);
	for (size_t i = 0; i < n; i++) {
		if (i)
			pl_text_add(t, ",", 1);
		pl_text_add(t, "{", 1);
		for (int k = 0; k < 3 && names[k]; k++) {
			add_key(t, names[k], k == 0);
			add_json_str_or_null(t, tl->items[i].keys[k]);
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
	add_key(t, "name", true);
	add_json_str_or_null(t, pkg->name);
	pl_text_addf(t, ",\"processes\":%u,\"incomplete\":%u", pkg->processes, pkg->incomplete);
	add_ranks(t, pkg);
	add_bool_field(t, "ranks_truncated", pkg->ranks_truncated);
	add_tallies(t, "versions", &pkg->versions, version_names, &all);
	pl_text_addf(t, ",\"versions_dropped\":%u", pkg->versions.dropped);
	add_tallies(t, "origins", &pkg->origins, origin_names, &all);
	if (is_import)
		add_str_field(t, "distribution", pkg->distribution);
	pl_text_add(t, "}", 1);
}

static void add_table(struct pl_text *t, const char *key, const struct pl_mon_table *tb,
		      bool is_import, const bool *keep, struct cut *cut)
{
	bool first = true;

	add_key(t, key, false);
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
	add_str_field(t, "cluster", meta->cluster);
	add_num_field(t, "job_id", meta->job_id);
	add_str_field(t, "node", meta->node);
	add_str_field(t, "user", meta->user);
	add_num_field(t, "uid", meta->uid);
	add_str_field(t, "account", meta->account);
	add_str_field(t, "partition", meta->partition);
	add_str_field(t, "qos", meta->qos);
	add_num_field(t, "num_nodes", meta->num_nodes);
	add_exit(t, meta->exit_status);
}

static void add_counts(struct pl_text *t, const struct pl_mon_node *node, uint64_t left_out)
{
	add_bool_field(t, "partial", node->partial);
	add_bool_field(t, "truncated", pl_mon_node_truncated(node) || left_out > 0);
	add_num_field(t, "processes", node->processes);
	add_num_field(t, "processes_incomplete", node->incomplete);
	add_num_field(t, "processes_forked", node->forked);
	add_num_field(t, "processes_truncated", node->processes_truncated);
	add_num_field(t, "processes_unlogged", node->unlogged);
	add_num_field(t, "python_tasks", node->python_tasks);
	add_num_field(t, "python_tasks_unhooked", node->python_tasks_unhooked);
	add_num_field(t, "logs_read", node->logs_read);
	add_num_field(t, "logs_skipped", node->logs_skipped);
	add_num_field(t, "lines_skipped", (long long)node->lines_skipped);
	add_num_field(t, "lines_lost", (long long)node->lines_lost);
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
	add_time_field(t, "start_time", node->start);
	add_time_field(t, "end_time", meta->end_time);
	add_bool_field(t, "is_compute", true);
	add_bool_field(t, "is_staff", meta->is_staff);
	add_bool_field(t, "is_container", node->containers.n > 0 || node->containers.dropped);
	add_counts(t, node, cut->left_out);
	if (lists.failed)
		t->failed = true;
	else
		pl_text_add(t, lists.buf, lists.len);
	pl_text_free(&lists);
	pl_text_add(t, "}", 1);
}

struct ranked {
	const struct pl_mon_package *pkg;
	size_t pos;
};

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

/* ------------------------------------------------------------------ job metadata */

static const char *env_value(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

static long long env_number(const char *name)
{
	const char *v = env_value(name);
	char *end;
	unsigned long long n;

	if (!v || v[0] < '0' || v[0] > '9')
		return -1;
	errno = 0;
	n = strtoull(v, &end, 10);
	return (*end || errno || n > UINT32_MAX) ? -1 : (long long)n;
}

void pl_job_meta_from_env(struct pl_job_meta *meta, uint32_t job_id, uid_t uid)
{
	struct timespec now;

	memset(meta, 0, sizeof(*meta));
	meta->job_id = job_id;
	meta->uid = (long long)uid;
	meta->cluster = env_value("SLURM_CLUSTER_NAME");
	meta->user = env_value("SLURM_JOB_USER");
	meta->account = env_value("SLURM_JOB_ACCOUNT");
	meta->partition = env_value("SLURM_JOB_PARTITION");
	/* Not in the prolog/epilog environment of Slurm 22.05; taken where a release sets it. */
	meta->qos = env_value("SLURM_JOB_QOS");
	meta->node = env_value("SLURMD_NODENAME");
	meta->num_nodes = env_number("SLURM_JOB_NUM_NODES");
	meta->exit_status = env_number("SLURM_JOB_EXIT_CODE");
	clock_gettime(CLOCK_REALTIME, &now);
	meta->end_time = (double)now.tv_sec + now.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------ staff */

bool pl_monitor_groups_intersect(const gid_t *gids, size_t n, const gid_t *staff, size_t m)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < m; j++)
			if (gids[i] == staff[j])
				return true;
	return false;
}

/* The gid of the group called name; false when there is none (or NSS fails). */
static bool group_gid(const char *name, gid_t *gid)
{
	size_t size = 16384;
	bool found = false;

	for (;;) {
		struct group gr, *res = NULL;
		char *buf = malloc(size);
		int rc;

		if (!buf)
			return false;
		rc = getgrnam_r(name, &gr, buf, size, &res);
		if (rc == 0 && res) {
			*gid = res->gr_gid;
			found = true;
		}
		free(buf);
		if (rc != ERANGE || size >= NSS_BUF_MAX)
			return found;
		size *= 2;
	}
}

/* uid's user name into buf; false when uid has no passwd entry. */
static bool user_name(uid_t uid, char *name, size_t len)
{
	struct passwd pw, *res = NULL;
	char buf[16384];

	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) != 0 || !res ||
	    strlen(res->pw_name) >= len)
		return false;
	strcpy(name, res->pw_name);
	return true;
}

/* uid's groups, primary gid included; the count, or -1. *gids is malloc'ed. */
static int user_groups(uid_t uid, gid_t gid, gid_t **gids)
{
	char name[256];
	int n = 64;

	*gids = NULL;
	if (!user_name(uid, name, sizeof(name))) {
		if (!(*gids = malloc(sizeof(**gids))))
			return -1;
		(*gids)[0] = gid;
		return 1;
	}
	for (;;) {
		int want = n;
		gid_t *grown = realloc(*gids, (size_t)n * sizeof(**gids));

		if (!grown)
			break;
		*gids = grown;
		if (getgrouplist(name, gid, *gids, &want) >= 0)
			return want;
		if (want <= n || want > GROUPS_MAX)
			break;
		n = want;
	}
	free(*gids);
	*gids = NULL;
	return -1;
}

bool pl_monitor_is_staff(uid_t uid, gid_t gid, char *const *groups, size_t n_groups)
{
	gid_t staff[PL_CONFIG_MAX_STAFF_GROUPS];
	size_t m = 0;
	gid_t *gids = NULL;
	int n;
	bool is_staff = false;

	for (size_t i = 0; i < n_groups && m < sizeof(staff) / sizeof(staff[0]); i++)
		if (groups[i] && group_gid(groups[i], &staff[m]))
			m++;
	if (m == 0)
		return false;
	n = user_groups(uid, gid, &gids);
	if (n > 0)
		is_staff = pl_monitor_groups_intersect(gids, (size_t)n, staff, m);
	free(gids);
	return is_staff;
}
