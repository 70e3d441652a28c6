/* --pymonitor in the prolog and the epilog (job_script context, root).
 *
 * The caller decides whether the job is monitored (--pymonitor, or monitor.default
 * without --pymonitor=no); these entry points then apply monitor.sample_rate, prepare
 * the spool in the prolog, and in the epilog collect the logs, send one record per job
 * and node to every sink and remove the spool. They never fail: every problem is
 * logged, and the epilog keeps within monitor.epilog_timeout for reading and sending
 * (and as long again for removing the spool). */
#ifndef PL_MONITOR_H
#define PL_MONITOR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"

/* Whether job_id falls into the sample of monitor.sample_rate: a hash of the job id, so
 * the prolog, task_init and the epilog of every node agree without talking. Rate 1
 * takes every job, 0 none. */
bool pl_monitor_sampled(const struct pl_config *cfg, uint32_t job_id);

/* Prolog: creates <monitor.spool_dir>/<job_id> for uid:gid with a copy of the hook from
 * monitor.hook_dir, if sampled. */
void pl_monitor_prolog(const struct pl_config *cfg, uint32_t job_id, uid_t uid, gid_t gid);

/* Epilog: if the job has a spool on this node, reads it, sends the record (when any
 * Python process left a log, an .unlogged marker, or a Python task no log) and removes
 * it. */
void pl_monitor_epilog(const struct pl_config *cfg, uint32_t job_id, uid_t uid, gid_t gid);
/* The same, all done by end_ms (pl_mon_now_ms clock): the epilog's share of epilog.timeout. */
void pl_monitor_epilog_until(const struct pl_config *cfg, uint32_t job_id, uid_t uid, gid_t gid,
			     long long end_ms);

#endif
