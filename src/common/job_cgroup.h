/* The job's cgroup, for the work the prolog does as the user.
 *
 * The prolog runs in slurmd's cgroup, and so would everything it forks: the extraction of
 * a bundle, conda-unpack, the venv fix-ups, and the tmpfs pages they fill. They belong to
 * the job. With cgroup v1 (cgroup/v1 with proctrack/cgroup or task/cgroup) Slurm keeps a
 * job's processes in <mount>/<controller>/<prefix>/uid_U/job_J, <prefix> being "slurm", or
 * "slurm_<node>" when slurmd is built for several per host. Up to Slurm 24.11 that job
 * directory is made only when the job's first step (the extern step with PrologFlags=Contain)
 * starts, after the prolog: so root makes it here first, as Slurm would (root-owned, 0755,
 * under Slurm's own lock of the controller's root), and the user's child joins it before
 * it drops its privileges. The extern step then adopts the directory and sets the job's
 * limits on it; the memory the staging charged there stays the job's.
 *
 * No cgroup plugin (no slurm directory in the freezer or memory hierarchy) or cgroup v2: the
 * work stays where it is, and staging goes on. */
#ifndef PL_JOB_CGROUP_H
#define PL_JOB_CGROUP_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* memory (what the staging charges) and freezer (what proctrack/cgroup tracks). */
#define PL_CGROUP_CONTROLLERS 2
#define PL_CGROUP_MOUNT "/sys/fs/cgroup"

struct pl_job_cgroup {
	size_t n; /* 0: no job cgroup, the work stays in the caller's */
	char dirs[PL_CGROUP_CONTROLLERS][PATH_MAX];
};

/* The job's directories under mount (PL_CGROUP_MOUNT but in tests), made if missing: 0 with
 * cg->n of them (0 and a reason in err when there is no v1 hierarchy of Slurm's here), -1
 * with err when one could not be made. node: SLURMD_NODENAME. memory: the memory controller
 * too (see pl_cgroup_conf_limits_memory), else freezer alone. */
int pl_job_cgroup_prepare(const char *mount, const char *node, uid_t uid, uint32_t job_id,
			  bool memory, struct pl_job_cgroup *cg, char *err, size_t errlen);

/* Whether Slurm will set a memory limit on the job's cgroup (ConstrainRAMSpace or
 * ConstrainSwapSpace in the cgroup.conf beside slurm_conf); true when that cannot be read.
 * Slurm sets it when the extern step starts, after the prolog, and the kernel refuses a limit
 * below what the cgroup already holds (EBUSY: tmpfs pages cannot be reclaimed without swap):
 * a staged tree larger than the job's --mem charged there would fail the job's steps, and a
 * batch job's failure drains the node. So the staging joins the memory controller only when
 * no limit will come. */
bool pl_cgroup_conf_limits_memory(const char *slurm_conf);

/* A step's staging (no prolog ran, or RunInJob): the job's memory directory
 * where it exists already, i.e. where Slurm made it and set the job's limit (the extern step or
 * an earlier step did) and the staged pages may count against --mem. cg->n is 0 or 1. */
void pl_job_cgroup_existing_memory(const char *mount, const char *node, uid_t uid, uint32_t job_id,
				   struct pl_job_cgroup *cg);

/* What the job's memory cgroup (cg from pl_job_cgroup_existing_memory) can still be charged
 * with, keeping reserve bytes back for slurmstepd and the tasks: its limit less its usage less
 * reserve, 0 when that is not positive, UINT64_MAX without a limit or when it cannot be read.
 * Staged tmpfs pages cannot be reclaimed without swap: a tree that filled the limit would leave
 * the step's slurmstepd, which lives under the same limit, no memory at all. */
uint64_t pl_job_cgroup_memory_room(const struct pl_job_cgroup *cg, uint64_t reserve);

/* cgroup v2: the calling process's cgroup, from proc_cgroup (/proc/self/cgroup) - its "0::"
 * path, relative to the mount. 0, or -1 where there is none (v1 only) or it lies outside. */
int pl_cgroup2_self_path(const char *proc_cgroup, char *path, size_t len);

/* cgroup v2 (mount is a cgroup2 root, else UINT64_MAX): the room under the tightest
 * memory.max among self (from pl_cgroup2_self_path) and its ancestors, less reserve, as
 * pl_job_cgroup_memory_room. A step's slurmstepd lives in the job's cgroup on v2 (in
 * job_<id>/step_<n>/slurm), so what it stages is charged to the job without a move. */
uint64_t pl_cgroup2_memory_room(const char *mount, const char *self, uint64_t reserve);

/* In the child, as root: moves the calling process into each directory. -1 with err at the
 * first that refuses. */
int pl_job_cgroup_join(const struct pl_job_cgroup *cg, char *err, size_t errlen);

/* The epilog's half: removes the job's directories and the user's above them where they are
 * empty (Slurm removes them itself when a step of the job ran here; when none did, what the
 * prolog made would stay). Errors are of no consequence and not reported. */
void pl_job_cgroup_release(const char *mount, const char *node, uid_t uid, uint32_t job_id);

#endif
