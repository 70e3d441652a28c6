/* Internal to the configuration (config*.c): the schema's types, what config_schema.c's tables
 * are made of. The rest of the plugin uses config.h. */
#ifndef PL_CONFIG_SCHEMA_H
#define PL_CONFIG_SCHEMA_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* Where make install puts the monitor hook (configure passes PL_DATADIR). */
#ifndef PL_DATADIR
#define PL_DATADIR "/usr/local/share/pylaunch"
#endif
#define PL_HOOK_DIR PL_DATADIR "/monitor"
#define PRINTF_LIKE(a, b) __attribute__((format(printf, a, b)))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define DEFAULTS_SOURCE "(defaults)"
#define KEY_MAX 96 /* longest dotted name in a message, e.g. "monitor.sinks[15].max_message" */
#define REASON_MAX 384
#define SHOWN_MAX 64 /* of a user's value quoted in a message */
#define GROUP_NAME_MAX 256
#define SINK_KEYS_MAX 8 /* "type" and the keys of all kinds of sink */
#define MIB (1024ULL * 1024ULL)
#define UDP_PAYLOAD_MAX 65507

enum value_type {
	T_BOOL,
	T_UINT,
	T_DURATION, /* unsigned seconds */
	T_SIZE64,   /* uint64_t bytes */
	T_SIZE,	    /* size_t bytes */
	T_RATIO,
	T_PORTS,    /* unsigned at offset and offset2 */
	T_PATH,	    /* char *, absolute, slashes folded */
	T_FACILITY, /* char *, a syslog facility name */
	T_ADDRESS,  /* char *, a syslog destination */
	T_GROUPS,   /* char ** at offset, size_t count at offset2 */
	T_SINKS,    /* struct pl_sink * at offset, size_t count at offset2 (file only) */
	T_BUNDLES,  /* char ** "NAME=/PATH" at offset, size_t count at offset2 */
	T_NAME,	    /* char *, a bundle name or "" */
	/* enum pl_auto_bool: "auto" or a boolean */
	T_AUTO_BOOL,
};

/* One setting. def is its default as a user would write it, parsed by the same code as the file
 * and the plugstack line (NULL: no default, the key is required or the list starts empty). */
struct key {
	const char *name;
	enum value_type type;
	const char *def;
	size_t offset;
	size_t offset2;
	uint64_t min, max; /* numbers: bounds; lists: most elements */
};

#define CFG(member) offsetof(struct pl_config, member)
#define SINK(member) offsetof(struct pl_sink, member)

struct sink_kind {
	const char *name;
	enum pl_sink_type type;
	const struct key *keys;
	size_t n_keys;
};

#endif
