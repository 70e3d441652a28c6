/* The stage directory on a node, from root's side.
 *
 *   <stage.dir>/                 root, 0755: must be a real root-owned directory
 *   <stage.dir>/<jobid>/         the job's user, 0700: PYLAUNCH_ROOT trees below
 *   <stage.dir>/<jobid>/<key>/   one staged tree per set of bundles
 *   <stage.dir>/.state/<jobid>/  root, 0700: <key> status files, <key>.lock (only root
 *                                reads them: a failure reason names the user's files)
 *
 * Every step is relative to a directory fd and refuses symlinks, so a user who
 * plants a link in /dev/shm cannot steer root's mkdir, chown or unlink.
 *
 * Root makes all of it in the node's mount namespace, in the prolog. A job_container or
 * namespace plugin (tmpfs) gives the job's tasks a private /dev/shm and /tmp, built by the extern
 * step after the prolog as a copy of that namespace: a stage.dir under them is hidden from the
 * tasks, one anywhere else is seen (README, "Slurm releases"). So the site moves stage.dir off
 * the plugin's Dirs; entering the job's namespace instead is impossible, as it does not exist yet
 * when the prolog runs. */
#ifndef PL_STAGE_DIR_H
#define PL_STAGE_DIR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "runas.h"

/* Opens the base, creating it if missing and reclaiming what a user planted there
 * (base_dir.h). */
int pl_stage_base_open(const char *base, int *fd, char *err, size_t errlen);
/* Creates (or accepts an existing, correctly owned) <jobid> for the user. */
int pl_stage_job_dir(int basefd, uint32_t job_id, const struct pl_user *user, char *err,
		     size_t errlen);
/* Opens .state/<jobid>, creating both levels, root-owned. */
int pl_stage_state_open(int basefd, uint32_t job_id, int *fd, char *err, size_t errlen);
/* Status of a key: "ok" or "error <reason>"; written whole (rename) so a
 * reader never sees half of it. */
int pl_stage_status_write(int statefd, const char *key, const char *text);
/* 0 and the text, or -1 (errno ENOENT: never staged). */
int pl_stage_status_read(int statefd, const char *key, char *buf, size_t len);
/* Takes the per-key lock (blocks while another step of the job stages it). */
int pl_stage_lock(int statefd, const char *key);
/* Removes .state/<jobid> and the then empty <jobid> directory. */
void pl_stage_remove_job_entries(int basefd, uint32_t job_id);

#endif
