#include "stage.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cache_stage.h"
#include "env_kind.h"
#include "extract.h"
#include "log.h"
#include "purge.h"
#include "stage_dir.h"
#include "stage_tree.h"
#include "tree_stage.h"

#define STATUS_OK "ok"
#define STATUS_ERROR "error "
#define STATUS_ROOT " root="
/* In .state/<jobid>: what the job's stagings on this node took ("BYTES ENTRIES"), and the
 * lock they take turns on (keys are 16 hex digits: no clash). */
#define USAGE_FILE "usage"
#define JOB_LOCK "job"

/* ------------------------------------------------------------ user side */

struct stage_work {
	const struct pl_config *cfg;
	const struct pl_bundle_list *bundles;
	char tree[PATH_MAX];
	int count_fd; /* the user's child writes here what it read of the shared file system */
};

/* A pipe of its own, not the report: the count goes back whether the staging worked or not; a
 * count that cannot be written is logged as "-" and the staging stands. */
static void send_count(int fd, uint64_t bytes_read)
{
	ssize_t n = write(fd, &bytes_read, sizeof(bytes_read));

	(void)n;
}

/* Runs as the user. */
static int stage_as_user(void *arg, char *msg, size_t len)
{
	struct stage_work *w = arg;
	struct pl_stage_fill fill = {.fn = pl_stage_fill_direct,
				     .ctx = (void *)w->bundles,
				     .max_bytes = w->cfg->stage_max_size,
				     .max_entries = w->cfg->stage_max_entries,
				     .nbundles = w->bundles->n};
	uint64_t bytes_read = 0;
	int rc = pl_stage_make_tree(w->tree, &fill, &bytes_read, msg, len);

	send_count(w->count_fd, bytes_read);
	return rc;
}

/* ------------------------------------------------------------ root side */

static double seconds_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static void tree_path(const struct pl_config *cfg, uint32_t job_id, const char *key, char *buf,
		      size_t len)
{
	snprintf(buf, len, "%s/%u/%s", cfg->stage_dir, job_id, key);
}

static void result_from_status(const char *status, struct pl_stage_result *res)
{
	res->ok = strncmp(status, STATUS_OK, strlen(STATUS_OK)) == 0;
	/* A tree of the node cache is not under the job's directory. */
	if (res->ok && strncmp(status, STATUS_OK STATUS_ROOT, strlen(STATUS_OK STATUS_ROOT)) == 0)
		snprintf(res->root, sizeof(res->root), "%.*s", (int)(sizeof(res->root) - 1),
			 status + strlen(STATUS_OK STATUS_ROOT));
	if (!res->ok)
		snprintf(res->message, sizeof(res->message), "%.*s",
			 (int)(sizeof(res->message) - 1),
			 strncmp(status, STATUS_ERROR, strlen(STATUS_ERROR)) == 0
			     ? status + strlen(STATUS_ERROR)
			     : "unreadable staging status");
}

/* What the one line per staging in the slurmd log says (pylaunch(8), "Logs"). */
struct stage_report {
	const char *mode;    /* tree, direct */
	const char *role;    /* root, interior, leaf; single when direct */
	const char *parent;  /* the node that served the stream, "-" */
	const char *outcome; /* staged, reattached, direct (fell back), cached, failed */
	uint64_t bytes;	     /* stream bytes received (tree) */
	long long shared;    /* bytes read from the shared file system, -1 unknown */
	const char *reason;  /* why the tree was not used or was left */
	struct timespec start;
	char parent_buf[PL_NODE_NAME_MAX + 1];
	char reason_buf[PL_ERRLEN];
};

static double epoch(const struct timespec *t)
{
	return (double)t->tv_sec + (double)t->tv_nsec / 1e9;
}

static void log_stage(uint32_t job_id, const char *node, const struct stage_report *r,
		      const struct pl_stage_result *res)
{
	struct timespec end;
	char shared[32] = "-";
	char kind[16] = "-";

	clock_gettime(CLOCK_REALTIME, &end);
	if (res->ok)
		pl_env_kind_of_summary(res->message, kind, sizeof(kind));
	if (r->shared >= 0)
		snprintf(shared, sizeof(shared), "%lld", r->shared);
	pl_info("stage job=%u node=%s mode=%s role=%s parent=%s outcome=%s bytes=%" PRIu64
		" shared_bytes=%s kind=%s start=%.3f end=%.3f seconds=%.2f reason=\"%s\"",
		job_id, node, r->mode, r->role, r->parent, res->ok ? r->outcome : "failed",
		r->bytes, shared, kind, epoch(&r->start), epoch(&end), res->seconds,
		r->reason ? r->reason : "");
}

/* What the user's child counted, -1 if it said nothing (it was killed, or never started). */
static long long read_count(int fd)
{
	uint64_t n;

	return read(fd, &n, sizeof(n)) == (ssize_t)sizeof(n) && n <= (uint64_t)LLONG_MAX
		   ? (long long)n
		   : -1;
}

/* timeout: what is left of stage.timeout (the tree may have used some of it). *shared: the
 * bytes read from the shared file system. */
static void stage_direct(const struct pl_config *cfg, const struct pl_user *user,
			 const struct pl_bundle_list *list, unsigned timeout,
			 struct pl_stage_result *res, long long *shared)
{
	struct stage_work work = {.cfg = cfg, .bundles = list};
	struct pl_user_child child;
	int fds[2];

	*shared = -1;
	snprintf(work.tree, sizeof(work.tree), "%s", res->root);
	if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0) {
		snprintf(res->message, sizeof(res->message), "pipe: %s", strerror(errno));
		res->ok = false;
		return;
	}
	work.count_fd = fds[1];
	res->ok = pl_spawn_as_user(user, stage_as_user, &work, fds[1], &child, res->message,
				   sizeof(res->message)) == 0;
	close(fds[1]);
	if (res->ok) {
		res->ok = pl_user_child_finish(&child, timeout ? timeout : 1, res->message,
					       sizeof(res->message)) == 0;
		*shared = read_count(fds[0]);
	}
	close(fds[0]);
}

/* The direct path with the node cache (cache_stage.h): a hit stages nothing, a miss stages into
 * the cache's view of the entry and hands the tree to the cache. */
static void stage_direct_cached(const struct pl_config *cfg, int basefd, uint32_t job_id,
				const struct pl_user *user, const struct pl_bundle_list *list,
				struct pl_stage_result *res, struct stage_report *r)
{
	struct pl_cache_ticket t;
	char why[PL_ERRLEN];

	if (!cfg->cache_enabled ||
	    pl_cache_begin(cfg, basefd, job_id, user, list, &t, why, sizeof(why)) < 0) {
		if (cfg->cache_enabled)
			pl_info("job %u: node cache %s", job_id, why);
		stage_direct(cfg, user, list, cfg->stage_timeout, res, &r->shared);
		return;
	}
	snprintf(res->root, sizeof(res->root), "%s", t.root);
	if (t.hit) {
		res->ok = true;
		snprintf(res->message, sizeof(res->message), "%s", t.summary);
		r->outcome = "cached";
		r->shared = (long long)t.shared_bytes;
		pl_cache_done(&t);
		return;
	}
	stage_direct(cfg, user, list, cfg->stage_timeout, res, &r->shared);
	if (r->shared >= 0)
		r->shared += (long long)t.shared_bytes;
	pl_cache_end(cfg, &t, res->ok, res->message);
}

/* The tree needs Slurm's word that this node is one of them, and more than one node. */
static const char *tree_refusal(const struct pl_config *cfg, const struct pl_stage_peers *peers,
				struct pl_hostlist *hl, size_t *self, char *buf, size_t len)
{
	if (!cfg->tree_enabled)
		return "tree.enabled is off";
	if (peers->no_tree)
		return peers->no_tree;
	if (!peers->nodelist)
		return "no node list";
	if (pl_hostlist_expand(peers->nodelist, hl, buf, len) < 0)
		return buf;
	if (hl->n < 2)
		return "a single node";
	*self = peers->self ? pl_hostlist_index(hl, peers->self) : peers->self_index;
	if (*self >= hl->n) {
		snprintf(buf, len, "this node (%s) is not in the node list %s",
			 peers->self ? peers->self : "?", peers->nodelist);
		return buf;
	}
	return NULL;
}

static void stage_tree(const struct pl_config *cfg, const struct pl_tree_plan *plan,
		       struct stage_report *r, struct pl_stage_result *res)
{
	struct pl_tree_outcome out;
	struct pl_tree_run run;
	struct timespec t0;
	double used;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	r->mode = "tree";
	/* A node that only relays has its tree already: a failed stream is its children's loss. */
	if (pl_tree_start(plan, &run, r->reason_buf, sizeof(r->reason_buf)) < 0) {
		r->reason = r->reason_buf;
		if (!plan->relay_only)
			stage_direct(cfg, plan->user, plan->bundles, cfg->stage_timeout, res,
				     &r->shared);
		r->outcome = "direct";
		return;
	}
	pl_tree_outcome(&run, cfg->stage_timeout, &out);
	r->role = out.role;
	snprintf(r->parent_buf, sizeof(r->parent_buf), "%s", out.parent);
	r->parent = r->parent_buf;
	r->bytes = out.bytes_in;
	r->shared = (long long)out.shared_bytes;
	if (out.result == PL_TREE_DIRECT) {
		snprintf(r->reason_buf, sizeof(r->reason_buf), "%s", out.message);
		r->reason = r->reason_buf;
		r->outcome = "direct";
		used = seconds_since(&t0);
		if (!plan->relay_only)
			stage_direct(cfg, plan->user, plan->bundles,
				     used < cfg->stage_timeout ? cfg->stage_timeout - (unsigned)used
							       : 0,
				     res, &r->shared);
	} else {
		res->ok = out.result == PL_TREE_STAGED;
		snprintf(res->message, sizeof(res->message), "%s", out.message);
		r->outcome = out.reattached ? "reattached" : "staged";
	}
	/* The nodes below may still be served after this one is staged. */
	pl_tree_finish(&run, cfg->tree_stall_timeout + 2 * cfg->tree_connect_timeout + 5);
}

/* The tree with the node cache. The cache is looked up by the bundles' metadata alone: with
 * cache.verify_digest every node would read the bundles whole, what the tree is there to avoid.
 * A hit still takes its part in the stream, passing it on to the nodes below without extracting
 * it (they may not have the tree; which do, no node knows), and its tree is the cache's whatever
 * the stream does. A miss extracts the stream into the cache's entry, as the direct path does. */
static void stage_tree_cached(const struct pl_config *cfg, int basefd, struct pl_tree_plan *plan,
			      struct stage_report *r, struct pl_stage_result *res)
{
	struct pl_cache_ticket t;
	char why[PL_ERRLEN];

	if (!cfg->cache_enabled || cfg->cache_verify_digest ||
	    pl_cache_begin(cfg, basefd, plan->job_id, plan->user, plan->bundles, &t, why,
			   sizeof(why)) < 0) {
		if (cfg->cache_enabled && !cfg->cache_verify_digest)
			pl_info("job %u: node cache %s", plan->job_id, why);
		stage_tree(cfg, plan, r, res);
		return;
	}
	snprintf(res->root, sizeof(res->root), "%s", t.root);
	plan->relay_only = t.hit;
	stage_tree(cfg, plan, r, res);
	if (!t.hit) {
		pl_cache_end(cfg, &t, res->ok, res->message);
		return;
	}
	res->ok = true; /* the relay's fate is its children's: this node has its tree */
	snprintf(res->message, sizeof(res->message), "%s", t.summary);
	r->outcome = "cached";
	pl_cache_done(&t);
}

static void stage_now(const struct pl_config *cfg, int basefd, uint32_t job_id,
		      const struct pl_user *user, const char *bundles, const char *key,
		      const struct pl_stage_peers *peers, struct pl_stage_result *res)
{
	struct stage_report r = {
	    .mode = "direct", .role = "single", .parent = "-", .outcome = "staged", .shared = -1};
	struct pl_hostlist hl = {0};
	struct pl_bundle_list list;
	char why[PL_ERRLEN];
	struct timespec t0;
	size_t self = 0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	clock_gettime(CLOCK_REALTIME, &r.start);
	if (pl_bundle_list_parse(bundles, "/", &list, res->message, sizeof(res->message)) < 0)
		return;
	if (pl_stage_job_dir(basefd, job_id, user, res->message, sizeof(res->message)) == 0) {
		r.reason = tree_refusal(cfg, peers, &hl, &self, why, sizeof(why));
		if (r.reason) {
			stage_direct_cached(cfg, basefd, job_id, user, &list, res, &r);
		} else {
			struct pl_tree_plan plan = {.cfg = cfg,
						    .context = peers->context,
						    .job_id = job_id,
						    .key = key,
						    .nodes = &hl,
						    .self = self,
						    .user = user,
						    .bundles = &list,
						    .tree = res->root,
						    .slurm_uid = peers->slurm_uid};

			stage_tree_cached(cfg, basefd, &plan, &r, res);
		}
	}
	res->seconds = seconds_since(&t0);
	log_stage(job_id, hl.n ? hl.names[self] : (peers->self ? peers->self : "?"), &r, res);
	pl_hostlist_free(&hl);
	pl_bundle_list_free(&list);
}

/* ------------------------------------------------------------ the job's budget */

struct usage {
	uint64_t bytes;
	uint64_t entries;
};

static void usage_read(int statefd, struct usage *u)
{
	char text[64];

	memset(u, 0, sizeof(*u));
	if (pl_stage_status_read(statefd, USAGE_FILE, text, sizeof(text)) == 0 &&
	    sscanf(text, "%" SCNu64 " %" SCNu64, &u->bytes, &u->entries) != 2)
		memset(u, 0, sizeof(*u));
}

/* What a staging took, from its summary; a failed staging removed its tree and took nothing. */
static void usage_add(int statefd, struct usage *u, const struct pl_stage_result *res)
{
	const char *tag = strstr(res->message, "; took ");
	uint64_t bytes, entries;
	char text[64];

	if (!res->ok || !tag ||
	    sscanf(tag, "; took %" SCNu64 " bytes, %" SCNu64 " entries", &bytes, &entries) != 2)
		return;
	u->bytes += bytes;
	u->entries += entries;
	snprintf(text, sizeof(text), "%" PRIu64 " %" PRIu64, u->bytes, u->entries);
	if (pl_stage_status_write(statefd, USAGE_FILE, text) < 0)
		pl_error_errno(errno, "cannot record the staging budget");
}

/* The configuration a staging runs with: the caps less what the job's earlier stagings on this
 * node took. -1 with the reason when nothing is left. */
static int capped_config(const struct pl_config *cfg, const struct usage *u,
			 struct pl_config *capped, struct pl_stage_result *res)
{
	*capped = *cfg;
	if (u->bytes >= cfg->stage_max_size || u->entries >= cfg->stage_max_entries) {
		snprintf(res->message, sizeof(res->message),
			 "this job's earlier stagings on this node took its whole budget "
			 "(%" PRIu64 " of stage.max_size %" PRIu64 " bytes, %" PRIu64
			 " of stage.max_entries %u entries)",
			 u->bytes, cfg->stage_max_size, u->entries, cfg->stage_max_entries);
		return -1;
	}
	capped->stage_max_size = cfg->stage_max_size - u->bytes;
	capped->stage_max_entries = cfg->stage_max_entries - (unsigned)u->entries;
	return 0;
}

/* A cap that bit on what earlier stagings left says so: "more than 400 entries" alone would
 * puzzle a user whose site allows 1000. */
static void explain_cap(const struct pl_config *cfg, const struct usage *u,
			struct pl_stage_result *res)
{
	size_t len = strlen(res->message);

	if (res->ok || (!u->bytes && !u->entries) ||
	    (!strstr(res->message, "stage.max_entries") && !strstr(res->message, "stage.max_size")))
		return;
	snprintf(res->message + len, sizeof(res->message) - len,
		 " (what this job's earlier stagings on this node left of stage.max_size %" PRIu64
		 " bytes and stage.max_entries %u: they took %" PRIu64 " bytes, %" PRIu64
		 " entries)",
		 cfg->stage_max_size, cfg->stage_max_entries, u->bytes, u->entries);
}

static void record_status(int statefd, const char *key, const struct pl_stage_result *res)
{
	char text[PL_ERRLEN + PATH_MAX];

	snprintf(text, sizeof(text), "%s%s%s", res->ok ? STATUS_OK : STATUS_ERROR,
		 res->ok ? STATUS_ROOT : "", res->ok ? res->root : res->message);
	if (pl_stage_status_write(statefd, key, text) < 0)
		pl_error_errno(errno, "cannot record the staging status of %s", key);
}

int pl_stage_ensure(const struct pl_config *cfg, uint32_t job_id, const struct pl_user *user,
		    const char *bundles, const char *key, const struct pl_stage_peers *peers,
		    struct pl_stage_result *res)
{
	char status[PL_ERRLEN + PATH_MAX];
	struct pl_config capped;
	struct usage used;
	int basefd = -1;
	int statefd = -1;
	int lockfd = -1;
	int rc = -1;

	memset(res, 0, sizeof(*res));
	tree_path(cfg, job_id, key, res->root, sizeof(res->root));
	if (pl_stage_base_open(cfg->stage_dir, &basefd, res->message, sizeof(res->message)) < 0 ||
	    pl_stage_state_open(basefd, job_id, &statefd, res->message, sizeof(res->message)) < 0)
		goto out;
	lockfd = pl_stage_lock(statefd, JOB_LOCK);
	if (lockfd < 0) {
		snprintf(res->message, sizeof(res->message), "lock %s: %s", JOB_LOCK,
			 strerror(errno));
		goto out;
	}
	rc = 0;
	if (pl_stage_status_read(statefd, key, status, sizeof(status)) == 0) {
		res->reused = true;
		result_from_status(status, res);
		goto out;
	}
	usage_read(statefd, &used);
	if (capped_config(cfg, &used, &capped, res) == 0) {
		stage_now(&capped, basefd, job_id, user, bundles, key, peers, res);
		explain_cap(cfg, &used, res);
		usage_add(statefd, &used, res);
	}
	record_status(statefd, key, res);
out:
	if (lockfd >= 0)
		close(lockfd);
	if (statefd >= 0)
		close(statefd);
	if (basefd >= 0)
		close(basefd);
	return rc;
}

struct purge_work {
	char job_dir[PATH_MAX];
	long long deadline_ms; /* 0: none */
};

static int purge_as_user(void *arg, char *msg, size_t len)
{
	struct purge_work *w = arg;

	return pl_empty_tree_until(w->job_dir, w->deadline_ms, msg, len);
}

void pl_stage_purge(const struct pl_config *cfg, uint32_t job_id, const struct pl_user *user,
		    long long deadline_ms)
{
	struct purge_work work = {.deadline_ms = deadline_ms};
	long long left_ms = deadline_ms - pl_purge_now_ms();
	char msg[PL_ERRLEN] = "";
	char name[16];
	struct stat st;
	int basefd;

	if (pl_stage_base_open(cfg->stage_dir, &basefd, msg, sizeof(msg)) < 0)
		return;
	snprintf(name, sizeof(name), "%u", job_id);
	snprintf(work.job_dir, sizeof(work.job_dir), "%s/%s", cfg->stage_dir, name);
	/* The child stops itself at the deadline; the kill a second later is the backstop. */
	if (fstatat(basefd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode) &&
	    pl_run_as_user(user, purge_as_user, &work,
			   left_ms > 0 ? (unsigned)(left_ms / 1000) + 1 : 1, msg, sizeof(msg)) < 0)
		pl_error("epilog job %u: purge of %s incomplete, left for a later sweep: %s",
			 job_id, work.job_dir, msg);
	pl_stage_remove_job_entries(basefd, job_id);
	if (fstatat(basefd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
		pl_error("epilog job %u: %s is left behind for a later sweep", job_id,
			 work.job_dir);
	pl_cache_job_end(cfg, basefd, job_id);
	close(basefd);
}
