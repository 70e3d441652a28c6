#include "ctx_remote.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <slurm/slurm.h>

#include "bundle.h"
#include "env_kind.h"
#include "job_cgroup.h"
#include "log.h"
#include "monitor.h"
#include "monitor_spool.h"
#include "monitor_task.h"
#include "options.h"
#include "options_env.h"
#include "optparse.h"
#include "plugin.h"
#include "site_bundles.h"
#include "stage.h"
#include "task_env.h"
#include "tree_net.h"
#include "tree_topology.h"

#define PL_ENV_VALUE_MAX 16384

/* What this step on this node resolved and staged, kept for task_init (which
 * runs in the task, forked from this slurmstepd after post_opt). */
static struct {
	bool resolved;
	struct pl_resolved job;
	char error[PL_ERRLEN];
	bool staged;
	struct pl_stage_result stage;
	char where[320];
	char node[256];
} step;

int pl_remote_init(spank_t sp, int ac, char **av)
{
	pl_plugin_load(ac, av);
	return pl_options_register(sp);
}

static const char *step_env(spank_t sp, const char *name, char *buf, int len)
{
	return spank_getenv(sp, name, buf, len) == ESPANK_SUCCESS ? buf : NULL;
}

static void describe_step(spank_t sp, char *buf, size_t len)
{
	uint32_t job_id = 0;
	uint32_t step_id = 0;
	char node[256];

	spank_get_item(sp, S_JOB_ID, &job_id);
	spank_get_item(sp, S_JOB_STEPID, &step_id);
	/* Not SLURMD_NODENAME: before the tasks exist the step's environment holds
	 * the value inherited from the batch step (the first node's name). */
	if (gethostname(node, sizeof(node)) < 0)
		strcpy(node, "?");
	node[sizeof(node) - 1] = '\0';
	snprintf(step.node, sizeof(step.node), "%s", node);
	if (step_id == SLURM_BATCH_SCRIPT)
		snprintf(buf, len, "job %u batch step on %s", job_id, node);
	else
		snprintf(buf, len, "job %u step %u on %s", job_id, step_id, node);
}

/* The normalised list comes from srun/sbatch through the step's environment;
 * if it is missing, the raw value is resolved against the submit directory. */
static int resolve_step(spank_t sp)
{
	static char normalized[PL_ENV_VALUE_MAX];
	char submit_dir[4096];
	const char *base;

	base = step_env(sp, "SLURM_SUBMIT_DIR", submit_dir, sizeof(submit_dir));
	return pl_request_resolve(pl_options_request(),
				  step_env(sp, PL_ENV_PYBUNDLE, normalized, sizeof(normalized)),
				  base ? base : "/", pl_plugin_config()->monitor_default, &step.job,
				  step.error, sizeof(step.error));
}

/* Derived by root from the list it resolved, never taken from the step's environment (which
 * the user sets): see job_key in ctx_job_script.c. */
static void step_key(char key[PL_KEY_LEN + 1])
{
	pl_key_of_text(step.job.pybundle, key);
}

/* SLURM_STEP_NODELIST is in the environment srun sent, which a user can forge. Slurm 22.05's
 * SPANK has no item for the step's node list, but S_JOB_NNODES and S_JOB_NODEID come from the
 * step's layout in its credential, signed by slurmctld: a list of another length is not used,
 * and the step stages on each node by itself. (Names are not compared: NodeName need not be the
 * host name. A forged list of the right length can only point this step's own tree at nodes
 * that refuse it, as every tree connection is authenticated: the step then stages directly.) */
static const char *check_step_nodelist(spank_t sp, const char *nodelist, uint32_t node_id)
{
	struct pl_hostlist hl = {0};
	uint32_t nnodes = 0;
	char why[128];
	bool ok;

	if (!nodelist || spank_get_item(sp, S_JOB_NNODES, &nnodes) != ESPANK_SUCCESS ||
	    pl_hostlist_expand(nodelist, &hl, why, sizeof(why)) < 0)
		return "the step's node list cannot be checked against Slurm's step layout";
	ok = hl.n == nnodes && node_id < hl.n;
	pl_hostlist_free(&hl);
	return ok ? NULL
		  : "SLURM_STEP_NODELIST does not match Slurm's step layout (its node count)";
}

/* A step's nodes start their slurmstepds together, so they can fan the bundles out among
 * themselves like the prologs of a job; this node is the step's node number S_JOB_NODEID. */
static void step_peers(spank_t sp, struct pl_stage_peers *peers, char *nodelist, int len)
{
	struct pl_slurm_facts facts;
	uint32_t step_id = 0;
	uint32_t node_id = 0;

	pl_slurm_facts_get(&facts);
	memset(peers, 0, sizeof(*peers));
	peers->context = "step";
	peers->slurm_uid = facts.slurm_uid;
	spank_get_item(sp, S_JOB_STEPID, &step_id);
	if (step_id == SLURM_BATCH_SCRIPT ||
	    spank_get_item(sp, S_JOB_NODEID, &node_id) != ESPANK_SUCCESS)
		return; /* the batch step runs on one node */
	peers->nodelist = step_env(sp, "SLURM_STEP_NODELIST", nodelist, len);
	peers->self_index = node_id;
	peers->no_tree = check_step_nodelist(sp, peers->nodelist, node_id);
}

/* Kept free under the job's memory limit for slurmstepd and the tasks' start. */
#define PL_STEPD_MEMORY_RESERVE (16ULL << 20)

/* v1: the job's memory cgroup where the staging joins it; v2: this slurmstepd's own cgroup,
 * which is inside the job's. */
static uint64_t job_memory_room(const struct pl_job_cgroup *cg)
{
	char self[PATH_MAX];

	if (cg->n)
		return pl_job_cgroup_memory_room(cg, PL_STEPD_MEMORY_RESERVE);
	if (pl_cgroup2_self_path("/proc/self/cgroup", self, sizeof(self)) < 0)
		return UINT64_MAX;
	return pl_cgroup2_memory_room(PL_CGROUP_MOUNT, self, PL_STEPD_MEMORY_RESERVE);
}

/* The site's caps, and the room left under the job's memory limit where the staging is charged
 * to it: a tree that does not fit fails with a reason rather than leave no memory to the step. */
static bool cap_to_job_memory(const struct pl_job_cgroup *cg, struct pl_config *cfg)
{
	uint64_t room = job_memory_room(cg);

	*cfg = *pl_plugin_config();
	if (room >= cfg->stage_max_size)
		return false;
	cfg->stage_max_size = room ? room : 1; /* 0 would read as "the budget is spent" */
	return true;
}

static void explain_memory_cap(const struct pl_config *cfg)
{
	size_t len = strlen(step.stage.message);

	if (step.stage.ok || !strstr(step.stage.message, "stage.max_size"))
		return;
	snprintf(step.stage.message + len, sizeof(step.stage.message) - len,
		 "; here that is the room left under the job's memory limit, %" PRIu64
		 " MiB with %llu MiB kept for Slurm: the staged files are charged to the job's "
		 "memory (ask for more with --mem)",
		 cfg->stage_max_size >> 20, PL_STEPD_MEMORY_RESERVE >> 20);
}

/* Root, in slurmstepd, before any task: the job's prolog staged these bundles
 * already, or this is a step inside an allocation that names others (staged
 * now, once per node, for this and later steps). */
static void stage_step(spank_t sp)
{
	struct pl_stage_peers peers;
	char nodelist[PL_ENV_VALUE_MAX];
	struct pl_user user = {(uid_t)-1, (gid_t)-1, NULL};
	char key[PL_KEY_LEN + 1];
	struct pl_job_cgroup cgroup;
	struct pl_config cfg;
	uint32_t job_id = 0;
	bool memory_capped;

	spank_get_item(sp, S_JOB_ID, &job_id);
	spank_get_item(sp, S_JOB_UID, &user.uid);
	spank_get_item(sp, S_JOB_GID, &user.gid);
	/* The job's memory limit exists already where its memory cgroup does (RunInJob's extern
	 * step made it, or an earlier step): the staged pages are the job's, under its --mem. On
	 * cgroup v2 this slurmstepd is in the job's cgroup already, and so is what it forks. */
	pl_job_cgroup_existing_memory(PL_CGROUP_MOUNT, step.node, user.uid, job_id, &cgroup);
	user.cgroup = cgroup.n ? &cgroup : NULL;
	memory_capped = cap_to_job_memory(&cgroup, &cfg);
	step_key(key);
	step_peers(sp, &peers, nodelist, sizeof(nodelist));
	if (pl_stage_ensure(&cfg, job_id, &user, step.job.pybundle, key, &peers, &step.stage) < 0) {
		pl_error("%s: cannot stage: %s", step.where, step.stage.message);
		return;
	}
	step.staged = true;
	if (memory_capped && !step.stage.reused)
		explain_memory_cap(&cfg);
	if (!step.stage.ok)
		pl_error("%s: --pybundle: %s", step.where, step.stage.message);
	else if (!step.stage.reused)
		pl_info("%s: staged %s in %.2f s: %s", step.where, step.stage.root,
			step.stage.seconds, step.stage.message);
}

/* A step inside an allocation may ask for --pymonitor when the job did not:
 * its spool is made here, once per node (the job's own spool is the prolog's
 * and is never remade: that would drop what earlier steps recorded). */
static void prepare_step_monitor(spank_t sp)
{
	struct pl_user user = {(uid_t)-1, (gid_t)-1, NULL};
	uint32_t job_id = 0;
	int fd;

	spank_get_item(sp, S_JOB_ID, &job_id);
	fd = pl_monitor_spool_open(pl_plugin_config()->monitor_spool_dir, job_id);
	if (fd >= 0) {
		close(fd);
		return;
	}
	spank_get_item(sp, S_JOB_UID, &user.uid);
	spank_get_item(sp, S_JOB_GID, &user.gid);
	pl_monitor_prolog(pl_plugin_config(), job_id, user.uid, user.gid);
}

static bool step_wanted(void)
{
	return pl_options_used() || pl_plugin_config()->monitor_default;
}

/* A step whose srun took the options from PYLAUNCH_PYBUNDLE/PYMONITOR got no forwarded option:
 * what srun handed on stands for it. */
static void adopt_handed_on(spank_t sp)
{
	static char bundle[PL_ENV_VALUE_MAX];
	char monitor[16];

	pl_options_adopt_handed_on(step_env(sp, PL_ENV_PYBUNDLE, bundle, sizeof(bundle)),
				   step_env(sp, PL_ENV_PYMONITOR, monitor, sizeof(monitor)));
}

/* The site's policy: a step of enough nodes that runs Python and names no bundle (nor
 * --pybundle=no) gets the site's default bundle, staged for its nodes as it starts. */
static void apply_site_policy(spank_t sp)
{
	char nodes[16];
	char **argv = NULL;
	const char *path;
	int argc = 0;

	if (pl_options_request()->pybundle || pl_plugin_config_error() ||
	    spank_get_item(sp, S_JOB_ARGV, &argc, &argv) != ESPANK_SUCCESS || argc < 1 ||
	    !step_env(sp, "SLURM_STEP_NUM_NODES", nodes, sizeof(nodes)))
		return;
	path =
	    pl_site_default_bundle(pl_plugin_config(), (unsigned)strtoul(nodes, NULL, 10), argv[0]);
	if (path && pl_options_set_pybundle(path) == 0)
		pl_verbose("site policy: --pybundle=@%s (%s) for %s",
			   pl_plugin_config()->policy_default_bundle, path, argv[0]);
}

int pl_remote_post_opt(spank_t sp)
{
	adopt_handed_on(sp);
	apply_site_policy(sp);
	if (!step_wanted() || pl_plugin_config_error())
		return 0;
	describe_step(sp, step.where, sizeof(step.where));
	if (resolve_step(sp) < 0) {
		pl_error("%s: %s", step.where, step.error);
		return 0;
	}
	step.resolved = true;
	pl_info("%s: pybundle=%s pymonitor=%s (%s)", step.where,
		step.job.pybundle ? step.job.pybundle : "-", step.job.pymonitor ? "yes" : "no",
		step.job.pymonitor_from);
	if (step.job.pybundle)
		stage_step(sp);
	if (step.job.pymonitor)
		prepare_step_monitor(sp);
	return 0;
}

/* Runs in the task, as the user, with the task's stderr: the one place where
 * a refusal reaches the job's output (errors from user_init do not reach srun). */
static int fail_task(const char *reason)
{
	fprintf(stderr, "pylaunch: %s\n", reason);
	pl_error("%s", reason);
	return -1;
}

static int apply_task_env(spank_t sp, const struct pl_task_env *env)
{
	for (size_t i = 0; i < env->n; i++) {
		const struct pl_env_change *c = &env->change[i];
		spank_err_t rc =
		    c->value ? spank_setenv(sp, c->name, c->value, 1) : spank_unsetenv(sp, c->name);

		if (rc != ESPANK_SUCCESS) {
			pl_error("cannot set %s for the task: %s", c->name, spank_strerror(rc));
			return -1;
		}
	}
	return 0;
}

/* Staged by root in the node's mount namespace, and gone from the task's: a job_container or
 * namespace plugin (tmpfs, Dirs=/tmp,/dev/shm by default) mounts a private /dev/shm and /tmp for
 * the job when its extern step starts, after the prolog staged (README, pylaunch(8)). */
#define HIDDEN_TREE_HINT                                                                           \
	" in the job's mount namespace (a job_container or namespace plugin gives the job a "      \
	"private /dev/shm and /tmp: the site must set stage.dir and monitor.spool_dir outside "    \
	"them)"

/* `srun python` is resolved through this PATH by slurmstepd after task_init:
 * prepending the staged bin/ makes it run the staged interpreter. The kind is read
 * here, as the user, from the tree the staging prepared. */
static int point_task_at_tree(spank_t sp)
{
	static struct pl_env_layout layout;
	char old_path[PL_ENV_VALUE_MAX];
	char old_ld[PL_ENV_VALUE_MAX];
	char reason[PL_ERRLEN + PATH_MAX];
	struct pl_task_env env;
	int rc;

	if (pl_env_detect(step.stage.root, &layout) < 0) {
		int err = errno;

		snprintf(reason, sizeof(reason), "--pybundle: %s: %s%s", step.stage.root,
			 strerror(err), err == ENOENT ? HIDDEN_TREE_HINT : "");
		return fail_task(reason);
	}
	if (pl_task_env_for_tree(step.stage.root, &layout,
				 step_env(sp, "PATH", old_path, sizeof(old_path)),
				 step_env(sp, "LD_LIBRARY_PATH", old_ld, sizeof(old_ld)),
				 pl_plugin_config()->stage_ld_library_path, &env) < 0)
		return fail_task("--pybundle: out of memory");
	rc = apply_task_env(sp, &env);
	pl_task_env_free(&env);
	return rc;
}

static int pybundle_task_init(spank_t sp)
{
	char reason[PL_ERRLEN + 64];

	if (!step.staged) {
		snprintf(reason, sizeof(reason), "--pybundle: not staged on this node: %s",
			 step.stage.message[0] ? step.stage.message : "see the slurmd log");
		return fail_task(reason);
	}
	if (!step.stage.ok) {
		snprintf(reason, sizeof(reason), "--pybundle: %s", step.stage.message);
		return fail_task(reason);
	}
	return point_task_at_tree(sp);
}

/* Monitoring never fails a task: pl_monitor_task_env logs what goes wrong. */
static void monitor_task_init(spank_t sp)
{
	uint32_t job_id = 0;

	spank_get_item(sp, S_JOB_ID, &job_id);
	if (pl_monitor_sampled(pl_plugin_config(), job_id))
		pl_monitor_task_env(sp, pl_plugin_config()->monitor_spool_dir, job_id);
}

int pl_remote_task_init(spank_t sp)
{
	const char *config_error = pl_plugin_config_error();
	uint32_t task_id = 0;
	char reason[PL_ERRLEN + 64];

	if (!step_wanted())
		return 0;
	if (config_error) {
		snprintf(reason, sizeof(reason), "site configuration: %s", config_error);
		return fail_task(reason);
	}
	if (!step.resolved)
		return fail_task(step.error[0] ? step.error
					       : "the job's options could not be read");
	spank_get_item(sp, S_TASK_GLOBAL_ID, &task_id);
	pl_debug("task_init %s task %u: pybundle=%s pymonitor=%s", step.where, task_id,
		 step.job.pybundle ? step.job.pybundle : "-", step.job.pymonitor ? "yes" : "no");
	/* After --pybundle: its purge of PYTHONPATH must not drop the hook. */
	if (step.job.pybundle && pybundle_task_init(sp) < 0)
		return -1;
	if (step.job.pymonitor)
		monitor_task_init(sp);
	return 0;
}

void pl_remote_exit(void)
{
	pl_resolved_free(&step.job);
	memset(&step, 0, sizeof(step));
}
