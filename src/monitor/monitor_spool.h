/* --pymonitor: the node-local spool of import logs (prolog and epilog, as root).
 *
 *   <monitor.spool_dir>/              root's, 0755 (created when missing)
 *   <monitor.spool_dir>/<jobid>/      the job's user's, 0700: one log per Python process
 *   <monitor.spool_dir>/<jobid>/.hook/pylaunch_monitor.py, sitecustomize.py,
 *                                     usercustomize.py
 *                                     a copy of the hook (the core and its two shims),
 *                                     first on the tasks' PYTHONPATH; Python caches its
 *                                     byte code next to it, per job; the site's
 *                                     pylaunch-monitor.pth loads the core from here too
 *   <monitor.spool_dir>/<jobid>/<pid>.python-task
 *                                     task_init's note of a task that execs a Python
 *                                     interpreter (counts the ones that left no log)
 *
 * The base directory is refused when it is a symbolic link or not owned by root (a user
 * could otherwise have planted it in a world-writable /dev/shm). Everything below it is
 * created and removed relative to directory descriptors opened with O_NOFOLLOW, and
 * removal never follows a symbolic link the user may have put in the job's directory:
 * it removes the link. Only the last component of monitor.spool_dir is checked; its
 * parents (/dev/shm) are the site's. */
#ifndef PL_MONITOR_SPOOL_H
#define PL_MONITOR_SPOOL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define PL_MONITOR_HOOK_DIR_NAME ".hook"
#define PL_MONITOR_HOOK_FILE "sitecustomize.py"
#define PL_MONITOR_HOOK_USER_FILE "usercustomize.py"
#define PL_MONITOR_HOOK_CORE "pylaunch_monitor.py"

/* Creates the job's spool, owned by uid:gid, with a copy of the hook from hook_source_dir
 * (monitor.hook_dir; a missing hook is logged, the spool is still made and the tasks
 * then are not monitored). A spool left over from an earlier run of the job id is removed first.
 * Returns 0, or -1 after logging why. */
int pl_monitor_spool_prepare(const char *spool_dir, uint32_t job_id, uid_t uid, gid_t gid,
			     const char *hook_source_dir);

/* A descriptor of the job's spool directory for reading, or -1: errno ENOENT when there
 * is none (not monitored on this node), anything else logged. */
int pl_monitor_spool_open(const char *spool_dir, uint32_t job_id);

/* Removes the job's spool whatever the user put in it (any depth, any number of
 * entries, symbolic links), within timeout_ms (0 = no bound). Returns 0 when it is gone
 * (or never existed), -1 after logging what is left. */
int pl_monitor_spool_remove(const char *spool_dir, uint32_t job_id, unsigned timeout_ms);

#endif
