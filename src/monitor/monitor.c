#include "monitor.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "log.h"
#include "monitor_collect.h"
#include "monitor_record.h"
#include "monitor_spool.h"
#include "sink_file.h"
#include "sink_syslog.h"

bool pl_monitor_sampled(const struct pl_config *cfg, uint32_t job_id)
{
	double rate = cfg->monitor_sample_rate;
	uint64_t h = job_id + 0x9e3779b97f4a7c15ULL;

	if (!(rate > 0.0)) /* NaN too */
		return false;
	if (rate >= 1.0)
		return true;
	/* splitmix64's finaliser: consecutive job ids land anywhere in [0, 1). */
	h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
	h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
	h ^= h >> 31;
	return (double)(h >> 11) * 0x1.0p-53 < rate;
}

void pl_monitor_prolog(const struct pl_config *cfg, uint32_t job_id, uid_t uid, gid_t gid)
{
	if (!pl_monitor_sampled(cfg, job_id)) {
		pl_debug("monitor: job %u is not in the sample (monitor.sample_rate %g)", job_id,
			 cfg->monitor_sample_rate);
		return;
	}
	if (pl_monitor_spool_prepare(cfg->monitor_spool_dir, job_id, uid, gid,
				     cfg->monitor_hook_dir) == 0)
		pl_debug("monitor: job %u: spool %s/%u ready for uid %u", job_id,
			 cfg->monitor_spool_dir, job_id, (unsigned)uid);
}

static int send_to_sink(const struct pl_sink *sink, const char *record, size_t len, const char *id,
			long long deadline_ms)
{
	if (sink->type == PL_SINK_FILE)
		return pl_sink_file_write(sink->path, record, len);
	return pl_sink_syslog_send(sink, record, len, id, deadline_ms);
}

/* How many sinks took the record. */
static size_t send_record(const struct pl_config *cfg, uint32_t job_id, const char *record,
			  size_t len, const char *node_name, long long deadline_ms)
{
	char id[320];
	size_t sent = 0;

	snprintf(id, sizeof(id), "%u.%s", job_id, node_name);
	for (size_t i = 0; i < cfg->n_sinks; i++) {
		const struct pl_sink *sink = &cfg->sinks[i];

		if (pl_mon_now_ms() >= deadline_ms) {
			pl_error("monitor: job %u: monitor.epilog_timeout reached; record not sent "
				 "to sink %zu (%s)",
				 job_id, i, pl_sink_type_name(sink->type));
			continue;
		}
		if (send_to_sink(sink, record, len, id, deadline_ms) == 0)
			sent++;
	}
	return sent;
}

static void report(const struct pl_config *cfg, uint32_t job_id, uid_t uid, gid_t gid,
		   struct pl_mon_node *node, long long deadline_ms)
{
	struct pl_job_meta meta;
	char *record;
	size_t len = 0, sent;

	pl_job_meta_from_env(&meta, job_id, uid);
	meta.is_staff = pl_monitor_is_staff(uid, gid, cfg->staff_groups, cfg->n_staff_groups);
	pl_mon_node_sort(node);
	if (!(record = pl_monitor_record_capped(&meta, node, cfg->monitor_record_max, &len))) {
		pl_error("monitor: job %u: out of memory building the record", job_id);
		return;
	}
	sent = send_record(cfg, job_id, record, len, meta.node ? meta.node : "-", deadline_ms);
	pl_info("monitor: job %u: %u Python processes (%u incomplete), %zu packages; record of %zu "
		"bytes sent to %zu of %zu sinks%s",
		job_id, node->processes, node->incomplete, node->pkgs.n, len, sent, cfg->n_sinks,
		node->partial ? " (partial: monitor.epilog_timeout reached)" : "");
	free(record);
}

void pl_monitor_epilog(const struct pl_config *cfg, uint32_t job_id, uid_t uid, gid_t gid)
{
	pl_monitor_epilog_until(cfg, job_id, uid, gid,
				pl_mon_now_ms() + 2000LL * cfg->monitor_epilog_timeout);
}

/* Collection and sending get monitor.epilog_timeout, within end_ms; the spool's removal gets
 * what is left until end_ms (epilog.timeout: what stays is for a later sweep). */
void pl_monitor_epilog_until(const struct pl_config *cfg, uint32_t job_id, uid_t uid, gid_t gid,
			     long long end_ms)
{
	long long budget_ms = (long long)cfg->monitor_epilog_timeout * 1000;
	long long deadline_ms = pl_mon_now_ms() + budget_ms;
	long long left_ms;
	struct pl_mon_node node;
	char job[16];
	int fd = pl_monitor_spool_open(cfg->monitor_spool_dir, job_id);

	if (deadline_ms > end_ms)
		deadline_ms = end_ms;
	if (fd < 0) {
		if (errno == ENOENT)
			pl_debug("monitor: job %u: no spool on this node", job_id);
		return;
	}
	snprintf(job, sizeof(job), "%u", job_id);
	pl_mon_node_init(&node);
	pl_mon_collect(fd, uid, job, deadline_ms, &node);
	close(fd);
	/* A node whose Python ran without a hook (-I) or without a log (a full spool) is
	 * reported too: a gap is counted, never silent. */
	if (node.processes || node.logs_skipped || node.unlogged || node.python_tasks_unhooked)
		report(cfg, job_id, uid, gid, &node, deadline_ms);
	else if (node.partial)
		pl_error("monitor: job %u: monitor.epilog_timeout reached before a log was read",
			 job_id);
	else
		pl_debug("monitor: job %u: no Python process on this node", job_id);
	pl_mon_node_free(&node);
	left_ms = end_ms - pl_mon_now_ms();
	pl_monitor_spool_remove(cfg->monitor_spool_dir, job_id,
				left_ms > 0 ? (unsigned)left_ms : 1);
}
