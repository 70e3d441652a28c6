/* --pymonitor: the one JSON record per job and node, as share/monitor-record.schema.json
 * documents it. The text is pure ASCII (every other character escaped as \uXXXX), so
 * a transport may cut it anywhere (the syslog sink splits long records by bytes). */
#ifndef PL_MONITOR_RECORD_H
#define PL_MONITOR_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "log.h"
#include "monitor_collect.h"

#define PL_MON_RECORD_SCHEMA "pylaunch-monitor-record"
#define PL_MON_RECORD_VERSION 2

/* A growing text buffer; after a failed allocation it stays failed and keeps what it had. */
struct pl_text {
	char *buf;
	size_t len, cap;
	bool failed;
};

void pl_text_free(struct pl_text *t);
void pl_text_add(struct pl_text *t, const char *s, size_t len);
void pl_text_addf(struct pl_text *t, const char *fmt, ...) PL_PRINTF(2, 3);
/* s (len bytes, any content) as a JSON string with its quotes, in ASCII: '"', '\' and
 * control characters escaped, other characters as \uXXXX (surrogate pairs past the
 * BMP), bytes that are not UTF-8 as \ufffd. */
void pl_json_add_string(struct pl_text *t, const char *s, size_t len);

/* What the epilog knows about the job besides the logs. Strings may be NULL (null in
 * the record); numbers are -1 when unknown. */
struct pl_job_meta {
	uint32_t job_id;
	const char *cluster, *user, *account, *partition, *qos, *node;
	long long uid, num_nodes;
	long long exit_status; /* SLURM_JOB_EXIT_CODE, a wait(2) status */
	bool is_staff;
	double end_time; /* Unix time */
};

/* Fills meta from the epilog's environment (SLURM_JOB_USER, SLURM_JOB_ACCOUNT, ...);
 * job_id and uid come from Slurm's items, not from the environment. The strings point
 * into the environment. */
void pl_job_meta_from_env(struct pl_job_meta *meta, uint32_t job_id, uid_t uid);

/* Whether any of the user's groups is one of the staff groups: gids are the user's
 * groups (primary included), staff the gids of monitor.staff_groups. */
bool pl_monitor_groups_intersect(const gid_t *gids, size_t n, const gid_t *staff, size_t m);
/* The same from the system's group database: uid's groups (getgrouplist) against the
 * named groups (getgrnam_r; a group that does not exist is skipped). */
bool pl_monitor_is_staff(uid_t uid, gid_t gid, char *const *groups, size_t n_groups);

/* "2024-05-01T12:00:00.123Z". */
void pl_monitor_rfc3339(double t, char *buf, size_t len);

/* The record, one line of JSON without a newline; NULL when memory ran out. *len gets
 * its length. node must be sorted (pl_mon_node_sort). Free with free(). */
char *pl_monitor_record(const struct pl_job_meta *meta, const struct pl_mon_node *node,
			size_t *len);
/* The same, at most max bytes (0: no bound; monitor.record_max): past it every list is
 * cut to its most-used entries, halving until it fits, and the record says
 * "truncated":true and counts the entries left out in dropped.record. */
char *pl_monitor_record_capped(const struct pl_job_meta *meta, const struct pl_mon_node *node,
			       size_t max, size_t *len);

#endif
