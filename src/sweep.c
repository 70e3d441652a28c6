#include "sweep.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <slurm/slurm.h>
#include <slurm/slurm_errno.h>

#include "base_dir.h"
#include "log.h"
#include "monitor_spool.h"
#include "optparse.h"
#include "purge.h"
#include "stage.h"
#include "stage_dir.h"

typedef int (*load_job_fn)(job_info_msg_t **resp, uint32_t job_id, uint16_t show_flags);
typedef void (*free_job_fn)(job_info_msg_t *msg);

/* Looked up at run time, not linked: the plugin must load in every Slurm
 * process (srun, sbatch, slurmd, slurmstepd) with BIND_NOW, and only the
 * epilog needs these. */
static struct {
	load_job_fn load;
	free_job_fn free;
} api;

static bool find_slurm_api(void)
{
	api.load = (load_job_fn)dlsym(RTLD_DEFAULT, "slurm_load_job");
	api.free = (free_job_fn)dlsym(RTLD_DEFAULT, "slurm_free_job_info_msg");
	return api.load && api.free;
}

/* 1: over or unknown to slurmctld; 0: still alive; -1: cannot tell. */
static int job_is_over(uint32_t job_id)
{
	job_info_msg_t *msg = NULL;
	uint32_t state;

	if (api.load(&msg, job_id, SHOW_ALL) != 0)
		return errno == ESLURM_INVALID_JOB_ID ? 1 : -1;
	if (!msg || msg->record_count == 0) {
		if (msg)
			api.free(msg);
		return 1;
	}
	state = msg->job_array[0].job_state;
	api.free(msg);
	if (state & JOB_COMPLETING)
		return 0;
	switch (state & JOB_STATE_BASE) {
	case JOB_PENDING:
	case JOB_RUNNING:
	case JOB_SUSPENDED:
		return 0;
	default:
		return 1;
	}
}

static bool job_id_of(const char *name, uint32_t *job_id)
{
	char *end;
	unsigned long v;

	if (name[0] < '1' || name[0] > '9')
		return false;
	errno = 0;
	v = strtoul(name, &end, 10);
	if (errno || *end || v > UINT32_MAX)
		return false;
	*job_id = (uint32_t)v;
	return true;
}

static void sweep_one(const struct pl_config *cfg, int basefd, const char *name, uint32_t job_id,
		      long long deadline_ms)
{
	struct stat st;
	struct pl_user owner;

	if (fstatat(basefd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
		return;
	if (job_is_over(job_id) != 1)
		return;
	owner.uid = st.st_uid;
	owner.gid = st.st_gid;
	pl_info("epilog: removing the leftover stage tree of ended job %u", job_id);
	pl_stage_purge(cfg, job_id, &owner, deadline_ms);
}

/* Spools an epilog could not remove in time (monitor_spool.h). */
static void sweep_spools(const struct pl_config *cfg, uint32_t current_job, long long deadline_ms)
{
	struct dirent *de;
	uint32_t job_id;
	long long left;
	DIR *dir;
	int fd = pl_base_dir_open_existing(cfg->monitor_spool_dir);

	if (fd < 0 || !(dir = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(dir)) && (left = deadline_ms - pl_purge_now_ms()) > 0)
		if (job_id_of(de->d_name, &job_id) && job_id != current_job &&
		    job_is_over(job_id) == 1) {
			pl_info("epilog: removing the leftover spool of ended job %u", job_id);
			pl_monitor_spool_remove(cfg->monitor_spool_dir, job_id, (unsigned)left);
		}
	closedir(dir);
}

void pl_stage_sweep(const struct pl_config *cfg, uint32_t current_job, long long deadline_ms)
{
	char err[PL_ERRLEN];
	struct dirent *de;
	uint32_t job_id;
	int basefd;
	DIR *dir;

	if (!find_slurm_api()) {
		pl_debug("epilog: Slurm API not available here, leftovers not swept");
		return;
	}
	if (pl_stage_base_open(cfg->stage_dir, &basefd, err, sizeof(err)) < 0)
		return;
	dir = fdopendir(basefd);
	if (!dir) {
		close(basefd);
		return;
	}
	while ((de = readdir(dir)) && pl_purge_now_ms() < deadline_ms)
		if (job_id_of(de->d_name, &job_id) && job_id != current_job)
			sweep_one(cfg, dirfd(dir), de->d_name, job_id, deadline_ms);
	closedir(dir);
	sweep_spools(cfg, current_job, deadline_ms);
}
