/* Internal to the collector: monitor_collect.c (the spool) uses monitor_process.c (a process
 * settled) and monitor_node.c (the node's tally); monitor_process.c uses monitor_parse.c (one
 * log). The rest of the plugin uses monitor_collect.h. */
#ifndef PL_MONITOR_COLLECT_INTERNAL_H
#define PL_MONITOR_COLLECT_INTERNAL_H

#include "monitor_collect.h"

/* A user can fill the spool with junk: name the first few skipped logs, count the rest. */
#define SKIP_LOG_NAMED 5
#define LOG_NAME_SHOWN 64

struct collect_state {
	int dir_fd;
	uid_t uid;
	const char *job_id;
	char *buf; /* PL_MON_LOG_MAX + 1 bytes, reused for every log */
	unsigned skipped_named;
	struct pl_mon_node *node;
};

struct field {
	const char *s;
	size_t len;
};

struct text_key {
	const char *key;
	size_t offset;
	size_t max;
};

#define PROC_FIELD(member) offsetof(struct pl_mon_process, member)

/* Imports, retractions and versions are kept in the order of the log and settled at
 * its end: the last import or unimport of a name decides, the first version counts. */
struct import_event {
	char *name;
	size_t order;
	bool retract;
};

struct version_line {
	char *name;
	char *version;
	char *dist, *origin; /* set for a "dist" line */
};

struct parse_state {
	struct pl_mon_process *p;
	struct import_event *events;
	size_t n_events, cap_events;
	struct version_line *versions;
	size_t n_versions, cap_versions;
	struct version_line *dists;
	size_t n_dists, cap_dists;
	bool out_of_memory;
};

/* monitor_parse.c */
bool mc_grow(void **items, size_t *cap, size_t need, size_t size);
int mc_parse_line(struct parse_state *st, const char *line, size_t len);
void mc_process_init(struct pl_mon_process *p);

/* monitor_node.c */
int mc_add_pid(long long **pids, size_t *n, long long pid);

#endif
