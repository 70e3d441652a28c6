/* Internal to the record (monitor_record.c, monitor_json.c, monitor_job.c): the JSON helpers
 * the record is built with. The rest of the plugin uses monitor_record.h. */
#ifndef PL_MONITOR_RECORD_INTERNAL_H
#define PL_MONITOR_RECORD_INTERNAL_H

#include "monitor_record.h"

/* A group can have many members: NSS buffers grow up to this. */
#define NSS_BUF_MAX (4 * 1024 * 1024)
#define GROUPS_MAX 65536

/* What a record over monitor.record_max leaves out: every list is cut to limit entries
 * (the most-used ones kept); left_out counts what was cut. */
struct cut {
	size_t limit;
	const bool *keep_pkgs, *keep_dists; /* NULL: all */
	uint64_t left_out;
};

struct ranked {
	const struct pl_mon_package *pkg;
	size_t pos;
};

/* monitor_json.c */
void mr_add_str(struct pl_text *t, const char *s);
void mr_add_json_str_or_null(struct pl_text *t, const char *s);
void mr_add_key(struct pl_text *t, const char *key, bool first);
void mr_add_str_field(struct pl_text *t, const char *key, const char *value);
void mr_add_num_field(struct pl_text *t, const char *key, long long value);
void mr_add_bool_field(struct pl_text *t, const char *key, bool value);
void mr_add_time_field(struct pl_text *t, const char *key, double value);

#endif
