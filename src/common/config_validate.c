/* Validation: what a string value may hold (paths, names, addresses, facilities), and the
 * checks of the stored configuration as a whole (pl_config_validate). */
#include "config_internal.h"

#include <ctype.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "units.h"

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
const char *cfg_path_problem(const char *path)
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
char *cfg_fold_slashes(const char *path)
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
const char *cfg_group_name_problem(const char *name, size_t len)
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
const char *cfg_bundle_name_problem(const char *name, size_t len)
{
	if (len > PL_BUNDLE_NAME_MAX)
		return "bundle name longer than 64 bytes";
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)name[i]) && !strchr("._-", name[i]))
			return "bundle name with a character other than letters, digits, '.', '_', "
			       "'-'";
	return NULL;
}

const char *cfg_string_problem(enum value_type type, const char *s)
{
	switch (type) {
	case T_NAME:
		return cfg_bundle_name_problem(s, strlen(s));
	case T_PATH:
		return cfg_path_problem(s);
	case T_FACILITY:
		return facility_problem(s);
	case T_ADDRESS:
		return address_problem(s);
	default:
		return NULL;
	}
}

/* The problem with a string and, where it has a fixed form, that form. */
int cfg_explain_string(const struct key *k, const char *problem, struct problem *p)
{
	struct problem form;

	if (k->type == T_PATH || k->type == T_NAME)
		return cfg_explain(p, "%s", problem);
	cfg_describe(k, &form);
	return cfg_explain(p, "%s (%.*s)", problem, REASON_MAX / 2, form.reason);
}

/* ------------------------------------------------------------------ checking stored values */

static int check_keys(const struct key *keys, size_t n, const void *base, const char *prefix,
		      struct problem *p);

static int check_string(const struct key *k, const void *base, struct problem *p)
{
	const char *s = *(char *const *)cfg_const_field(base, k->offset);
	const char *problem;

	if (!s)
		return cfg_explain(p, "missing");
	problem = cfg_string_problem(k->type, s);
	return problem ? cfg_explain_string(k, problem, p) : 0;
}

static int check_names(const struct key *k, const void *base, struct problem *p)
{
	char *const *names = *(char **const *)cfg_const_field(base, k->offset);
	size_t n = *(const size_t *)cfg_const_field(base, k->offset2);

	if (n > k->max)
		return cfg_explain(p, "more than %llu groups", (unsigned long long)k->max);
	for (size_t i = 0; i < n; i++) {
		const char *problem = names[i] ? cfg_group_name_problem(names[i], strlen(names[i]))
					       : "missing group name";

		if (problem)
			return cfg_explain(p, "%s", problem);
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
	return cfg_explain(p, "at most %d bytes over UDP (one datagram)", UDP_PAYLOAD_MAX);
}

int cfg_check_sink(const struct key *k, const struct pl_sink *sink, size_t i, struct problem *p)
{
	const struct sink_kind *kind = cfg_sink_kind_of(sink->type);
	char prefix[KEY_MAX / 2]; /* "monitor.sinks[15]." */

	snprintf(prefix, sizeof(prefix), "%s[%zu].", k->name, i);
	if (!kind) {
		snprintf(p->key, sizeof(p->key), "%stype", prefix);
		return cfg_explain(p, "unknown sink type %d", (int)sink->type);
	}
	if (check_keys(kind->keys, kind->n_keys, sink, prefix, p) < 0)
		return -1;
	return check_sink_size(sink, prefix, p);
}

static int check_sinks(const struct key *k, const void *base, struct problem *p)
{
	const struct pl_sink *sinks = *(struct pl_sink *const *)cfg_const_field(base, k->offset);
	size_t n = *(const size_t *)cfg_const_field(base, k->offset2);

	if (n > k->max)
		return cfg_explain(p, "more than %llu sinks", (unsigned long long)k->max);
	for (size_t i = 0; i < n; i++)
		if (cfg_check_sink(k, &sinks[i], i, p) < 0)
			return -1;
	return 0;
}

static bool in_bounds(const struct key *k, uint64_t v)
{
	return v >= k->min && v <= k->max;
}

static bool ports_in_bounds(const struct key *k, const void *base)
{
	unsigned lo = *(const unsigned *)cfg_const_field(base, k->offset);
	unsigned hi = *(const unsigned *)cfg_const_field(base, k->offset2);

	return in_bounds(k, lo) && in_bounds(k, hi) && lo <= hi;
}

static int check_value(const struct key *k, const void *base, struct problem *p)
{
	const void *v = cfg_const_field(base, k->offset);
	double ratio;

	switch (k->type) {
	case T_BOOL:
	case T_AUTO_BOOL:
		return 0;
	case T_UINT:
	case T_DURATION:
		return in_bounds(k, *(const unsigned *)v) ? 0 : cfg_describe(k, p);
	case T_SIZE64:
		return in_bounds(k, *(const uint64_t *)v) ? 0 : cfg_describe(k, p);
	case T_SIZE:
		return in_bounds(k, *(const size_t *)v) ? 0 : cfg_describe(k, p);
	case T_RATIO:
		ratio = *(const double *)v;
		return (ratio >= 0.0 && ratio <= 1.0) ? 0 : cfg_describe(k, p); /* NaN fails too */
	case T_PORTS:
		return ports_in_bounds(k, base) ? 0 : cfg_describe(k, p);
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
	return cfg_explain(
	    p, "must be apart from stage.dir (%s): neither the same, inside nor around it",
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
	return cfg_explain(p, "'%s' is not one of the site's bundles (bundles:)", name);
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
