/* pylaunch: SPANK entry points. A thin dispatcher: each context has a file. */
#include <slurm/slurm_errno.h>
#include <slurm/slurm_version.h>
#include <slurm/spank.h>
#include <unistd.h>

#include "base_dir.h"
#include "ctx_job_script.h"
#include "ctx_remote.h"
#include "ctx_submit.h"
#include "log.h"
#include "options.h"
#include "plugin.h"

SPANK_PLUGIN(pylaunch, 1)

/* The base directories are made (or reclaimed from a user who planted them) as soon as
 * slurmd starts, so that a user racing the first prolog after a reboot finds them taken. */
static void make_bases(void)
{
	const struct pl_config *cfg = pl_plugin_config();
	const char *path[2] = {cfg->stage_dir, cfg->monitor_spool_dir};
	const char *what[2] = {"stage.dir", "monitor.spool_dir"};
	char err[512];
	int fd;

	for (int i = 0; i < 2; i++) {
		if (pl_base_dir_open(path[i], what[i], &fd, err, sizeof(err)) == 0)
			close(fd);
		else
			pl_error("%s", err);
	}
}

#if SLURM_VERSION_NUMBER >= SLURM_VERSION_NUM(25, 5, 0)
/* From 25.05 a required plugin whose slurm_spank_init fails in slurmstepd drains the node
 * unless it says otherwise: a step pylaunch refuses (a bad request, a failed staging) is the
 * job's failure, never the node's. */
int slurm_spank_init_failure_mode = ESPANK_JOB_FAILURE;
#endif

/* slurmd context: nothing to do for a job, but a broken site file is worth a
 * line in the slurmd log at start-up, and the base directories are made. Never
 * fail here: a required plugin that fails in slurmd stops slurmd. */
static int slurmd_init(spank_t sp, int ac, char **av)
{
	pl_plugin_load(ac, av);
	if (pl_plugin_config_error())
		pl_error("loaded, built for Slurm %s; site configuration: %s",
			 pl_plugin_built_for(), pl_plugin_config_error());
	else
		pl_info("loaded, built for Slurm %s; site configuration %s", pl_plugin_built_for(),
			pl_plugin_config()->source);
	make_bases();
	return 0;
}

int slurm_spank_init(spank_t sp, int ac, char **av)
{
	switch (spank_context()) {
	case S_CTX_LOCAL:
	case S_CTX_ALLOCATOR:
		return pl_submit_init(sp, ac, av);
	case S_CTX_REMOTE:
		return pl_remote_init(sp, ac, av);
	case S_CTX_SLURMD:
		return slurmd_init(sp, ac, av);
	default:
		return 0;
	}
}

int slurm_spank_init_post_opt(spank_t sp, int ac, char **av)
{
	(void)ac;
	(void)av;
	switch (spank_context()) {
	case S_CTX_LOCAL:
	case S_CTX_ALLOCATOR:
		return pl_submit_post_opt(sp);
	case S_CTX_REMOTE:
		return pl_remote_post_opt(sp);
	default:
		return 0;
	}
}

int slurm_spank_task_init(spank_t sp, int ac, char **av)
{
	(void)ac;
	(void)av;
	return spank_context() == S_CTX_REMOTE ? pl_remote_task_init(sp) : 0;
}

int slurm_spank_job_prolog(spank_t sp, int ac, char **av)
{
	return pl_job_script_prolog(sp, ac, av);
}

int slurm_spank_job_epilog(spank_t sp, int ac, char **av)
{
	return pl_job_script_epilog(sp, ac, av);
}

int slurm_spank_exit(spank_t sp, int ac, char **av)
{
	if (spank_context() == S_CTX_REMOTE) {
		pl_remote_exit();
		pl_job_script_extern_step_exit(sp, ac, av);
	}
	pl_options_clear();
	pl_plugin_unload();
	return 0;
}
