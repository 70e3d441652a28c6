#include "ctx_job_script.h"

#include <stdint.h>
#include <stdlib.h>

#include "log.h"
#include "options.h"
#include "optparse.h"
#include "plugin.h"

/* Every path out of here returns 0: a failing prolog or epilog drains the node
 * and requeues the job, and nothing a user or a site file does may cause that.
 * Problems are logged here and reported to the job by task_init. */

static const char *env_or(const char *name, const char *fallback)
{
	const char *value = getenv(name);

	return value && *value ? value : fallback;
}

static void run_script(spank_t sp, int ac, char **av, const char *phase)
{
	struct pl_resolved job = {0};
	char err[PL_ERRLEN];
	uint32_t job_id = 0;
	const char *node = env_or("SLURMD_NODENAME", "?");

	/* slurm_spank_init is not called for the prolog and epilog (22.05):
	 * load the configuration and read the options here. */
	pl_plugin_load(ac, av);
	spank_get_item(sp, S_JOB_ID, &job_id);
	if (pl_plugin_config_error()) {
		pl_error(
		    "%s job %u on %s: site configuration: %s; pylaunch does nothing for this job",
		    phase, job_id, node, pl_plugin_config_error());
		return;
	}
	pl_options_read_job_script(sp);
	if (!pl_options_used() && !pl_plugin_config()->monitor_default) {
		pl_debug("%s job %u on %s: no pylaunch option", phase, job_id, node);
		return;
	}
	if (pl_request_resolve(pl_options_request(), getenv(PL_ENV_PYBUNDLE),
			       env_or("SLURM_JOB_WORK_DIR", "/"),
			       pl_plugin_config()->monitor_default, &job, err, sizeof(err)) < 0) {
		pl_error("%s job %u on %s: %s", phase, job_id, node, err);
		return;
	}
	pl_info("%s job %u on %s user %s: pybundle=%s pymonitor=%s (%s)", phase, job_id, node,
		env_or("SLURM_JOB_USER", "?"), job.pybundle ? job.pybundle : "-",
		job.pymonitor ? "yes" : "no", job.pymonitor_from);
	pl_resolved_free(&job);
}

int pl_job_script_prolog(spank_t sp, int ac, char **av)
{
	run_script(sp, ac, av, "prolog");
	return 0;
}

int pl_job_script_epilog(spank_t sp, int ac, char **av)
{
	run_script(sp, ac, av, "epilog");
	return 0;
}
