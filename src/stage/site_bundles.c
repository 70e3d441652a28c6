#include "site_bundles.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool pl_pybundle_is_no(const char *value)
{
	return value && strcmp(value, "no") == 0;
}

static void list_names(const struct pl_config *cfg, char *out, size_t len)
{
	size_t used = 0;

	out[0] = '\0';
	for (size_t i = 0; i < cfg->n_bundles && used < len; i++) {
		int n = snprintf(out + used, len - used, "%s@%.*s", i ? ", " : "",
				 (int)strcspn(cfg->bundles[i], "="), cfg->bundles[i]);

		used += n > 0 ? (size_t)n : 0;
	}
}

static int unknown(const struct pl_config *cfg, const char *name, size_t len, char *err,
		   size_t errlen)
{
	char names[256];

	list_names(cfg, names, sizeof(names));
	if (names[0])
		snprintf(err, errlen, "--pybundle: @%.*s: not one of the site's bundles (%s)",
			 (int)len, name, names);
	else
		snprintf(err, errlen, "--pybundle: @%.*s: the site names no bundles", (int)len,
			 name);
	return -1;
}

/* Appends the element [s, s+len) to out (which has room: see the caller). */
static int append_element(const struct pl_config *cfg, char *out, const char *s, size_t len,
			  char *err, size_t errlen)
{
	char name[PL_BUNDLE_NAME_MAX + 1];
	const char *path;

	if (*out)
		strcat(out, ",");
	if (len == 0 || s[0] != '@') {
		strncat(out, s, len);
		return 0;
	}
	if (len - 1 > PL_BUNDLE_NAME_MAX)
		return unknown(cfg, s + 1, len - 1, err, errlen);
	memcpy(name, s + 1, len - 1);
	name[len - 1] = '\0';
	path = pl_config_bundle(cfg, name);
	if (!path)
		return unknown(cfg, name, len - 1, err, errlen);
	strcat(out, path);
	return 0;
}

static size_t longest_path(const struct pl_config *cfg)
{
	size_t max = 0;

	for (size_t i = 0; i < cfg->n_bundles; i++)
		if (strlen(cfg->bundles[i]) > max)
			max = strlen(cfg->bundles[i]);
	return max;
}

int pl_site_bundles_expand(const struct pl_config *cfg, const char *raw, char **out, char *err,
			   size_t errlen)
{
	size_t elements = 1;
	const char *s = raw;

	for (const char *c = raw; *c; c++)
		elements += *c == ',';
	*out = calloc(1, strlen(raw) + elements * (longest_path(cfg) + 1) + 1);
	if (!*out) {
		snprintf(err, errlen, "--pybundle: out of memory");
		return -1;
	}
	for (;;) {
		size_t len = strcspn(s, ",");

		if (append_element(cfg, *out, s, len, err, errlen) < 0) {
			free(*out);
			*out = NULL;
			return -1;
		}
		if (!s[len])
			return 0;
		s += len + 1;
	}
}

/* python, python3, python3.11: the interpreter named as the step's command. */
static bool runs_python(const char *argv0)
{
	const char *base;

	if (!argv0)
		return false;
	base = strrchr(argv0, '/');
	base = base ? base + 1 : argv0;
	if (strncmp(base, "python", 6) != 0)
		return false;
	for (base += 6; *base; base++)
		if (!isdigit((unsigned char)*base) && *base != '.')
			return false;
	return true;
}

const char *pl_site_default_bundle(const struct pl_config *cfg, unsigned nnodes, const char *argv0)
{
	const char *name = cfg->policy_default_bundle;

	if (!name || !*name || nnodes < cfg->policy_min_nodes || !runs_python(argv0))
		return NULL;
	return pl_config_bundle(cfg, name);
}
