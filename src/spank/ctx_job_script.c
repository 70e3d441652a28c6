#include "ctx_job_script.h"

#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <slurm/slurm.h>

#include "bundle.h"
#include "job_cgroup.h"
#include "log.h"
#include "monitor.h"
#include "options.h"
#include "options_env.h"
#include "optparse.h"
#include "plugin.h"
#include "purge.h"
#include "stage.h"
#include "sweep.h"
#include "tree_net.h"

/* Every path out of here returns 0 but one (the stage base cannot be made: a
 * fault of the node): a failing prolog or epilog drains the node and requeues
 * the job, and nothing a user or a site file does may cause that. Problems
 * are logged here and reported to the job by task_init. */

struct job_script {
	const char *phase;
	uint32_t job_id;
	const char *node;
	struct pl_user user;
	struct pl_job_cgroup cgroup; /* the prolog's: its user work runs there */
	struct pl_slurm_facts slurm; /* what the running Slurm says (PrologFlags) */
};

static const char *env_or(const char *name, const char *fallback)
{
	const char *value = getenv(name);

	return value && *value ? value : fallback;
}

/* slurmd hands SLURMD_NODENAME to the prolog and epilog; the extern step's slurmstepd
 * (PrologFlags=RunInJob) may not have it, and its host name is the node's. */
static const char *node_name(void)
{
	static char host[256];
	const char *env = getenv("SLURMD_NODENAME");

	if (env && *env)
		return env;
	if (gethostname(host, sizeof(host)) < 0)
		return "?";
	host[sizeof(host) - 1] = '\0';
	return host;
}

/* -1: the job is unknown; 1: the site configuration is broken (the built-in
 * defaults are loaded); 0: ready. */
static int job_script_init(spank_t sp, int ac, char **av, const char *phase, struct job_script *js)
{
	js->phase = phase;
	js->node = node_name();
	js->job_id = 0;
	js->user.uid = (uid_t)-1;
	js->user.gid = (gid_t)-1;
	js->user.cgroup = NULL;
	js->cgroup.n = 0;
	/* slurm_spank_init is not called for the prolog and epilog (22.05):
	 * load the configuration and read the options here. */
	pl_plugin_load(ac, av);
	if (spank_get_item(sp, S_JOB_ID, &js->job_id) != ESPANK_SUCCESS ||
	    spank_get_item(sp, S_JOB_UID, &js->user.uid) != ESPANK_SUCCESS ||
	    spank_get_item(sp, S_JOB_GID, &js->user.gid) != ESPANK_SUCCESS) {
		pl_error("%s: cannot read the job's id and user from Slurm", phase);
		return -1;
	}
	if (pl_plugin_config_error()) {
		pl_error(
		    "%s job %u on %s: site configuration: %s; pylaunch does nothing for this job",
		    phase, js->job_id, js->node, pl_plugin_config_error());
		return 1;
	}
	pl_options_read_job_script(sp);
	pl_options_adopt_handed_on(getenv(PL_ENV_PYBUNDLE), getenv(PL_ENV_PYMONITOR));
	return 0;
}

static int resolve_job(const struct job_script *js, struct pl_resolved *job)
{
	char err[PL_ERRLEN];

	if (pl_request_resolve(pl_options_request(), getenv(PL_ENV_PYBUNDLE),
			       env_or("SLURM_JOB_WORK_DIR", "/"),
			       pl_plugin_config()->monitor_default, job, err, sizeof(err)) < 0) {
		pl_error("%s job %u on %s: %s", js->phase, js->job_id, js->node, err);
		return -1;
	}
	pl_info("%s job %u on %s user %s: pybundle=%s pymonitor=%s (%s)", js->phase, js->job_id,
		js->node, env_or("SLURM_JOB_USER", "?"), job->pybundle ? job->pybundle : "-",
		job->pymonitor ? "yes" : "no", job->pymonitor_from);
	return 0;
}

/* The key names the tree and is derived here, by root, from the list it resolved: one from the
 * user's environment (the submit side's PYLAUNCH key) would let every step of a job name a new
 * tree. The same list in a step gives the same key, so the step reuses the prolog's tree. */
static void job_key(const char *bundles, char key[PL_KEY_LEN + 1])
{
	pl_key_of_text(bundles, key);
}

/* Every node of the job runs this prolog at once only with PrologFlags=Alloc; without it a
 * node's prolog waits for a step to land there, and a tree over the job's nodes would wait
 * for peers that are not coming. The site may say so where Slurm does not (tree.prolog_alloc). */
static void job_peers(const struct job_script *js, struct pl_stage_peers *peers)
{
	memset(peers, 0, sizeof(*peers));
	peers->context = "prolog";
	peers->nodelist = getenv("SLURM_NODELIST");
	peers->self = js->node;
	peers->slurm_uid = js->slurm.slurm_uid;
	peers->no_tree = pl_prolog_tree_refusal(pl_plugin_config()->tree_prolog_alloc, &js->slurm);
}

/* The staging's user work is the job's: it runs in the job's cgroup, not slurmd's (its memory
 * cgroup only where Slurm will set no limit on it: job_cgroup.h). Without a cgroup plugin it
 * stays in slurmd's; a job cgroup that cannot be made is logged and the staging goes on
 * without it (the node is fine, the job only loses the containment). */
static void join_job_cgroup(struct job_script *js)
{
	bool memory = !pl_cgroup_conf_limits_memory(env_or("SLURM_CONF", "/etc/slurm/slurm.conf"));
	char why[PL_ERRLEN] = "";

	if (pl_job_cgroup_prepare(PL_CGROUP_MOUNT, js->node, js->user.uid, js->job_id, memory,
				  &js->cgroup, why, sizeof(why)) < 0)
		pl_error("prolog job %u on %s: %s; staging runs in slurmd's cgroup", js->job_id,
			 js->node, why);
	else if (js->cgroup.n == 0)
		pl_debug("prolog job %u on %s: %s; staging runs in slurmd's cgroup", js->job_id,
			 js->node, why);
	else
		pl_debug("prolog job %u on %s: staging runs in the job's cgroup %s%s", js->job_id,
			 js->node, js->cgroup.dirs[0],
			 memory ? ""
				: " (not its memory cgroup: Slurm limits it after the prolog)");
	js->user.cgroup = js->cgroup.n ? &js->cgroup : NULL;
}

static int stage_job(struct job_script *js, const char *bundles)
{
	struct pl_stage_peers peers;
	struct pl_stage_result res;
	char key[PL_KEY_LEN + 1];

	job_key(bundles, key);
	pl_slurm_facts_get(&js->slurm);
	job_peers(js, &peers);
	join_job_cgroup(js);
	if (pl_stage_ensure(pl_plugin_config(), js->job_id, &js->user, bundles, key, &peers, &res) <
	    0) {
		pl_error("prolog job %u on %s: node fault, cannot stage: %s", js->job_id, js->node,
			 res.message);
		return -1;
	}
	if (res.ok)
		pl_info("prolog job %u on %s: staged %s in %.2f s: %s", js->job_id, js->node,
			res.root, res.seconds, res.reused ? "already staged" : res.message);
	else
		pl_error(
		    "prolog job %u on %s: --pybundle: %s (the job's tasks on this node will fail)",
		    js->job_id, js->node, res.message);
	return 0;
}

int pl_job_script_prolog(spank_t sp, int ac, char **av)
{
	struct job_script js;
	struct pl_resolved job = {0};
	int rc = 0;

	if (job_script_init(sp, ac, av, "prolog", &js) != 0)
		return 0;
	if (!pl_options_used() && !pl_plugin_config()->monitor_default) {
		pl_debug("prolog job %u on %s: no pylaunch option", js.job_id, js.node);
		return 0;
	}
	if (resolve_job(&js, &job) == 0) {
		if (job.pybundle)
			rc = stage_job(&js, job.pybundle);
		if (job.pymonitor)
			pl_monitor_prolog(pl_plugin_config(), js.job_id, js.user.uid, js.user.gid);
	}
	pl_resolved_free(&job);
	return rc;
}

/* The monitor's collection and spool get at most half of epilog.timeout; purge and sweep the
 * rest. A second is kept back for the return to slurmd. */
static void clean_up(const struct job_script *js, long long start_ms)
{
	const struct pl_config *cfg = pl_plugin_config();
	long long end_ms = start_ms + 1000LL * cfg->epilog_timeout - 1000;

	pl_monitor_epilog_until(cfg, js->job_id, js->user.uid, js->user.gid,
				start_ms + 500LL * cfg->epilog_timeout);
	pl_stage_purge(cfg, js->job_id, &js->user, end_ms);
	pl_stage_sweep(cfg, js->job_id, end_ms);
	pl_job_cgroup_release(PL_CGROUP_MOUNT, js->node, js->user.uid, js->job_id);
}

int pl_job_script_epilog(spank_t sp, int ac, char **av)
{
	long long start_ms = pl_purge_now_ms();
	struct job_script js;
	struct pl_resolved job = {0};
	double seconds;

	int ready = job_script_init(sp, ac, av, "epilog", &js);

	if (ready < 0)
		return 0;
	if (ready == 0 && (pl_options_used() || pl_plugin_config()->monitor_default))
		resolve_job(&js, &job);
	/* Always look, with the defaults if the site file broke since: steps
	 * inside an allocation may have staged or monitored without any job
	 * option. The imports are collected before the trees go. */
	clean_up(&js, start_ms);
	seconds = (double)(pl_purge_now_ms() - start_ms) / 1000.0;
	pl_info("epilog job %u on %s: done in %.2f s (epilog.timeout %u s)", js.job_id, js.node,
		seconds, pl_plugin_config()->epilog_timeout);
	pl_resolved_free(&job);
	return 0;
}

/* Slurm queues its X11 shutdown on a worker thread just before it calls the extern step's
 * spank exit, and that thread takes the user's ids for a moment (drop_privileges, whose seteuid
 * glibc applies to every thread of the process: slurmstepd/mgr.c, 24.11): run there, the
 * epilog would now and then find itself the user half-way (seen: "refusing the spool ... not a
 * directory of root's"). A child is out of its reach; its real uid is root's, so it takes
 * root's ids back whatever the moment of the fork. */
static void epilog_in_root_child(spank_t sp, int ac, char **av)
{
	long long deadline = pl_purge_now_ms() + 1000LL * (pl_plugin_config()->epilog_timeout + 5);
	struct timespec pause = {0, 50 * 1000 * 1000};
	pid_t pid = fork();
	pid_t reaped;
	int status;

	if (pid < 0) {
		pl_error_errno(errno, "extern step exit: cannot fork the epilog");
		return;
	}
	if (pid == 0) {
		if (setresuid(0, 0, 0) < 0 || setresgid(0, 0, 0) < 0 || setgroups(0, NULL) < 0)
			_exit(1);
		pl_job_script_epilog(sp, ac, av);
		_exit(0);
	}
	while ((reaped = waitpid(pid, &status, WNOHANG)) == 0 && pl_purge_now_ms() < deadline)
		nanosleep(&pause, NULL);
	if (reaped != 0)
		return;
	pl_error("extern step exit: the epilog outran epilog.timeout; killed");
	kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
}

/* With PrologFlags=RunInJob (24.05+) Slurm runs the prolog and epilog from the job's extern
 * step, and there never calls a plugin's job_prolog or job_epilog: spank_has_prolog() and
 * spank_has_epilog() are set only where slurmd itself loads the plugin stack
 * (src/common/spank.c, 24.11 to 26.05). The steps stage for themselves then (pl_remote_post_opt);
 * the extern step's exit is where the epilog would be: every other step has ended (Slurm waits
 * for them and kills what is left in the extern container first) and Slurm's own epilog and
 * the epilog-complete message come after it. */
void pl_job_script_extern_step_exit(spank_t sp, int ac, char **av)
{
	struct pl_slurm_facts slurm;
	uint32_t step_id = 0;

#ifndef PROLOG_FLAG_RUN_IN_JOB
	/* Before 24.05 there is no RunInJob, and the facts may cost a child reading slurm.conf. */
	(void)sp, (void)ac, (void)av, (void)slurm, (void)step_id;
	return;
#endif
	if (spank_get_item(sp, S_JOB_STEPID, &step_id) != ESPANK_SUCCESS ||
	    step_id != SLURM_EXTERN_CONT)
		return;
	pl_slurm_facts_get(&slurm);
	if (slurm.run_in_job)
		epilog_in_root_child(sp, ac, av);
}
