#include "ctx_remote.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <slurm/slurm.h>

#include "log.h"
#include "options.h"
#include "optparse.h"
#include "plugin.h"

#define PL_ENV_VALUE_MAX 16384

static struct {
	bool resolved;
	struct pl_resolved job;
	char error[PL_ERRLEN];
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

int pl_remote_user_init(spank_t sp)
{
	char where[320];

	if (!pl_options_used() || pl_plugin_config_error())
		return 0;
	describe_step(sp, where, sizeof(where));
	if (resolve_step(sp) < 0) {
		pl_error("%s: %s", where, step.error);
		return 0;
	}
	step.resolved = true;
	pl_info("%s: pybundle=%s pymonitor=%s (%s)", where,
		step.job.pybundle ? step.job.pybundle : "-", step.job.pymonitor ? "yes" : "no",
		step.job.pymonitor_from);
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

int pl_remote_task_init(spank_t sp)
{
	const char *config_error = pl_plugin_config_error();
	uint32_t task_id = 0;
	char where[320];
	char reason[PL_ERRLEN + 64];

	if (!pl_options_used())
		return 0;
	if (config_error) {
		snprintf(reason, sizeof(reason), "site configuration: %s", config_error);
		return fail_task(reason);
	}
	if (!step.resolved)
		return fail_task(step.error[0] ? step.error
					       : "the job's options could not be read");
	spank_get_item(sp, S_TASK_GLOBAL_ID, &task_id);
	describe_step(sp, where, sizeof(where));
	pl_debug("task_init %s task %u: pybundle=%s pymonitor=%s", where, task_id,
		 step.job.pybundle ? step.job.pybundle : "-", step.job.pymonitor ? "yes" : "no");
	return 0;
}

void pl_remote_exit(void)
{
	pl_resolved_free(&step.job);
	memset(&step, 0, sizeof(step));
}
