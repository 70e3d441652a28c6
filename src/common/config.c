#include "config.h"

/* Where make install puts the monitor hook (configure passes PL_DATADIR). */
#ifndef PL_DATADIR
#define PL_DATADIR "/usr/local/share/pylaunch"
#endif
#define PL_HOOK_DIR PL_DATADIR "/monitor"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "units.h"

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

/* ------------------------------------------------------------------ schema */

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

static const struct key config_keys[] = {
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

struct sink_kind {
	const char *name;
	enum pl_sink_type type;
	const struct key *keys;
	size_t n_keys;
};

static const struct sink_kind sink_kinds[] = {
    {"file", PL_SINK_FILE, file_sink_keys, ARRAY_SIZE(file_sink_keys)},
    {"syslog", PL_SINK_SYSLOG, syslog_sink_keys, ARRAY_SIZE(syslog_sink_keys)},
};

/* A sink mapping with more entries than this has an unknown or a duplicate key. */
_Static_assert(1 + ARRAY_SIZE(file_sink_keys) + ARRAY_SIZE(syslog_sink_keys) <= SINK_KEYS_MAX,
	       "SINK_KEYS_MAX too small for the sink keys");

static const char *const syslog_facilities[] = {
    "kern",   "user",	"mail",	  "daemon",   "auth",	"syslog", "lpr",
    "news",   "uucp",	"cron",	  "authpriv", "ftp",	"local0", "local1",
    "local2", "local3", "local4", "local5",   "local6", "local7",
};

static const struct key *find_key_in(const struct key *keys, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

static const struct key *find_key(const char *name)
{
	return find_key_in(config_keys, ARRAY_SIZE(config_keys), name);
}

/* Index of the first key inside section name ("tree" for "tree.fanout"), -1 if none. */
static int find_section(const char *name)
{
	size_t len = strlen(name);

	for (size_t i = 0; i < ARRAY_SIZE(config_keys); i++)
		if (strncmp(config_keys[i].name, name, len) == 0 && config_keys[i].name[len] == '.')
			return (int)i;
	return -1;
}

static const struct sink_kind *sink_kind_named(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(sink_kinds); i++)
		if (strcmp(sink_kinds[i].name, name) == 0)
			return &sink_kinds[i];
	return NULL;
}

static const struct sink_kind *sink_kind_of(enum pl_sink_type type)
{
	for (size_t i = 0; i < ARRAY_SIZE(sink_kinds); i++)
		if (sink_kinds[i].type == type)
			return &sink_kinds[i];
	return NULL;
}

static bool is_sink_key(const char *name)
{
	if (strcmp(name, "type") == 0)
		return true;
	for (size_t i = 0; i < ARRAY_SIZE(sink_kinds); i++)
		if (find_key_in(sink_kinds[i].keys, sink_kinds[i].n_keys, name))
			return true;
	return false;
}

const char *pl_config_key_name(size_t index)
{
	return index < ARRAY_SIZE(config_keys) ? config_keys[index].name : NULL;
}

const char *pl_sink_type_name(enum pl_sink_type type)
{
	const struct sink_kind *kind = sink_kind_of(type);

	return kind ? kind->name : "unknown";
}

static void *field(void *base, size_t offset)
{
	return (char *)base + offset;
}

static const void *const_field(const void *base, size_t offset)
{
	return (const char *)base + offset;
}

/* ------------------------------------------------------------------ messages */

/* What is wrong, for a message "KEY: REASON". */
struct problem {
	char key[KEY_MAX];
	char reason[REASON_MAX];
};

static PRINTF_LIKE(2, 3) int explain(struct problem *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->reason, sizeof(p->reason), fmt, ap);
	va_end(ap);
	return -1;
}

/* A user's text as it may be quoted in a log line: printable ASCII only (a newline in a value
 * must not forge a second log line), cut at SHOWN_MAX bytes. */
struct shown {
	char text[SHOWN_MAX + 4];
};

static const char *show(struct shown *buf, const char *s)
{
	size_t n = 0;

	for (; s[n] && n < SHOWN_MAX; n++)
		buf->text[n] = (s[n] >= 0x20 && s[n] < 0x7f) ? s[n] : '?';
	strcpy(buf->text + n, s[n] ? "..." : "");
	return buf->text;
}

/* Bounded appending of list items; what does not fit is dropped. */
struct text {
	char *buf;
	size_t size, len;
};

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
	while (find_section(out) < 0) {
		dot = strrchr(out, '.');
		if (!dot) {
			out[0] = '\0';
			return;
		}
		*dot = '\0';
	}
}

static int unknown_key(struct problem *p, const char *name, bool full_names)
{
	char section[KEY_MAX], list[REASON_MAX - 64];

	known_section_of(name, section, sizeof(section));
	list_section(section, full_names, list, sizeof(list));
	return explain(p, "unknown key (expected one of: %s)", list);
}

static void list_sink_keys(const struct sink_kind *kind, char *out, size_t size)
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
static void list_sink_kinds(char *out, size_t size)
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
static int describe(const struct key *k, struct problem *p)
{
	unsigned long long min = k->min, max = k->max;
	char lo[24], hi[24];

	switch (k->type) {
	case T_BOOL:
		return explain(p, "expected a boolean (yes/no, true/false, on/off, 1/0)");
	case T_AUTO_BOOL:
		return explain(p, "expected auto or a boolean (yes/no, true/false, on/off, 1/0)");
	case T_UINT:
		return explain(p, "expected an integer between %llu and %llu", min, max);
	case T_DURATION:
		return explain(
		    p, "expected a duration between %llu and %llu seconds (e.g. 30, 30s, 5m, 2h)",
		    min, max);
	case T_SIZE64:
	case T_SIZE:
		format_size(k->min, lo, sizeof(lo));
		format_size(k->max, hi, sizeof(hi));
		return explain(p,
			       "expected a size between %s and %s (e.g. 8192, 512K, 16G; K, M, G, "
			       "T are powers of 1024)",
			       lo, hi);
	case T_RATIO:
		return explain(p, "expected a fraction between 0 and 1 (e.g. 0.25 or 25%%)");
	case T_PORTS:
		return explain(
		    p,
		    "expected a port range LO-HI with %llu <= LO <= HI <= %llu (e.g. 47000-47999)",
		    min, max);
	case T_PATH:
		return explain(p, "expected an absolute path");
	case T_FACILITY:
		return explain(p, "expected kern, user, mail, daemon, auth, syslog, lpr, news, "
				  "uucp, cron, authpriv, ftp or local0..local7");
	case T_ADDRESS:
		return explain(
		    p, "expected local, udp://HOST:PORT or tcp://HOST:PORT (IPv6: [ADDRESS]:PORT)");
	case T_GROUPS:
		return explain(p, "expected a list of group names (e.g. [staff, admins], or "
				  "staff,admins on the plugstack line)");
	case T_BUNDLES:
		return explain(p, "expected a mapping NAME: /PATH (NAME=/PATH,... on the plugstack "
				  "line), NAME of letters, digits, '.', '_', '-'");
	case T_NAME:
		return explain(p,
			       "expected a bundle name (letters, digits, '.', '_', '-') or none");
	case T_SINKS:
		break;
	}
	return explain(p, "expected a list of sinks");
}

/* ------------------------------------------------------------------ checks of strings */

static bool has_control_char(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return true;
	return false;
}

static bool has_dot_segment(const char *path)
{
	for (const char *seg = path; *seg; seg++) {
		size_t len;

		if (*seg == '/')
			continue;
		len = strcspn(seg, "/");
		if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.'))
			return true;
		seg += len - 1;
	}
	return false;
}

/* Directories that root creates and purges: no ambiguity about which one is meant. */
static const char *path_problem(const char *path)
{
	size_t len = strlen(path);

	if (path[0] != '/')
		return "expected an absolute path";
	if (len == 1)
		return "must not be / itself";
	if (len >= PATH_MAX)
		return "path too long";
	if (has_control_char(path, len))
		return "path contains a control character";
	if (has_dot_segment(path))
		return "path must not contain . or .. components";
	if (strstr(path, "//") || path[len - 1] == '/')
		return "path must not contain repeated or trailing slashes";
	return NULL;
}

/* path with repeated and trailing slashes folded ("/a//b/" is "/a/b"); NULL without memory. */
static char *fold_slashes(const char *path)
{
	char *out = malloc(strlen(path) + 1), *o = out;

	if (!out)
		return NULL;
	for (const char *s = path; *s; s++)
		if (!(*s == '/' && o > out && o[-1] == '/'))
			*o++ = *s;
	if (o - out > 1 && o[-1] == '/')
		o--;
	*o = '\0';
	return out;
}

static const char *facility_problem(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(syslog_facilities); i++)
		if (strcmp(name, syslog_facilities[i]) == 0)
			return NULL;
	return "unknown syslog facility";
}

static bool is_host_name(const char *host, size_t len)
{
	if (len == 0)
		return false;
	if (host[0] == '[')
		return len > 2 && host[len - 1] == ']' &&
		       strspn(host + 1, "0123456789abcdefABCDEF:.") == len - 2;
	return strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") ==
	       len;
}

/* "local", "udp://HOST:PORT" or "tcp://HOST:PORT". */
static const char *address_problem(const char *address)
{
	const char *host, *colon;
	unsigned port;

	if (strcmp(address, "local") == 0)
		return NULL;
	if (strncmp(address, "udp://", 6) != 0 && strncmp(address, "tcp://", 6) != 0)
		return "unknown syslog address";
	host = address + 6;
	colon = strrchr(host, ':');
	if (!colon || !is_host_name(host, (size_t)(colon - host)))
		return "syslog address without a valid HOST:PORT";
	if (pl_parse_uint(colon + 1, 1, 65535, &port) < 0)
		return "syslog address without a valid port (1..65535)";
	return NULL;
}

/* Anything NSS may call a group (directory services allow spaces), but not our separator ','
 * nor ':' of /etc/group, nor control characters. */
static const char *group_name_problem(const char *name, size_t len)
{
	if (len == 0)
		return "empty group name";
	if (len > GROUP_NAME_MAX)
		return "group name longer than 256 bytes";
	if (has_control_char(name, len) || memchr(name, ',', len) || memchr(name, ':', len))
		return "group name with a comma, a colon or a control character";
	return NULL;
}

/* Names appear in --pybundle=@NAME lists: no comma, no '=', nothing a shell or a log mangles. */
static const char *bundle_name_problem(const char *name, size_t len)
{
	if (len > PL_BUNDLE_NAME_MAX)
		return "bundle name longer than 64 bytes";
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)name[i]) && !strchr("._-", name[i]))
			return "bundle name with a character other than letters, digits, '.', '_', "
			       "'-'";
	return NULL;
}

static const char *string_problem(enum value_type type, const char *s)
{
	switch (type) {
	case T_NAME:
		return bundle_name_problem(s, strlen(s));
	case T_PATH:
		return path_problem(s);
	case T_FACILITY:
		return facility_problem(s);
	case T_ADDRESS:
		return address_problem(s);
	default:
		return NULL;
	}
}

/* The problem with a string and, where it has a fixed form, that form. */
static int explain_string(const struct key *k, const char *problem, struct problem *p)
{
	struct problem form;

	if (k->type == T_PATH || k->type == T_NAME)
		return explain(p, "%s", problem);
	describe(k, &form);
	return explain(p, "%s (%.*s)", problem, REASON_MAX / 2, form.reason);
}

/* ------------------------------------------------------------------ lists */

struct name_list {
	char **names;
	size_t n;
};

static void free_names(char ***names, size_t *n)
{
	for (size_t i = 0; i < *n; i++)
		free((*names)[i]);
	free(*names);
	*names = NULL;
	*n = 0;
}

static int name_list_add(struct name_list *list, const struct key *k, const char *name, size_t len,
			 struct problem *p)
{
	const char *problem = group_name_problem(name, len);
	char **grown;

	if (problem)
		return explain(p, "%s (expected e.g. staff,admins)", problem);
	if (list->n >= k->max)
		return explain(p, "more than %llu groups", (unsigned long long)k->max);
	grown = realloc(list->names, (list->n + 1) * sizeof(*grown));
	if (!grown)
		return explain(p, "out of memory");
	list->names = grown;
	list->names[list->n] = strndup(name, len);
	if (!list->names[list->n])
		return explain(p, "out of memory");
	list->n++;
	return 0;
}

/* name and path (given separately: YAML, or split at '=') as "NAME=/PATH". */
static int bundle_list_add(struct name_list *list, const struct key *k, const char *name,
			   size_t len, const char *path, struct problem *p)
{
	const char *problem = len ? bundle_name_problem(name, len) : "empty bundle name";
	char *folded;
	char **grown;

	if (problem)
		return explain(p, "%s", problem);
	folded = fold_slashes(path);
	problem = folded ? path_problem(folded) : "out of memory";
	if (problem) {
		free(folded);
		return explain(p, "bundle '%.*s': %s", (int)len, name, problem);
	}
	for (size_t i = 0; i < list->n; i++)
		if (strncmp(list->names[i], name, len) == 0 && list->names[i][len] == '=') {
			free(folded);
			return explain(p, "bundle '%.*s' named twice", (int)len, name);
		}
	grown = list->n < k->max ? realloc(list->names, (list->n + 1) * sizeof(*grown)) : NULL;
	if (!grown || asprintf(&grown[list->n], "%.*s=%s", (int)len, name, folded) < 0) {
		if (grown)
			list->names = grown;
		free(folded);
		return explain(p, list->n < k->max ? "out of memory" : "more than %llu bundles",
			       (unsigned long long)k->max);
	}
	free(folded);
	list->names = grown;
	list->n++;
	return 0;
}

/* Moves list into the field of k, replacing what was there. */
static void store_names(const struct key *k, void *base, struct name_list *list)
{
	char ***names = field(base, k->offset);
	size_t *n = field(base, k->offset2);

	free_names(names, n);
	*names = list->names;
	*n = list->n;
	list->names = NULL;
	list->n = 0;
}

static void free_fields(const struct key *keys, size_t n, void *base);

static void free_sink(struct pl_sink *sink)
{
	for (size_t i = 0; i < ARRAY_SIZE(sink_kinds); i++)
		free_fields(sink_kinds[i].keys, sink_kinds[i].n_keys, sink);
}

static void free_sinks(struct pl_sink **sinks, size_t *n)
{
	for (size_t i = 0; i < *n; i++)
		free_sink(&(*sinks)[i]);
	free(*sinks);
	*sinks = NULL;
	*n = 0;
}

struct sink_list {
	struct pl_sink *items;
	size_t n;
};

/* One more, zeroed, sink at the end of list. */
static struct pl_sink *sink_list_add(struct sink_list *list)
{
	struct pl_sink *grown = realloc(list->items, (list->n + 1) * sizeof(*grown));

	if (!grown)
		return NULL;
	list->items = grown;
	memset(&grown[list->n], 0, sizeof(grown[list->n]));
	return &grown[list->n++];
}

static void store_sinks(const struct key *k, void *base, struct sink_list *list)
{
	struct pl_sink **sinks = field(base, k->offset);
	size_t *n = field(base, k->offset2);

	free_sinks(sinks, n);
	*sinks = list->items;
	*n = list->n;
	list->items = NULL;
	list->n = 0;
}

static void free_field(const struct key *k, void *base)
{
	switch (k->type) {
	case T_PATH:
	case T_FACILITY:
	case T_ADDRESS:
		free(*(char **)field(base, k->offset));
		*(char **)field(base, k->offset) = NULL;
		break;
	case T_GROUPS:
	case T_BUNDLES:
		free_names(field(base, k->offset), field(base, k->offset2));
		break;
	case T_NAME:
		free(*(char **)field(base, k->offset));
		*(char **)field(base, k->offset) = NULL;
		break;
	case T_SINKS:
		free_sinks(field(base, k->offset), field(base, k->offset2));
		break;
	default:
		break;
	}
}

static void free_fields(const struct key *keys, size_t n, void *base)
{
	for (size_t i = 0; i < n; i++)
		free_field(&keys[i], base);
}

/* ------------------------------------------------------------------ applying a value */

/* Each apply_* parses text and stores it in base only when it is valid. */

static int apply_bool(const struct key *k, void *base, const char *text, struct problem *p)
{
	bool v;

	if (pl_parse_bool(text, &v) < 0)
		return describe(k, p);
	*(bool *)field(base, k->offset) = v;
	return 0;
}

static int apply_auto_bool(const struct key *k, void *base, const char *text, struct problem *p)
{
	bool v;

	if (strcmp(text, "auto") == 0) {
		*(enum pl_auto_bool *)field(base, k->offset) = PL_AUTO;
		return 0;
	}
	if (pl_parse_bool(text, &v) < 0)
		return describe(k, p);
	*(enum pl_auto_bool *)field(base, k->offset) = v ? PL_YES : PL_NO;
	return 0;
}

static int apply_uint(const struct key *k, void *base, const char *text, struct problem *p)
{
	unsigned v;

	if (pl_parse_uint(text, (unsigned)k->min, (unsigned)k->max, &v) < 0)
		return describe(k, p);
	*(unsigned *)field(base, k->offset) = v;
	return 0;
}

static int apply_duration(const struct key *k, void *base, const char *text, struct problem *p)
{
	unsigned v;

	if (pl_parse_duration(text, &v) < 0 || v < k->min || v > k->max)
		return describe(k, p);
	*(unsigned *)field(base, k->offset) = v;
	return 0;
}

static int apply_size(const struct key *k, void *base, const char *text, struct problem *p)
{
	uint64_t v;

	if (pl_parse_size(text, &v) < 0 || v < k->min || v > k->max)
		return describe(k, p);
	if (k->type == T_SIZE64)
		*(uint64_t *)field(base, k->offset) = v;
	else
		*(size_t *)field(base, k->offset) = (size_t)v;
	return 0;
}

static int apply_ratio(const struct key *k, void *base, const char *text, struct problem *p)
{
	double v;

	if (pl_parse_ratio(text, &v) < 0)
		return describe(k, p);
	*(double *)field(base, k->offset) = v;
	return 0;
}

static int apply_ports(const struct key *k, void *base, const char *text, struct problem *p)
{
	unsigned lo, hi;

	if (pl_parse_port_range(text, &lo, &hi) < 0 || lo < k->min || hi > k->max)
		return describe(k, p);
	*(unsigned *)field(base, k->offset) = lo;
	*(unsigned *)field(base, k->offset2) = hi;
	return 0;
}

static int apply_string(const struct key *k, void *base, const char *text, struct problem *p)
{
	char **slot = field(base, k->offset);
	char *copy = k->type == T_PATH ? fold_slashes(text) : strdup(text);
	const char *problem;

	if (!copy)
		return explain(p, "out of memory");
	problem = string_problem(k->type, copy);
	if (problem) {
		free(copy);
		return explain_string(k, problem, p);
	}
	free(*slot);
	*slot = copy;
	return 0;
}

/* "staff,admins"; "" is the empty list. */
static int apply_group_text(const struct key *k, void *base, const char *text, struct problem *p)
{
	struct name_list list = {NULL, 0};
	const char *s = text;
	int rc = -1;

	while (*text) {
		const char *comma = strchrnul(s, ',');

		if (name_list_add(&list, k, s, (size_t)(comma - s), p) < 0)
			goto out;
		if (!*comma)
			break;
		s = comma + 1;
	}
	store_names(k, base, &list);
	rc = 0;
out:
	free_names(&list.names, &list.n);
	return rc;
}

/* "NAME=/PATH,NAME=/PATH"; "" is none. */
static int apply_bundle_text(const struct key *k, void *base, const char *text, struct problem *p)
{
	struct name_list list = {NULL, 0};
	const char *s = text;
	int rc = -1;

	while (*s) {
		const char *comma = strchrnul(s, ',');
		const char *eq = memchr(s, '=', (size_t)(comma - s));
		char *path = eq ? strndup(eq + 1, (size_t)(comma - eq - 1)) : NULL;

		if (!eq) {
			describe(k, p);
			goto out;
		}
		if (!path || bundle_list_add(&list, k, s, (size_t)(eq - s), path, p) < 0) {
			free(path);
			goto out;
		}
		free(path);
		s = *comma ? comma + 1 : comma;
	}
	store_names(k, base, &list);
	rc = 0;
out:
	free_names(&list.names, &list.n);
	return rc;
}

/* text as the value of k, stored in base (a struct pl_config or a struct pl_sink). */
static int apply_text(const struct key *k, void *base, const char *text, struct problem *p)
{
	switch (k->type) {
	case T_BOOL:
		return apply_bool(k, base, text, p);
	case T_AUTO_BOOL:
		return apply_auto_bool(k, base, text, p);
	case T_UINT:
		return apply_uint(k, base, text, p);
	case T_DURATION:
		return apply_duration(k, base, text, p);
	case T_SIZE64:
	case T_SIZE:
		return apply_size(k, base, text, p);
	case T_RATIO:
		return apply_ratio(k, base, text, p);
	case T_PORTS:
		return apply_ports(k, base, text, p);
	case T_PATH:
	case T_FACILITY:
	case T_ADDRESS:
	case T_NAME:
		return apply_string(k, base, text, p);
	case T_GROUPS:
		return apply_group_text(k, base, text, p);
	case T_BUNDLES:
		return apply_bundle_text(k, base, text, p);
	case T_SINKS:
		break;
	}
	return explain(p, "sinks can only be configured in the YAML file");
}

static int apply_defaults(const struct key *keys, size_t n, void *base, struct problem *p)
{
	for (size_t i = 0; i < n; i++)
		if (keys[i].def && apply_text(&keys[i], base, keys[i].def, p) < 0)
			return -1;
	return 0;
}

/* ------------------------------------------------------------------ checking stored values */

static int check_keys(const struct key *keys, size_t n, const void *base, const char *prefix,
		      struct problem *p);

static int check_string(const struct key *k, const void *base, struct problem *p)
{
	const char *s = *(char *const *)const_field(base, k->offset);
	const char *problem;

	if (!s)
		return explain(p, "missing");
	problem = string_problem(k->type, s);
	return problem ? explain_string(k, problem, p) : 0;
}

static int check_names(const struct key *k, const void *base, struct problem *p)
{
	char *const *names = *(char **const *)const_field(base, k->offset);
	size_t n = *(const size_t *)const_field(base, k->offset2);

	if (n > k->max)
		return explain(p, "more than %llu groups", (unsigned long long)k->max);
	for (size_t i = 0; i < n; i++) {
		const char *problem = names[i] ? group_name_problem(names[i], strlen(names[i]))
					       : "missing group name";

		if (problem)
			return explain(p, "%s", problem);
	}
	return 0;
}

/* Over UDP a message is one datagram. */
static int check_sink_size(const struct pl_sink *sink, const char *prefix, struct problem *p)
{
	if (sink->type != PL_SINK_SYSLOG || !sink->address ||
	    strncmp(sink->address, "udp://", 6) != 0 || sink->max_message <= UDP_PAYLOAD_MAX)
		return 0;
	snprintf(p->key, sizeof(p->key), "%smax_message", prefix);
	return explain(p, "at most %d bytes over UDP (one datagram)", UDP_PAYLOAD_MAX);
}

static int check_sink(const struct key *k, const struct pl_sink *sink, size_t i, struct problem *p)
{
	const struct sink_kind *kind = sink_kind_of(sink->type);
	char prefix[KEY_MAX / 2]; /* "monitor.sinks[15]." */

	snprintf(prefix, sizeof(prefix), "%s[%zu].", k->name, i);
	if (!kind) {
		snprintf(p->key, sizeof(p->key), "%stype", prefix);
		return explain(p, "unknown sink type %d", (int)sink->type);
	}
	if (check_keys(kind->keys, kind->n_keys, sink, prefix, p) < 0)
		return -1;
	return check_sink_size(sink, prefix, p);
}

static int check_sinks(const struct key *k, const void *base, struct problem *p)
{
	const struct pl_sink *sinks = *(struct pl_sink *const *)const_field(base, k->offset);
	size_t n = *(const size_t *)const_field(base, k->offset2);

	if (n > k->max)
		return explain(p, "more than %llu sinks", (unsigned long long)k->max);
	for (size_t i = 0; i < n; i++)
		if (check_sink(k, &sinks[i], i, p) < 0)
			return -1;
	return 0;
}

static bool in_bounds(const struct key *k, uint64_t v)
{
	return v >= k->min && v <= k->max;
}

static bool ports_in_bounds(const struct key *k, const void *base)
{
	unsigned lo = *(const unsigned *)const_field(base, k->offset);
	unsigned hi = *(const unsigned *)const_field(base, k->offset2);

	return in_bounds(k, lo) && in_bounds(k, hi) && lo <= hi;
}

static int check_value(const struct key *k, const void *base, struct problem *p)
{
	const void *v = const_field(base, k->offset);
	double ratio;

	switch (k->type) {
	case T_BOOL:
	case T_AUTO_BOOL:
		return 0;
	case T_UINT:
	case T_DURATION:
		return in_bounds(k, *(const unsigned *)v) ? 0 : describe(k, p);
	case T_SIZE64:
		return in_bounds(k, *(const uint64_t *)v) ? 0 : describe(k, p);
	case T_SIZE:
		return in_bounds(k, *(const size_t *)v) ? 0 : describe(k, p);
	case T_RATIO:
		ratio = *(const double *)v;
		return (ratio >= 0.0 && ratio <= 1.0) ? 0 : describe(k, p); /* NaN fails too */
	case T_PORTS:
		return ports_in_bounds(k, base) ? 0 : describe(k, p);
	case T_PATH:
	case T_FACILITY:
	case T_ADDRESS:
	case T_NAME:
		return check_string(k, base, p);
	case T_GROUPS:
		return check_names(k, base, p);
	case T_BUNDLES:
		return 0; /* checked as each was added */
	case T_SINKS:
		return check_sinks(k, base, p);
	}
	return 0;
}

static int check_keys(const struct key *keys, size_t n, const void *base, const char *prefix,
		      struct problem *p)
{
	for (size_t i = 0; i < n; i++) {
		snprintf(p->key, sizeof(p->key), "%s%s", prefix, keys[i].name);
		if (check_value(&keys[i], base, p) < 0)
			return -1;
	}
	return 0;
}

static bool path_within(const char *inner, const char *outer)
{
	size_t len = strlen(outer);

	return strncmp(inner, outer, len) == 0 && (inner[len] == '\0' || inner[len] == '/');
}

/* The epilog purges the stage directory; the spool must survive that and vice versa. */
static int check_dirs_apart(const struct pl_config *cfg, struct problem *p)
{
	if (!path_within(cfg->monitor_spool_dir, cfg->stage_dir) &&
	    !path_within(cfg->stage_dir, cfg->monitor_spool_dir))
		return 0;
	snprintf(p->key, sizeof(p->key), "monitor.spool_dir");
	return explain(p,
		       "must be apart from stage.dir (%s): neither the same, inside nor around it",
		       cfg->stage_dir);
}

const char *pl_config_bundle(const struct pl_config *cfg, const char *name)
{
	size_t len = strlen(name);

	for (size_t i = 0; i < cfg->n_bundles; i++)
		if (strncmp(cfg->bundles[i], name, len) == 0 && cfg->bundles[i][len] == '=')
			return cfg->bundles[i] + len + 1;
	return NULL;
}

static int check_default_bundle(const struct pl_config *cfg, struct problem *p)
{
	const char *name = cfg->policy_default_bundle;

	if (!name || !*name || pl_config_bundle(cfg, name))
		return 0;
	snprintf(p->key, sizeof(p->key), "policy.default_bundle");
	return explain(p, "'%s' is not one of the site's bundles (bundles:)", name);
}

int pl_config_validate(const struct pl_config *cfg, char *err, size_t errlen)
{
	struct problem p = {"", ""};

	if (check_keys(config_keys, ARRAY_SIZE(config_keys), cfg, "", &p) < 0 ||
	    check_dirs_apart(cfg, &p) < 0 || check_default_bundle(cfg, &p) < 0) {
		snprintf(err, errlen, "%s: %s: %s", cfg->source ? cfg->source : DEFAULTS_SOURCE,
			 p.key, p.reason);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ defaults, set, free */

void pl_config_init_defaults(struct pl_config *cfg)
{
	struct problem p;

	memset(cfg, 0, sizeof(*cfg));
	cfg->source = strdup(DEFAULTS_SOURCE);
	/* Only allocation can fail here (the unit tests parse every default); validate reports
	 * the field left NULL. */
	for (size_t i = 0; i < ARRAY_SIZE(config_keys); i++)
		if (config_keys[i].def)
			apply_text(&config_keys[i], cfg, config_keys[i].def, &p);
}

void pl_config_free(struct pl_config *cfg)
{
	free_fields(config_keys, ARRAY_SIZE(config_keys), cfg);
	free(cfg->source);
	memset(cfg, 0, sizeof(*cfg));
}

int pl_config_set(struct pl_config *cfg, const char *name, const char *value, char *err,
		  size_t errlen)
{
	const struct key *k;
	struct problem p;
	struct shown shown_name, shown_value;

	int rc;

	name = name ? name : "";
	value = value ? value : "";
	k = find_key(name);
	if (k)
		rc = apply_text(k, cfg, value, &p);
	else
		rc = unknown_key(&p, name, true);
	if (rc < 0)
		snprintf(err, errlen, "plugstack argument '%s=%s': %s", show(&shown_name, name),
			 show(&shown_value, value), p.reason);
	return rc;
}

/* ------------------------------------------------------------------ reading the file */

static void file_error(char *err, size_t errlen, const char *path, const char *reason)
{
	snprintf(err, errlen, "%s: %s", path, reason);
}

/* Opens path for reading if it is a regular file; *fd stays -1 when it does not exist. */
static int open_regular_file(const char *path, int *fd, char *err, size_t errlen)
{
	struct stat st;

	/* O_NONBLOCK: a FIFO put there must not hang slurmd; it is refused below. */
	*fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (*fd < 0) {
		if (errno == ENOENT)
			return 0;
		file_error(err, errlen, path, strerror(errno));
		return -1;
	}
	if (fstat(*fd, &st) < 0)
		file_error(err, errlen, path, strerror(errno));
	else if (S_ISDIR(st.st_mode))
		file_error(err, errlen, path, strerror(EISDIR));
	else if (!S_ISREG(st.st_mode))
		file_error(err, errlen, path, "not a regular file");
	else
		return 0;
	close(*fd);
	*fd = -1;
	return -1;
}

static int read_up_to(int fd, char *buf, size_t cap, size_t *len)
{
	*len = 0;
	while (*len < cap) {
		ssize_t n = read(fd, buf + *len, cap - *len);

		if (n == 0)
			break;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		*len += (size_t)n;
	}
	return 0;
}

/* The whole file in *text (not NUL-terminated); *text stays NULL when it does not exist. */
static int read_config_file(const char *path, char **text, size_t *len, char *err, size_t errlen)
{
	char *buf = NULL;
	int fd, rc = -1;

	*text = NULL;
	if (open_regular_file(path, &fd, err, errlen) < 0)
		return -1;
	if (fd < 0)
		return 0;
	/* One byte more than allowed: reading it proves the file too large, however it grew. */
	buf = malloc(PL_CONFIG_MAX_FILE_SIZE + 1);
	if (!buf) {
		file_error(err, errlen, path, strerror(ENOMEM));
		goto out;
	}
	if (read_up_to(fd, buf, PL_CONFIG_MAX_FILE_SIZE + 1, len) < 0) {
		file_error(err, errlen, path, strerror(errno));
		goto out;
	}
	if (*len > PL_CONFIG_MAX_FILE_SIZE) {
		file_error(err, errlen, path, "larger than 1 MiB: not a pylaunch configuration");
		goto out;
	}
	*text = buf;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	close(fd);
	return rc;
}

/* ------------------------------------------------------------------ the YAML walker */

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
	size_t section_line[ARRAY_SIZE(config_keys)]; /* same for sections, by find_section() */
	char key[KEY_MAX]; /* dotted name of what is being read, for messages */
	char *err;
	size_t errlen;
};

static size_t event_line(const struct loader *ld)
{
	return ld->event.start_mark.line + 1;
}

static PRINTF_LIKE(2, 3) void set_key(struct loader *ld, const char *fmt, ...)
{
	struct shown shown;
	char raw[KEY_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	snprintf(ld->key, sizeof(ld->key), "%s", show(&shown, raw));
}

static PRINTF_LIKE(3, 4) int fail_line(struct loader *ld, size_t line, const char *fmt, ...)
{
	char reason[REASON_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	if (ld->key[0])
		snprintf(ld->err, ld->errlen, "%s:%zu: %s: %s", ld->path, line, ld->key, reason);
	else
		snprintf(ld->err, ld->errlen, "%s:%zu: %s", ld->path, line, reason);
	return -1;
}

#define fail(ld, ...) fail_line((ld), event_line(ld), __VA_ARGS__)

static size_t line_of_offset(const char *text, size_t offset)
{
	size_t line = 1;

	for (size_t i = 0; i < offset; i++)
		line += text[i] == '\n';
	return line;
}

static int yaml_failure(struct loader *ld)
{
	const yaml_parser_t *ps = &ld->parser;
	const char *problem = ps->problem ? ps->problem : "syntax error";
	size_t line;

	if (ps->error == YAML_MEMORY_ERROR) {
		file_error(ld->err, ld->errlen, ld->path, strerror(ENOMEM));
		return -1;
	}
	line = ps->error == YAML_READER_ERROR ? line_of_offset(ld->text, ps->problem_offset)
					      : ps->problem_mark.line + 1;
	if (ps->context)
		snprintf(ld->err, ld->errlen, "%s:%zu: invalid YAML: %s (%s on line %zu)", ld->path,
			 line, problem, ps->context, ps->context_mark.line + 1);
	else
		snprintf(ld->err, ld->errlen, "%s:%zu: invalid YAML: %s", ld->path, line, problem);
	return -1;
}

static bool is_null(const yaml_event_t *ev)
{
	const char *s = (const char *)ev->data.scalar.value;

	return ev->type == YAML_SCALAR_EVENT && ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
	       (s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
		strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0);
}

static bool is_text(const yaml_event_t *ev)
{
	return ev->type == YAML_SCALAR_EVENT && !is_null(ev);
}

static const char *text_of(const yaml_event_t *ev)
{
	return (const char *)ev->data.scalar.value;
}

static const char *node_kind(const yaml_event_t *ev)
{
	switch (ev->type) {
	case YAML_MAPPING_START_EVENT:
		return "a mapping";
	case YAML_SEQUENCE_START_EVENT:
		return "a list";
	case YAML_SCALAR_EVENT:
		return is_null(ev) ? "no value" : "a single value";
	default:
		return "something else";
	}
}

/* What the schema cannot mean: anchors and aliases (one node in two places, and the way to
 * billion-laughs files), tags (a type the schema does not have), NUL (cuts a C string short). */
static int refuse_unsupported(struct loader *ld)
{
	const yaml_event_t *ev = &ld->event;
	const yaml_char_t *anchor = NULL, *tag = NULL;

	if (ev->type == YAML_ALIAS_EVENT)
		return fail(ld, "YAML aliases (*NAME) are not supported");
	if (ev->type == YAML_SCALAR_EVENT) {
		anchor = ev->data.scalar.anchor;
		tag = ev->data.scalar.tag;
		if (memchr(ev->data.scalar.value, '\0', ev->data.scalar.length))
			return fail(ld, "a value with a NUL character");
	} else if (ev->type == YAML_SEQUENCE_START_EVENT) {
		anchor = ev->data.sequence_start.anchor;
		tag = ev->data.sequence_start.tag;
	} else if (ev->type == YAML_MAPPING_START_EVENT) {
		anchor = ev->data.mapping_start.anchor;
		tag = ev->data.mapping_start.tag;
	}
	if (anchor)
		return fail(ld, "YAML anchors (&NAME) are not supported");
	if (tag)
		return fail(ld, "YAML tags (!TAG) are not supported");
	return 0;
}

static int next_event(struct loader *ld)
{
	if (ld->have_event)
		yaml_event_delete(&ld->event);
	ld->have_event = false;
	if (!yaml_parser_parse(&ld->parser, &ld->event))
		return yaml_failure(ld);
	ld->have_event = true;
	return refuse_unsupported(ld);
}

static int mark_given(struct loader *ld, size_t *first_line)
{
	if (*first_line)
		return fail(ld, "duplicate key (first given on line %zu)", *first_line);
	*first_line = event_line(ld);
	return 0;
}

static int expect_text(struct loader *ld)
{
	if (ld->event.type != YAML_SCALAR_EVENT)
		return fail(ld, "expected a single value, found %s", node_kind(&ld->event));
	if (is_null(&ld->event))
		return fail(ld, "no value (leave the key out to keep the default)");
	return 0;
}

/* A value for a scalar key k, stored in base (the configuration or a sink). */
static int load_scalar(struct loader *ld, const struct key *k, void *base)
{
	struct problem p;
	struct shown shown;

	if (expect_text(ld) < 0)
		return -1;
	if (apply_text(k, base, text_of(&ld->event), &p) < 0)
		return fail(ld, "%s (got '%s')", p.reason, show(&shown, text_of(&ld->event)));
	return 0;
}

static int load_group_sequence(struct loader *ld, const struct key *k)
{
	struct name_list list = {NULL, 0};
	struct problem p;
	int rc = -1;

	for (size_t i = 0;; i++) {
		set_key(ld, "%s[%zu]", k->name, i);
		if (next_event(ld) < 0)
			goto out;
		if (ld->event.type == YAML_SEQUENCE_END_EVENT)
			break;
		if (!is_text(&ld->event)) {
			fail(ld, "expected a group name, found %s", node_kind(&ld->event));
			goto out;
		}
		if (name_list_add(&list, k, text_of(&ld->event), ld->event.data.scalar.length, &p) <
		    0) {
			fail(ld, "%s", p.reason);
			goto out;
		}
	}
	store_names(k, ld->cfg, &list);
	rc = 0;
out:
	free_names(&list.names, &list.n);
	return rc;
}

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

static void free_sink_entries(struct sink_entries *entries)
{
	for (size_t i = 0; i < entries->n; i++) {
		free(entries->e[i].key);
		free(entries->e[i].value);
	}
	entries->n = 0;
}

static const struct sink_entry *find_sink_entry(const struct sink_entries *entries, const char *key)
{
	for (size_t i = 0; i < entries->n; i++)
		if (strcmp(entries->e[i].key, key) == 0)
			return &entries->e[i];
	return NULL;
}

/* Current event: a key inside sink i. Takes it and its value into entries. */
static int read_sink_entry(struct loader *ld, const struct key *k, size_t i,
			   struct sink_entries *entries)
{
	struct sink_entry *e = &entries->e[entries->n];
	const struct sink_entry *first;
	char list[REASON_MAX / 2];

	if (!is_text(&ld->event))
		return fail(ld, "expected a key, found %s", node_kind(&ld->event));
	set_key(ld, "%s[%zu].%s", k->name, i, text_of(&ld->event));
	if (!is_sink_key(text_of(&ld->event))) {
		list_sink_keys(NULL, list, sizeof(list));
		return fail(ld, "unknown key (expected one of: %s)", list);
	}
	first = find_sink_entry(entries, text_of(&ld->event));
	if (first)
		return fail(ld, "duplicate key (first given on line %zu)", first->key_line);
	e->key = strdup(text_of(&ld->event));
	e->key_line = event_line(ld);
	if (!e->key)
		return fail(ld, "out of memory");
	entries->n++;
	if (next_event(ld) < 0 || expect_text(ld) < 0)
		return -1;
	e->value = strdup(text_of(&ld->event));
	e->value_line = event_line(ld);
	return e->value ? 0 : fail(ld, "out of memory");
}

static int read_sink_entries(struct loader *ld, const struct key *k, size_t i,
			     struct sink_entries *entries)
{
	for (;;) {
		set_key(ld, "%s[%zu]", k->name, i);
		if (next_event(ld) < 0)
			return -1;
		if (ld->event.type == YAML_MAPPING_END_EVENT)
			return 0;
		if (read_sink_entry(ld, k, i, entries) < 0)
			return -1;
	}
}

static int find_entries_kind(struct loader *ld, const struct key *k, size_t i,
			     const struct sink_entries *entries, size_t start_line,
			     const struct sink_kind **kind)
{
	const struct sink_entry *type = find_sink_entry(entries, "type");
	struct shown shown;
	char kinds[64];

	list_sink_kinds(kinds, sizeof(kinds));
	if (!type) {
		set_key(ld, "%s[%zu]", k->name, i);
		return fail_line(ld, start_line, "missing type (%s)", kinds);
	}
	*kind = sink_kind_named(type->value);
	if (*kind)
		return 0;
	set_key(ld, "%s[%zu].type", k->name, i);
	return fail_line(ld, type->value_line, "unknown sink type '%s' (expected %s)",
			 show(&shown, type->value), kinds);
}

static int apply_sink_entries(struct loader *ld, const struct key *k, size_t i,
			      const struct sink_entries *entries, const struct sink_kind *kind,
			      struct pl_sink *sink)
{
	char list[REASON_MAX / 2];
	struct problem p;
	struct shown shown;

	sink->type = kind->type;
	if (apply_defaults(kind->keys, kind->n_keys, sink, &p) < 0)
		return fail(ld, "%s", p.reason);
	for (size_t j = 0; j < entries->n; j++) {
		const struct sink_entry *e = &entries->e[j];
		const struct key *sk = find_key_in(kind->keys, kind->n_keys, e->key);

		if (strcmp(e->key, "type") == 0)
			continue;
		set_key(ld, "%s[%zu].%s", k->name, i, e->key);
		if (!sk) {
			list_sink_keys(kind, list, sizeof(list));
			return fail_line(ld, e->key_line, "not a key of a %s sink (it takes: %s)",
					 kind->name, list);
		}
		if (apply_text(sk, sink, e->value, &p) < 0)
			return fail_line(ld, e->value_line, "%s (got '%s')", p.reason,
					 show(&shown, e->value));
	}
	return 0;
}

static int check_loaded_sink(struct loader *ld, const struct key *k, const struct pl_sink *sink,
			     size_t i, size_t start_line)
{
	struct problem p;

	if (check_sink(k, sink, i, &p) == 0)
		return 0;
	set_key(ld, "%s", p.key);
	return fail_line(ld, start_line, "%s", p.reason);
}

/* Current event: the start of the mapping of sink i. */
static int load_sink(struct loader *ld, const struct key *k, size_t i, struct pl_sink *sink)
{
	struct sink_entries entries = {.n = 0};
	const struct sink_kind *kind = NULL;
	size_t start_line = event_line(ld);
	int rc = -1;

	if (ld->event.type != YAML_MAPPING_START_EVENT)
		return fail(ld, "expected a mapping (type: file or syslog, and its keys), found %s",
			    node_kind(&ld->event));
	if (read_sink_entries(ld, k, i, &entries) < 0 ||
	    find_entries_kind(ld, k, i, &entries, start_line, &kind) < 0 ||
	    apply_sink_entries(ld, k, i, &entries, kind, sink) < 0 ||
	    check_loaded_sink(ld, k, sink, i, start_line) < 0)
		goto out;
	rc = 0;
out:
	free_sink_entries(&entries);
	return rc;
}

static int load_sink_sequence(struct loader *ld, const struct key *k)
{
	struct sink_list list = {NULL, 0};
	struct pl_sink *sink;
	int rc = -1;

	for (size_t i = 0;; i++) {
		set_key(ld, "%s[%zu]", k->name, i);
		if (next_event(ld) < 0)
			goto out;
		if (ld->event.type == YAML_SEQUENCE_END_EVENT)
			break;
		if (i >= k->max) {
			fail(ld, "more than %llu sinks", (unsigned long long)k->max);
			goto out;
		}
		sink = sink_list_add(&list);
		if (!sink) {
			fail(ld, "out of memory");
			goto out;
		}
		if (load_sink(ld, k, i, sink) < 0)
			goto out;
	}
	store_sinks(k, ld->cfg, &list);
	rc = 0;
out:
	free_sinks(&list.items, &list.n);
	return rc;
}

/* Current event: the start of the bundles mapping, NAME: /PATH pairs. */
static int load_bundle_mapping(struct loader *ld, const struct key *k)
{
	struct name_list list = {NULL, 0};
	struct problem p;
	char *name = NULL;
	int rc = -1;

	for (;;) {
		set_key(ld, "%s", k->name);
		if (next_event(ld) < 0)
			goto out;
		if (ld->event.type == YAML_MAPPING_END_EVENT)
			break;
		if (!is_text(&ld->event)) {
			fail(ld, "expected a bundle name, found %s", node_kind(&ld->event));
			goto out;
		}
		free(name);
		name = strdup(text_of(&ld->event));
		set_key(ld, "%s.%s", k->name, name ? name : "?");
		if (!name || next_event(ld) < 0 || expect_text(ld) < 0)
			goto out;
		if (bundle_list_add(&list, k, name, strlen(name), text_of(&ld->event), &p) < 0) {
			fail(ld, "%s", p.reason);
			goto out;
		}
	}
	store_names(k, ld->cfg, &list);
	rc = 0;
out:
	free(name);
	free_names(&list.names, &list.n);
	return rc;
}

/* Current event: the value of a list key; no value is the empty list. */
static int load_list(struct loader *ld, const struct key *k)
{
	if (is_null(&ld->event)) {
		free_field(k, ld->cfg);
		return 0;
	}
	/* "staff,admins" as on the plugstack line */
	if (k->type == T_GROUPS && ld->event.type == YAML_SCALAR_EVENT)
		return load_scalar(ld, k, ld->cfg);
	if (ld->event.type != YAML_SEQUENCE_START_EVENT)
		return fail(ld, "expected a list, found %s", node_kind(&ld->event));
	if (k->type == T_SINKS)
		return load_sink_sequence(ld, k);
	return load_group_sequence(ld, k);
}

static int load_value(struct loader *ld, const struct key *k)
{
	if (k->type == T_BUNDLES) {
		if (is_null(&ld->event)) {
			free_field(k, ld->cfg);
			return 0;
		}
		if (ld->event.type != YAML_MAPPING_START_EVENT)
			return fail(ld, "expected a mapping NAME: /PATH, found %s",
				    node_kind(&ld->event));
		return load_bundle_mapping(ld, k);
	}
	if (k->type == T_GROUPS || k->type == T_SINKS)
		return load_list(ld, k);
	return load_scalar(ld, k, ld->cfg);
}

static int load_mapping(struct loader *ld, const char *section);

/* Current event: the value of section name; no value is a section with every key commented
 * out, as in the example file. */
static int load_section(struct loader *ld, const char *name)
{
	if (is_null(&ld->event))
		return 0;
	if (ld->event.type != YAML_MAPPING_START_EVENT)
		return fail(ld, "expected a mapping of %s settings, found %s", name,
			    node_kind(&ld->event));
	return load_mapping(ld, name);
}

/* Current event: a key inside section ("" at the top). */
static int load_entry(struct loader *ld, const char *section)
{
	char name[KEY_MAX];
	const struct key *k;
	struct problem p;
	int sec;

	if (!is_text(&ld->event))
		return fail(ld, "expected a key, found %s", node_kind(&ld->event));
	/* A name too long for the buffer is cut; cut, it matches no key and is still unknown. */
	snprintf(name, sizeof(name), "%s%s%s", section, *section ? "." : "", text_of(&ld->event));
	set_key(ld, "%s", name);
	k = find_key(name);
	if (k) {
		if (mark_given(ld, &ld->key_line[k - config_keys]) < 0 || next_event(ld) < 0)
			return -1;
		return load_value(ld, k);
	}
	sec = find_section(name);
	if (sec >= 0) {
		if (mark_given(ld, &ld->section_line[sec]) < 0 || next_event(ld) < 0)
			return -1;
		return load_section(ld, name);
	}
	unknown_key(&p, name, false);
	return fail(ld, "%s", p.reason);
}

/* Current event: the start of the mapping of section. */
static int load_mapping(struct loader *ld, const char *section)
{
	for (;;) {
		set_key(ld, "%s", section);
		if (next_event(ld) < 0)
			return -1;
		if (ld->event.type == YAML_MAPPING_END_EVENT)
			return 0;
		if (load_entry(ld, section) < 0)
			return -1;
	}
}

/* Current event: the document's top node; no value (a file of comments, "---") is defaults. */
static int load_root(struct loader *ld)
{
	if (is_null(&ld->event))
		return 0;
	if (ld->event.type != YAML_MAPPING_START_EVENT)
		return fail(ld, "expected a mapping of settings (KEY: VALUE), found %s",
			    node_kind(&ld->event));
	return load_mapping(ld, "");
}

static int load_stream(struct loader *ld)
{
	/* stream start, then a document or the end of an empty stream */
	if (next_event(ld) < 0 || next_event(ld) < 0)
		return -1;
	if (ld->event.type == YAML_STREAM_END_EVENT)
		return 0;
	/* top node, ..., document end, then the stream's end or another document */
	if (next_event(ld) < 0 || load_root(ld) < 0 || next_event(ld) < 0 || next_event(ld) < 0)
		return -1;
	if (ld->event.type != YAML_STREAM_END_EVENT)
		return fail(ld, "a second YAML document (the file must hold one)");
	return 0;
}

static int load_text(struct pl_config *cfg, const char *path, const char *text, size_t len,
		     char *err, size_t errlen)
{
	struct loader ld = {.path = path, .text = text, .cfg = cfg, .err = err, .errlen = errlen};
	int rc;

	if (!yaml_parser_initialize(&ld.parser)) {
		file_error(err, errlen, path, strerror(ENOMEM));
		return -1;
	}
	yaml_parser_set_input_string(&ld.parser, (const unsigned char *)text, len);
	rc = load_stream(&ld);
	if (ld.have_event)
		yaml_event_delete(&ld.event);
	yaml_parser_delete(&ld.parser);
	return rc;
}

int pl_config_load_file(struct pl_config *cfg, const char *path, char *err, size_t errlen)
{
	char *text = NULL, *source = NULL;
	size_t len = 0;
	int rc = -1;

	if (!path || !*path) {
		snprintf(err, errlen, "no configuration file named");
		return -1;
	}
	if (read_config_file(path, &text, &len, err, errlen) < 0)
		goto out;
	if (!text) {
		rc = 0; /* no file: cfg stays as it is */
		goto out;
	}
	source = strdup(path);
	if (!source) {
		file_error(err, errlen, path, strerror(ENOMEM));
		goto out;
	}
	if (load_text(cfg, path, text, len, err, errlen) < 0)
		goto out;
	free(cfg->source);
	cfg->source = source;
	source = NULL;
	rc = 0;
out:
	free(source);
	free(text);
	return rc;
}
