/* A value applied to its field: the text of the file or of a plugstack argument parsed by the
 * key's type, and the lists (names, bundles, sinks) that hold them. */
#include "config_internal.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "units.h"

void cfg_free_names(char ***names, size_t *n)
{
	for (size_t i = 0; i < *n; i++)
		free((*names)[i]);
	free(*names);
	*names = NULL;
	*n = 0;
}

int cfg_name_list_add(struct name_list *list, const struct key *k, const char *name, size_t len,
		      struct problem *p)
{
	const char *problem = cfg_group_name_problem(name, len);
	char **grown;

	if (problem)
		return cfg_explain(p, "%s (expected e.g. staff,admins)", problem);
	if (list->n >= k->max)
		return cfg_explain(p, "more than %llu groups", (unsigned long long)k->max);
	grown = realloc(list->names, (list->n + 1) * sizeof(*grown));
	if (!grown)
		return cfg_explain(p, "out of memory");
	list->names = grown;
	list->names[list->n] = strndup(name, len);
	if (!list->names[list->n])
		return cfg_explain(p, "out of memory");
	list->n++;
	return 0;
}

/* name and path (given separately: YAML, or split at '=') as "NAME=/PATH". */
int cfg_bundle_list_add(struct name_list *list, const struct key *k, const char *name, size_t len,
			const char *path, struct problem *p)
{
	const char *problem = len ? cfg_bundle_name_problem(name, len) : "empty bundle name";
	char *folded;
	char **grown;

	if (problem)
		return cfg_explain(p, "%s", problem);
	folded = cfg_fold_slashes(path);
	problem = folded ? cfg_path_problem(folded) : "out of memory";
	if (problem) {
		free(folded);
		return cfg_explain(p, "bundle '%.*s': %s", (int)len, name, problem);
	}
	for (size_t i = 0; i < list->n; i++)
		if (strncmp(list->names[i], name, len) == 0 && list->names[i][len] == '=') {
			free(folded);
			return cfg_explain(p, "bundle '%.*s' named twice", (int)len, name);
		}
	grown = list->n < k->max ? realloc(list->names, (list->n + 1) * sizeof(*grown)) : NULL;
	if (!grown || asprintf(&grown[list->n], "%.*s=%s", (int)len, name, folded) < 0) {
		if (grown)
			list->names = grown;
		free(folded);
		return cfg_explain(p, list->n < k->max ? "out of memory" : "more than %llu bundles",
				   (unsigned long long)k->max);
	}
	free(folded);
	list->names = grown;
	list->n++;
	return 0;
}

/* Moves list into the field of k, replacing what was there. */
void cfg_store_names(const struct key *k, void *base, struct name_list *list)
{
	char ***names = cfg_field(base, k->offset);
	size_t *n = cfg_field(base, k->offset2);

	cfg_free_names(names, n);
	*names = list->names;
	*n = list->n;
	list->names = NULL;
	list->n = 0;
}

static void free_sink(struct pl_sink *sink)
{
	for (size_t i = 0; i < ARRAY_SIZE(sink_kinds); i++)
		cfg_free_fields(sink_kinds[i].keys, sink_kinds[i].n_keys, sink);
}

void cfg_free_sinks(struct pl_sink **sinks, size_t *n)
{
	for (size_t i = 0; i < *n; i++)
		free_sink(&(*sinks)[i]);
	free(*sinks);
	*sinks = NULL;
	*n = 0;
}

/* One more, zeroed, sink at the end of list. */
struct pl_sink *cfg_sink_list_add(struct sink_list *list)
{
	struct pl_sink *grown = realloc(list->items, (list->n + 1) * sizeof(*grown));

	if (!grown)
		return NULL;
	list->items = grown;
	memset(&grown[list->n], 0, sizeof(grown[list->n]));
	return &grown[list->n++];
}

void cfg_store_sinks(const struct key *k, void *base, struct sink_list *list)
{
	struct pl_sink **sinks = cfg_field(base, k->offset);
	size_t *n = cfg_field(base, k->offset2);

	cfg_free_sinks(sinks, n);
	*sinks = list->items;
	*n = list->n;
	list->items = NULL;
	list->n = 0;
}

void cfg_free_field(const struct key *k, void *base)
{
	switch (k->type) {
	case T_PATH:
	case T_FACILITY:
	case T_ADDRESS:
		free(*(char **)cfg_field(base, k->offset));
		*(char **)cfg_field(base, k->offset) = NULL;
		break;
	case T_GROUPS:
	case T_BUNDLES:
		cfg_free_names(cfg_field(base, k->offset), cfg_field(base, k->offset2));
		break;
	case T_NAME:
		free(*(char **)cfg_field(base, k->offset));
		*(char **)cfg_field(base, k->offset) = NULL;
		break;
	case T_SINKS:
		cfg_free_sinks(cfg_field(base, k->offset), cfg_field(base, k->offset2));
		break;
	default:
		break;
	}
}

void cfg_free_fields(const struct key *keys, size_t n, void *base)
{
	for (size_t i = 0; i < n; i++)
		cfg_free_field(&keys[i], base);
}

/* ------------------------------------------------------------------ applying a value */

/* Each apply_* parses text and stores it in base only when it is valid. */

static int apply_bool(const struct key *k, void *base, const char *text, struct problem *p)
{
	bool v;

	if (pl_parse_bool(text, &v) < 0)
		return cfg_describe(k, p);
	*(bool *)cfg_field(base, k->offset) = v;
	return 0;
}

static int apply_auto_bool(const struct key *k, void *base, const char *text, struct problem *p)
{
	bool v;

	if (strcmp(text, "auto") == 0) {
		*(enum pl_auto_bool *)cfg_field(base, k->offset) = PL_AUTO;
		return 0;
	}
	if (pl_parse_bool(text, &v) < 0)
		return cfg_describe(k, p);
	*(enum pl_auto_bool *)cfg_field(base, k->offset) = v ? PL_YES : PL_NO;
	return 0;
}

static int apply_uint(const struct key *k, void *base, const char *text, struct problem *p)
{
	unsigned v;

	if (pl_parse_uint(text, (unsigned)k->min, (unsigned)k->max, &v) < 0)
		return cfg_describe(k, p);
	*(unsigned *)cfg_field(base, k->offset) = v;
	return 0;
}

static int apply_duration(const struct key *k, void *base, const char *text, struct problem *p)
{
	unsigned v;

	if (pl_parse_duration(text, &v) < 0 || v < k->min || v > k->max)
		return cfg_describe(k, p);
	*(unsigned *)cfg_field(base, k->offset) = v;
	return 0;
}

static int apply_size(const struct key *k, void *base, const char *text, struct problem *p)
{
	uint64_t v;

	if (pl_parse_size(text, &v) < 0 || v < k->min || v > k->max)
		return cfg_describe(k, p);
	if (k->type == T_SIZE64)
		*(uint64_t *)cfg_field(base, k->offset) = v;
	else
		*(size_t *)cfg_field(base, k->offset) = (size_t)v;
	return 0;
}

static int apply_ratio(const struct key *k, void *base, const char *text, struct problem *p)
{
	double v;

	if (pl_parse_ratio(text, &v) < 0)
		return cfg_describe(k, p);
	*(double *)cfg_field(base, k->offset) = v;
	return 0;
}

static int apply_ports(const struct key *k, void *base, const char *text, struct problem *p)
{
	unsigned lo, hi;

	if (pl_parse_port_range(text, &lo, &hi) < 0 || lo < k->min || hi > k->max)
		return cfg_describe(k, p);
	*(unsigned *)cfg_field(base, k->offset) = lo;
	*(unsigned *)cfg_field(base, k->offset2) = hi;
	return 0;
}

static int apply_string(const struct key *k, void *base, const char *text, struct problem *p)
{
	char **slot = cfg_field(base, k->offset);
	char *copy = k->type == T_PATH ? cfg_fold_slashes(text) : strdup(text);
	const char *problem;

	if (!copy)
		return cfg_explain(p, "out of memory");
	problem = cfg_string_problem(k->type, copy);
	if (problem) {
		free(copy);
		return cfg_explain_string(k, problem, p);
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

		if (cfg_name_list_add(&list, k, s, (size_t)(comma - s), p) < 0)
			goto out;
		if (!*comma)
			break;
		s = comma + 1;
	}
	cfg_store_names(k, base, &list);
	rc = 0;
out:
	cfg_free_names(&list.names, &list.n);
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
			cfg_describe(k, p);
			goto out;
		}
		if (!path || cfg_bundle_list_add(&list, k, s, (size_t)(eq - s), path, p) < 0) {
			free(path);
			goto out;
		}
		free(path);
		s = *comma ? comma + 1 : comma;
	}
	cfg_store_names(k, base, &list);
	rc = 0;
out:
	cfg_free_names(&list.names, &list.n);
	return rc;
}

/* text as the value of k, stored in base (a struct pl_config or a struct pl_sink). */
int cfg_apply_text(const struct key *k, void *base, const char *text, struct problem *p)
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
	return cfg_explain(p, "sinks can only be configured in the YAML file");
}

int cfg_apply_defaults(const struct key *keys, size_t n, void *base, struct problem *p)
{
	for (size_t i = 0; i < n; i++)
		if (keys[i].def && cfg_apply_text(&keys[i], base, keys[i].def, p) < 0)
			return -1;
	return 0;
}
