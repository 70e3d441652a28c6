/* --pymonitor in task_init (slurmstepd, as the job's user): points the task's Python
 * at the hook the prolog put into the job's spool on this node.
 *
 *   PYTHONPATH=<spool>/<jobid>/.hook[:<PYTHONPATH as it was>]
 *   PYLAUNCH_MONITOR_SPOOL=<spool>/<jobid>
 *   PYLAUNCH_MONITOR_JOB=<jobid>
 *
 * Call it after --pybundle has set up the task's PYTHONPATH: the hook goes in front
 * of what is there (and is not added twice when an srun inherits it from its batch
 * step). A user opts a job or a step out with PYLAUNCH_MONITOR=0 (or no, off, false)
 * in its environment: then nothing is set. The hook itself also honours it, for
 * single processes. A task whose argv[0] is a Python interpreter also gets a note in
 * the spool (pl_monitor_note_python_task). */
#ifndef PL_MONITOR_TASK_H
#define PL_MONITOR_TASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <slurm/spank.h>

#define PL_MONITOR_ENV_OPT_OUT "PYLAUNCH_MONITOR"
#define PL_MONITOR_ENV_SPOOL "PYLAUNCH_MONITOR_SPOOL"
#define PL_MONITOR_ENV_JOB "PYLAUNCH_MONITOR_JOB"

/* Sets the task's environment as above. Returns 0 when set, or when there is nothing to
 * do (opted out, no spool or no hook on this node: logged); -1 after logging an error
 * (the task should still run: monitoring never fails a task). */
int pl_monitor_task_env(spank_t sp, const char *spool_dir, uint32_t job_id);

/* Whether argv0 names a Python interpreter: its base name is python or pypy followed
 * by nothing but digits and dots (python3, python3.11). */
bool pl_monitor_is_python(const char *argv0);

/* When argv0 is Python, leaves the empty note <spool>/<pid>.python-task: the epilog
 * counts the tasks that exec'd Python directly and left no log (python -I, -S, -E).
 * pl_monitor_task_env() calls it with the task's S_JOB_ARGV and pid. 0, or -1 after
 * logging. */
int pl_monitor_note_python_task(const char *spool, const char *argv0, long pid);

/* True for "0", "no", "off", "false" in any case, surrounding blanks allowed. */
bool pl_monitor_opted_out(const char *value);

/* "<spool_dir>/<job_id>" into out; -1 when it does not fit. */
int pl_monitor_job_spool(const char *spool_dir, uint32_t job_id, char *out, size_t len);

/* hook_dir, then the entries of existing (NULL: none) other than hook_dir, ':'-joined,
 * into out; -1 when it does not fit. An empty existing adds nothing (an empty entry
 * would mean the current directory); empty entries inside it are kept as they were. */
int pl_monitor_pythonpath(const char *hook_dir, const char *existing, char *out, size_t len);

#endif
