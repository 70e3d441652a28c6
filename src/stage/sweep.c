#include "sweep.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base_dir.h"
#include "log.h"
#include "monitor_spool.h"
#include "optparse.h"
#include "purge.h"
#include "slurm_child.h"
#include "stage.h"
#include "stage_dir.h"

/* Jobs other than the current one that left a stage tree or a monitor spool on this node. */
struct leftovers {
	uint32_t ids[PL_SLURM_MAX_JOBS];
	size_t n;
};

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

static void add_leftover(struct leftovers *l, uint32_t job_id)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->ids[i] == job_id)
			return;
	if (l->n < PL_SLURM_MAX_JOBS)
		l->ids[l->n++] = job_id;
}

/* The job directories under one base (at most PL_SLURM_MAX_JOBS a sweep). */
static void find_in_base(int basefd, uint32_t current_job, struct leftovers *l)
{
	struct dirent *de;
	struct stat st;
	uint32_t job_id;
	DIR *dir = fdopendir(basefd);

	if (!dir) {
		close(basefd);
		return;
	}
	while ((de = readdir(dir)) && l->n < PL_SLURM_MAX_JOBS)
		if (job_id_of(de->d_name, &job_id) && job_id != current_job &&
		    fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISDIR(st.st_mode))
			add_leftover(l, job_id);
	closedir(dir);
}

static void find_leftovers(const struct pl_config *cfg, uint32_t current_job, struct leftovers *l)
{
	char err[PL_ERRLEN];
	int fd;

	l->n = 0;
	if (pl_stage_base_open(cfg->stage_dir, &fd, err, sizeof(err)) == 0)
		find_in_base(fd, current_job, l);
	fd = pl_base_dir_open_existing(cfg->monitor_spool_dir);
	if (fd >= 0)
		find_in_base(fd, current_job, l);
}

/* The owner is read again at removal: the tree is the user's, purged as that user. */
static void remove_tree(const struct pl_config *cfg, uint32_t job_id, long long deadline_ms)
{
	char err[PL_ERRLEN];
	char name[16];
	struct pl_user owner = {.cgroup = NULL};
	struct stat st;
	int basefd;

	if (pl_stage_base_open(cfg->stage_dir, &basefd, err, sizeof(err)) < 0)
		return;
	snprintf(name, sizeof(name), "%u", job_id);
	if (fstatat(basefd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
		owner.uid = st.st_uid;
		owner.gid = st.st_gid;
		pl_info("epilog: removing the leftover stage tree of ended job %u", job_id);
		pl_stage_purge(cfg, job_id, &owner, deadline_ms);
	}
	close(basefd);
}

/* Spools an epilog could not remove in time (monitor_spool.h). */
static void remove_spool(const struct pl_config *cfg, uint32_t job_id, long long deadline_ms)
{
	char name[16];
	struct stat st;
	long long left = deadline_ms - pl_purge_now_ms();
	int basefd = pl_base_dir_open_existing(cfg->monitor_spool_dir);

	if (basefd < 0)
		return;
	snprintf(name, sizeof(name), "%u", job_id);
	if (left > 0 && fstatat(basefd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISDIR(st.st_mode)) {
		pl_info("epilog: removing the leftover spool of ended job %u", job_id);
		pl_monitor_spool_remove(cfg->monitor_spool_dir, job_id, (unsigned)left);
	}
	close(basefd);
}

void pl_stage_sweep(const struct pl_config *cfg, uint32_t current_job, long long deadline_ms)
{
	static struct leftovers l;
	enum pl_job_fate fates[PL_SLURM_MAX_JOBS];
	char err[PL_ERRLEN] = "";
	size_t unknown = 0;

	find_leftovers(cfg, current_job, &l);
	if (l.n == 0)
		return;
	pl_slurm_job_fates(l.ids, l.n, fates, err, sizeof(err));
	for (size_t i = 0; i < l.n && pl_purge_now_ms() < deadline_ms; i++) {
		if (fates[i] == PL_JOB_OVER) {
			remove_tree(cfg, l.ids[i], deadline_ms);
			remove_spool(cfg, l.ids[i], deadline_ms);
		} else if (fates[i] == PL_JOB_UNKNOWN) {
			unknown++;
		}
	}
	if (unknown)
		pl_info(
		    "epilog: cannot tell whether %zu other job(s) with a stage tree or spool here "
		    "ended (%s): they stay until a later epilog's sweep",
		    unknown, err);
}
