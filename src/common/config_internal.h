/* Internal to the configuration (config*.c): the schema's tables (config_schema.c), the messages'
 * and the reader's types, and what one part uses of another. The rest of the plugin uses config.h.
 */
#ifndef PL_CONFIG_INTERNAL_H
#define PL_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

#include "config.h"
#include "config_schema.h"

/* config_schema.c's tables; their sizes are checked against the definitions by the compiler
 * (config_schema.c defines them before it includes this header). */

#define CONFIG_KEYS_N 29
extern const struct key config_keys[CONFIG_KEYS_N];
#define SINK_KINDS_N 2
extern const struct sink_kind sink_kinds[SINK_KINDS_N];
#define SYSLOG_FACILITIES_N 20
extern const char *const syslog_facilities[SYSLOG_FACILITIES_N];

/* What is wrong, for a message "KEY: REASON". */
struct problem {
	char key[KEY_MAX];
	char reason[REASON_MAX];
};

/* A user's text as it may be quoted in a log line: printable ASCII only (a newline in a value
 * must not forge a second log line), cut at SHOWN_MAX bytes. */
struct shown {
	char text[SHOWN_MAX + 4];
};

/* Bounded appending of list items; what does not fit is dropped. */
struct text {
	char *buf;
	size_t size, len;
};

struct name_list {
	char **names;
	size_t n;
};

struct sink_list {
	struct pl_sink *items;
	size_t n;
};

/* The walker pulls events and descends only where the schema has a section, a list or a sink,
 * so nesting is bounded by the schema (at most 4 levels): anything deeper is an error at its
 * first level, and the parser is never asked for the rest of the file. */
struct loader {
	yaml_parser_t parser;
	yaml_event_t event; /* the current one */
	bool have_event;
	const char *path;
	const char *text; /* a reader error has an offset into it, not a line */
	struct pl_config *cfg;
	size_t key_line[ARRAY_SIZE(config_keys)];     /* where a key was given, 0 = not yet */
	size_t section_line[ARRAY_SIZE(config_keys)]; /* same for sections, by cfg_find_section() */
	char key[KEY_MAX]; /* dotted name of what is being read, for messages */
	char *err;
	size_t errlen;
};

#define fail(ld, ...) cfg_fail_line((ld), cfg_event_line(ld), __VA_ARGS__)

/* The key: value pairs of one sink, held until its type is known. */
struct sink_entry {
	char *key;
	char *value;
	size_t key_line, value_line;
};

struct sink_entries {
	struct sink_entry e[SINK_KEYS_MAX];
	size_t n;
};

/* config_schema.c */
void cfg_file_error(char *err, size_t errlen, const char *path, const char *reason);
const struct key *cfg_find_key_in(const struct key *keys, size_t n, const char *name);
const struct key *cfg_find_key(const char *name);
int cfg_find_section(const char *name);
const struct sink_kind *cfg_sink_kind_named(const char *name);
const struct sink_kind *cfg_sink_kind_of(enum pl_sink_type type);
bool cfg_is_sink_key(const char *name);
void *cfg_field(void *base, size_t offset);
const void *cfg_const_field(const void *base, size_t offset);
PRINTF_LIKE(2, 3) int cfg_explain(struct problem *p, const char *fmt, ...);
const char *cfg_show(struct shown *buf, const char *s);
int cfg_unknown_key(struct problem *p, const char *name, bool full_names);
void cfg_list_sink_keys(const struct sink_kind *kind, char *out, size_t size);
void cfg_list_sink_kinds(char *out, size_t size);
int cfg_describe(const struct key *k, struct problem *p);

/* config_validate.c */
const char *cfg_path_problem(const char *path);
char *cfg_fold_slashes(const char *path);
const char *cfg_group_name_problem(const char *name, size_t len);
const char *cfg_bundle_name_problem(const char *name, size_t len);
const char *cfg_string_problem(enum value_type type, const char *s);
int cfg_explain_string(const struct key *k, const char *problem, struct problem *p);
int cfg_check_sink(const struct key *k, const struct pl_sink *sink, size_t i, struct problem *p);

/* config_value.c */
void cfg_free_names(char ***names, size_t *n);
int cfg_name_list_add(struct name_list *list, const struct key *k, const char *name, size_t len,
		      struct problem *p);
int cfg_bundle_list_add(struct name_list *list, const struct key *k, const char *name, size_t len,
			const char *path, struct problem *p);
void cfg_store_names(const struct key *k, void *base, struct name_list *list);
void cfg_free_sinks(struct pl_sink **sinks, size_t *n);
struct pl_sink *cfg_sink_list_add(struct sink_list *list);
void cfg_store_sinks(const struct key *k, void *base, struct sink_list *list);
void cfg_free_field(const struct key *k, void *base);
void cfg_free_fields(const struct key *keys, size_t n, void *base);
int cfg_apply_text(const struct key *k, void *base, const char *text, struct problem *p);
int cfg_apply_defaults(const struct key *keys, size_t n, void *base, struct problem *p);

/* config_yaml_event.c */
size_t cfg_event_line(const struct loader *ld);
PRINTF_LIKE(2, 3) void cfg_set_key(struct loader *ld, const char *fmt, ...);
PRINTF_LIKE(3, 4) int cfg_fail_line(struct loader *ld, size_t line, const char *fmt, ...);
bool cfg_is_text(const yaml_event_t *ev);
const char *cfg_text_of(const yaml_event_t *ev);
const char *cfg_node_kind(const yaml_event_t *ev);
int cfg_next_event(struct loader *ld);
int cfg_expect_text(struct loader *ld);
bool cfg_is_null(const yaml_event_t *ev);
int cfg_mark_given(struct loader *ld, size_t *first_line);

/* config_yaml.c */
int cfg_load_text(struct pl_config *cfg, const char *path, const char *text, size_t len, char *err,
		  size_t errlen);

/* config_yaml_sink.c */
int cfg_load_sink_sequence(struct loader *ld, const struct key *k);

#endif
