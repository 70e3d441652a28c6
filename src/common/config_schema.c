/* The configuration's schema: every key, its type, default and bounds, the kinds of sink, and
 * the messages that name them (an unknown key, what a key wants). */
#include "config_schema.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

const struct key config_keys[] = {
    {.name = "debug", .type = T_BOOL, .def = "false", .offset = CFG(debug)},
    {.name = "stage.dir", .type = T_PATH, .def = "/dev/shm/pylaunch", .offset = CFG(stage_dir)},
    {.name = "stage.max_size",
     .type = T_SIZE64,
     .def = "16G",
     .offset = CFG(stage_max_size),
     .min = MIB,
     .max = MIB * MIB * 1024},
    {.name = "stage.max_entries",
     .type = T_UINT,
     .def = "500000",
     .offset = CFG(stage_max_entries),
     .min = 1000,
     .max = 1000000000},
    {.name = "stage.ld_library_path",
     .type = T_BOOL,
     .def = "true",
     .offset = CFG(stage_ld_library_path)},
    {.name = "stage.timeout",
     .type = T_DURATION,
     .def = "600",
     .offset = CFG(stage_timeout),
     .min = 1,
     .max = 86400},
    {.name = "epilog.timeout",
     .type = T_DURATION,
     .def = "60",
     .offset = CFG(epilog_timeout),
     .min = 5,
     .max = 3600},
    {.name = "tree.enabled", .type = T_BOOL, .def = "true", .offset = CFG(tree_enabled)},
    {.name = "tree.fanout",
     .type = T_UINT,
     .def = "4",
     .offset = CFG(tree_fanout),
     .min = 1,
     .max = 64},
    {.name = "tree.ports",
     .type = T_PORTS,
     .def = "47000-47999",
     .offset = CFG(tree_port_min),
     .offset2 = CFG(tree_port_max),
     .min = 1024,
     .max = 65535},
    {.name = "tree.connect_timeout",
     .type = T_DURATION,
     .def = "5",
     .offset = CFG(tree_connect_timeout),
     .min = 1,
     .max = 300},
    {.name = "tree.stall_timeout",
     .type = T_DURATION,
     .def = "30",
     .offset = CFG(tree_stall_timeout),
     .min = 1,
     .max = 3600},
    {.name = "tree.store_and_forward",
     .type = T_BOOL,
     .def = "false",
     .offset = CFG(tree_store_and_forward)},
    {.name = "tree.prolog_alloc",
     .type = T_AUTO_BOOL,
     .def = "auto",
     .offset = CFG(tree_prolog_alloc)},
    {.name = "monitor.default", .type = T_BOOL, .def = "off", .offset = CFG(monitor_default)},
    {.name = "monitor.sample_rate",
     .type = T_RATIO,
     .def = "1.0",
     .offset = CFG(monitor_sample_rate)},
    {.name = "monitor.spool_dir",
     .type = T_PATH,
     .def = "/dev/shm/pylaunch-spool",
     .offset = CFG(monitor_spool_dir)},
    /* Build-dependent default: the one key the example file leaves commented out. */
    {.name = "monitor.hook_dir",
     .type = T_PATH,
     .def = PL_HOOK_DIR,
     .offset = CFG(monitor_hook_dir)},
    {.name = "monitor.epilog_timeout",
     .type = T_DURATION,
     .def = "30",
     .offset = CFG(monitor_epilog_timeout),
     .min = 1,
     .max = 3600},
    {.name = "monitor.record_max",
     .type = T_SIZE,
     .def = "1M",
     .offset = CFG(monitor_record_max),
     .min = 64 * 1024, /* room for the job's fields and the counts whatever is cut */
     .max = 64 * MIB},
    {.name = "monitor.staff_groups",
     .type = T_GROUPS,
     .def = "",
     .offset = CFG(staff_groups),
     .offset2 = CFG(n_staff_groups),
     .max = PL_CONFIG_MAX_STAFF_GROUPS},
    {.name = "monitor.sinks",
     .type = T_SINKS,
     .offset = CFG(sinks),
     .offset2 = CFG(n_sinks),
     .max = PL_CONFIG_MAX_SINKS},
    {.name = "bundles",
     .type = T_BUNDLES,
     .def = "",
     .offset = CFG(bundles),
     .offset2 = CFG(n_bundles),
     .max = PL_CONFIG_MAX_BUNDLES},
    {.name = "policy.default_bundle",
     .type = T_NAME,
     .def = "",
     .offset = CFG(policy_default_bundle)},
    {.name = "policy.min_nodes",
     .type = T_UINT,
     .def = "2",
     .offset = CFG(policy_min_nodes),
     .min = 1,
     .max = 1000000},
    {.name = "cache.enabled", .type = T_BOOL, .def = "false", .offset = CFG(cache_enabled)},
    {.name = "cache.max_size",
     .type = T_SIZE64,
     .def = "8G",
     .offset = CFG(cache_max_size),
     .min = MIB,
     .max = MIB * MIB * 1024},
    {.name = "cache.max_entries",
     .type = T_UINT,
     .def = "16",
     .offset = CFG(cache_max_entries),
     .min = 1,
     .max = 100000},
    {.name = "cache.verify_digest",
     .type = T_BOOL,
     .def = "false",
     .offset = CFG(cache_verify_digest)},
};

static const struct key file_sink_keys[] = {
    {.name = "path", .type = T_PATH, .offset = SINK(path)},
};

static const struct key syslog_sink_keys[] = {
    {.name = "address", .type = T_ADDRESS, .def = "local", .offset = SINK(address)},
    {.name = "facility", .type = T_FACILITY, .def = "user", .offset = SINK(facility)},
    {.name = "max_message",
     .type = T_SIZE,
     .def = "8192",
     .offset = SINK(max_message),
     .min = 480, /* RFC 5424: every receiver takes 480 octets */
     .max = MIB},
};

const struct sink_kind sink_kinds[] = {
    {"file", PL_SINK_FILE, file_sink_keys, ARRAY_SIZE(file_sink_keys)},
    {"syslog", PL_SINK_SYSLOG, syslog_sink_keys, ARRAY_SIZE(syslog_sink_keys)},
};

/* A sink mapping with more entries than this has an unknown or a duplicate key. */
_Static_assert(1 + ARRAY_SIZE(file_sink_keys) + ARRAY_SIZE(syslog_sink_keys) <= SINK_KEYS_MAX,
	       "SINK_KEYS_MAX too small for the sink keys");

const char *const syslog_facilities[] = {
    "kern",   "user",	"mail",	  "daemon",   "auth",	"syslog", "lpr",
    "news",   "uucp",	"cron",	  "authpriv", "ftp",	"local0", "local1",
    "local2", "local3", "local4", "local5",   "local6", "local7",
};

#include "config_internal.h"

const struct key *cfg_find_key_in(const struct key *keys, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

const struct key *cfg_find_key(const char *name)
{
	return cfg_find_key_in(config_keys, ARRAY_SIZE(config_keys), name);
}

/* Index of the first key inside section name ("tree" for "tree.fanout"), -1 if none. */
int cfg_find_section(const char *name)
{
	size_t len = strlen(name);

	for (size_t i = 0; i < ARRAY_SIZE(config_keys); i++)
		if (strncmp(config_keys[i].name, name, len) == 0 && config_keys[i].name[len] == '.')
			return (int)i;
	return -1;
}

const struct sink_kind *cfg_sink_kind_named(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(sink_kinds); i++)
		if (strcmp(sink_kinds[i].name, name) == 0)
			return &sink_kinds[i];
	return NULL;
}

const struct sink_kind *cfg_sink_kind_of(enum pl_sink_type type)
{
	for (size_t i = 0; i < ARRAY_SIZE(sink_kinds); i++)
		if (sink_kinds[i].type == type)
			return &sink_kinds[i];
	return NULL;
}

bool cfg_is_sink_key(const char *name)
{
	if (strcmp(name, "type") == 0)
		return true;
	for (size_t i = 0; i < ARRAY_SIZE(sink_kinds); i++)
		if (cfg_find_key_in(sink_kinds[i].keys, sink_kinds[i].n_keys, name))
			return true;
	return false;
}

const char *pl_config_key_name(size_t index)
{
	return index < ARRAY_SIZE(config_keys) ? config_keys[index].name : NULL;
}

const char *pl_sink_type_name(enum pl_sink_type type)
{
	const struct sink_kind *kind = cfg_sink_kind_of(type);

	return kind ? kind->name : "unknown";
}

void *cfg_field(void *base, size_t offset)
{
	return (char *)base + offset;
}

const void *cfg_const_field(const void *base, size_t offset)
{
	return (const char *)base + offset;
}

/* ------------------------------------------------------------------ messages */

PRINTF_LIKE(2, 3) int cfg_explain(struct problem *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->reason, sizeof(p->reason), fmt, ap);
	va_end(ap);
	return -1;
}

const char *cfg_show(struct shown *buf, const char *s)
{
	size_t n = 0;

	for (; s[n] && n < SHOWN_MAX; n++)
		buf->text[n] = (s[n] >= 0x20 && s[n] < 0x7f) ? s[n] : '?';
	strcpy(buf->text + n, s[n] ? "..." : "");
	return buf->text;
}

static void text_add(struct text *t, const char *item)
{
	int n = snprintf(t->buf + t->len, t->size - t->len, "%s%s", t->len ? ", " : "", item);

	if (n > 0)
		t->len = (t->len + (size_t)n < t->size) ? t->len + (size_t)n : t->size - 1;
}

static bool list_contains(const char *list, const char *item)
{
	size_t len = strlen(item);

	for (const char *p = list; (p = strstr(p, item)) != NULL; p += len)
		if ((p == list || p[-1] == ' ') && (p[len] == ',' || p[len] == '\0'))
			return true;
	return false;
}

/* The names directly inside section ("" for the top level), e.g. "fanout, ports, ...";
 * with full_names, as the plugstack line spells them: "tree.fanout, ..., monitor.*". */
static void list_section(const char *section, bool full_names, char *out, size_t size)
{
	struct text t = {out, size, 0};
	size_t skip = *section ? strlen(section) + 1 : 0;

	out[0] = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(config_keys); i++) {
		const char *name = config_keys[i].name;
		char item[KEY_MAX];
		size_t len;

		if (skip && (strncmp(name, section, skip - 1) != 0 || name[skip - 1] != '.'))
			continue;
		len = strcspn(name + skip, ".");
		snprintf(item, sizeof(item), "%.*s%.*s%s", full_names ? (int)skip : 0, name,
			 (int)len, name + skip, full_names && name[skip + len] ? ".*" : "");
		if (!list_contains(out, item))
			text_add(&t, item);
	}
}

/* The longest section that name is in or is, "" when none: where to look for what was meant. */
static void known_section_of(const char *name, char *out, size_t size)
{
	char *dot;

	snprintf(out, size, "%s", name);
	while (cfg_find_section(out) < 0) {
		dot = strrchr(out, '.');
		if (!dot) {
			out[0] = '\0';
			return;
		}
		*dot = '\0';
	}
}

int cfg_unknown_key(struct problem *p, const char *name, bool full_names)
{
	char section[KEY_MAX], list[REASON_MAX - 64];

	known_section_of(name, section, sizeof(section));
	list_section(section, full_names, list, sizeof(list));
	return cfg_explain(p, "unknown key (expected one of: %s)", list);
}

void cfg_list_sink_keys(const struct sink_kind *kind, char *out, size_t size)
{
	struct text t = {out, size, 0};

	out[0] = '\0';
	text_add(&t, "type");
	for (size_t k = 0; k < ARRAY_SIZE(sink_kinds); k++) {
		if (kind && &sink_kinds[k] != kind)
			continue;
		for (size_t i = 0; i < sink_kinds[k].n_keys; i++)
			if (!list_contains(out, sink_kinds[k].keys[i].name))
				text_add(&t, sink_kinds[k].keys[i].name);
	}
}

/* "file or syslog" */
void cfg_list_sink_kinds(char *out, size_t size)
{
	size_t len = 0;

	out[0] = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(sink_kinds) && len < size; i++) {
		const char *sep = i == 0 ? "" : (i + 1 == ARRAY_SIZE(sink_kinds) ? " or " : ", ");
		int n = snprintf(out + len, size - len, "%s%s", sep, sink_kinds[i].name);

		len += n > 0 ? (size_t)n : 0;
	}
}

/* "16G" for 16 GiB: the largest binary unit that divides bytes exactly. */
static void format_size(uint64_t bytes, char *out, size_t size)
{
	static const char units[] = "KMGT";
	int unit = -1;

	while (unit < 3 && bytes != 0 && bytes % 1024 == 0) {
		bytes /= 1024;
		unit++;
	}
	if (unit < 0)
		snprintf(out, size, "%llu", (unsigned long long)bytes);
	else
		snprintf(out, size, "%llu%c", (unsigned long long)bytes, units[unit]);
}

/* What a valid value of k looks like, as the reason of a message; returns -1. */
int cfg_describe(const struct key *k, struct problem *p)
{
	unsigned long long min = k->min, max = k->max;
	char lo[24], hi[24];

	switch (k->type) {
	case T_BOOL:
		return cfg_explain(p, "expected a boolean (yes/no, true/false, on/off, 1/0)");
	case T_AUTO_BOOL:
		return cfg_explain(p,
				   "expected auto or a boolean (yes/no, true/false, on/off, 1/0)");
	case T_UINT:
		return cfg_explain(p, "expected an integer between %llu and %llu", min, max);
	case T_DURATION:
		return cfg_explain(
		    p, "expected a duration between %llu and %llu seconds (e.g. 30, 30s, 5m, 2h)",
		    min, max);
	case T_SIZE64:
	case T_SIZE:
		format_size(k->min, lo, sizeof(lo));
		format_size(k->max, hi, sizeof(hi));
		return cfg_explain(
		    p,
		    "expected a size between %s and %s (e.g. 8192, 512K, 16G; K, M, G, "
		    "T are powers of 1024)",
		    lo, hi);
	case T_RATIO:
		return cfg_explain(p, "expected a fraction between 0 and 1 (e.g. 0.25 or 25%%)");
	case T_PORTS:
		return cfg_explain(
		    p,
		    "expected a port range LO-HI with %llu <= LO <= HI <= %llu (e.g. 47000-47999)",
		    min, max);
	case T_PATH:
		return cfg_explain(p, "expected an absolute path");
	case T_FACILITY:
		return cfg_explain(p, "expected kern, user, mail, daemon, auth, syslog, lpr, news, "
				      "uucp, cron, authpriv, ftp or local0..local7");
	case T_ADDRESS:
		return cfg_explain(
		    p, "expected local, udp://HOST:PORT or tcp://HOST:PORT (IPv6: [ADDRESS]:PORT)");
	case T_GROUPS:
		return cfg_explain(p, "expected a list of group names (e.g. [staff, admins], or "
				      "staff,admins on the plugstack line)");
	case T_BUNDLES:
		return cfg_explain(
		    p, "expected a mapping NAME: /PATH (NAME=/PATH,... on the plugstack "
		       "line), NAME of letters, digits, '.', '_', '-'");
	case T_NAME:
		return cfg_explain(
		    p, "expected a bundle name (letters, digits, '.', '_', '-') or none");
	case T_SINKS:
		break;
	}
	return cfg_explain(p, "expected a list of sinks");
}

void cfg_file_error(char *err, size_t errlen, const char *path, const char *reason)
{
	snprintf(err, errlen, "%s: %s", path, reason);
}
