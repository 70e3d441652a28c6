#include "sweep.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "optparse.h"
#include "slurm_child.h"
#include "stage.h"
#include "stage_dir.h"

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

/* The job trees in stage.dir other than current_job's (at most PL_SLURM_MAX_JOBS a sweep). */
static int find_leftovers(const struct pl_config *cfg, uint32_t current_job, struct leftovers *l)
{
	char err[PL_ERRLEN];
	struct dirent *de;
	struct stat st;
	uint32_t job_id;
	int basefd;
	DIR *dir;

	l->n = 0;
	if (pl_stage_base_open(cfg->stage_dir, &basefd, err, sizeof(err)) < 0)
		return -1;
	dir = fdopendir(basefd);
	if (!dir) {
		close(basefd);
		return -1;
	}
	while ((de = readdir(dir)) && l->n < PL_SLURM_MAX_JOBS)
		if (job_id_of(de->d_name, &job_id) && job_id != current_job &&
		    fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISDIR(st.st_mode))
			l->ids[l->n++] = job_id;
	closedir(dir);
	return 0;
}

/* The owner is read again at removal: the tree is the user's, purged as that user. */
static void remove_tree(const struct pl_config *cfg, uint32_t job_id)
{
	char err[PL_ERRLEN];
	char name[16];
	struct pl_user owner;
	struct stat st;
	int basefd;

	if (pl_stage_base_open(cfg->stage_dir, &basefd, err, sizeof(err)) < 0)
		return;
	snprintf(name, sizeof(name), "%u", job_id);
	if (fstatat(basefd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
		owner.uid = st.st_uid;
		owner.gid = st.st_gid;
		pl_info("epilog: removing the leftover stage tree of ended job %u", job_id);
		pl_stage_purge(cfg, job_id, &owner);
	}
	close(basefd);
}

void pl_stage_sweep(const struct pl_config *cfg, uint32_t current_job)
{
	static struct leftovers l;
	enum pl_job_fate fates[PL_SLURM_MAX_JOBS];
	char err[PL_ERRLEN];
	size_t unknown = 0;

	if (find_leftovers(cfg, current_job, &l) < 0 || l.n == 0)
		return;
	pl_slurm_job_fates(l.ids, l.n, fates, err, sizeof(err));
	for (size_t i = 0; i < l.n; i++) {
		if (fates[i] == PL_JOB_OVER)
			remove_tree(cfg, l.ids[i]);
		else if (fates[i] == PL_JOB_UNKNOWN)
			unknown++;
	}
	if (unknown)
		pl_info("epilog: cannot tell whether %zu other job(s) with a stage tree here ended "
			"(%s): their trees stay until a later epilog's sweep",
			unknown, err);
}
