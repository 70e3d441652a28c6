/* The YAML reader's sinks: the key: value pairs of one sink, held until its type is known, then
 * applied and checked as that kind's. */
#include "config_internal.h"

#include <stdlib.h>
#include <string.h>

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

	if (!cfg_is_text(&ld->event))
		return fail(ld, "expected a key, found %s", cfg_node_kind(&ld->event));
	cfg_set_key(ld, "%s[%zu].%s", k->name, i, cfg_text_of(&ld->event));
	if (!cfg_is_sink_key(cfg_text_of(&ld->event))) {
		cfg_list_sink_keys(NULL, list, sizeof(list));
		return fail(ld, "unknown key (expected one of: %s)", list);
	}
	first = find_sink_entry(entries, cfg_text_of(&ld->event));
	if (first)
		return fail(ld, "duplicate key (first given on line %zu)", first->key_line);
	e->key = strdup(cfg_text_of(&ld->event));
	e->key_line = cfg_event_line(ld);
	if (!e->key)
		return fail(ld, "out of memory");
	entries->n++;
	if (cfg_next_event(ld) < 0 || cfg_expect_text(ld) < 0)
		return -1;
	e->value = strdup(cfg_text_of(&ld->event));
	e->value_line = cfg_event_line(ld);
	return e->value ? 0 : fail(ld, "out of memory");
}

static int read_sink_entries(struct loader *ld, const struct key *k, size_t i,
			     struct sink_entries *entries)
{
	for (;;) {
		cfg_set_key(ld, "%s[%zu]", k->name, i);
		if (cfg_next_event(ld) < 0)
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

	cfg_list_sink_kinds(kinds, sizeof(kinds));
	if (!type) {
		cfg_set_key(ld, "%s[%zu]", k->name, i);
		return cfg_fail_line(ld, start_line, "missing type (%s)", kinds);
	}
	*kind = cfg_sink_kind_named(type->value);
	if (*kind)
		return 0;
	cfg_set_key(ld, "%s[%zu].type", k->name, i);
	return cfg_fail_line(ld, type->value_line, "unknown sink type '%s' (expected %s)",
			     cfg_show(&shown, type->value), kinds);
}

static int apply_sink_entries(struct loader *ld, const struct key *k, size_t i,
			      const struct sink_entries *entries, const struct sink_kind *kind,
			      struct pl_sink *sink)
{
	char list[REASON_MAX / 2];
	struct problem p;
	struct shown shown;

	sink->type = kind->type;
	if (cfg_apply_defaults(kind->keys, kind->n_keys, sink, &p) < 0)
		return fail(ld, "%s", p.reason);
	for (size_t j = 0; j < entries->n; j++) {
		const struct sink_entry *e = &entries->e[j];
		const struct key *sk = cfg_find_key_in(kind->keys, kind->n_keys, e->key);

		if (strcmp(e->key, "type") == 0)
			continue;
		cfg_set_key(ld, "%s[%zu].%s", k->name, i, e->key);
		if (!sk) {
			cfg_list_sink_keys(kind, list, sizeof(list));
			return cfg_fail_line(ld, e->key_line,
					     "not a key of a %s sink (it takes: %s)", kind->name,
					     list);
		}
		if (cfg_apply_text(sk, sink, e->value, &p) < 0)
			return cfg_fail_line(ld, e->value_line, "%s (got '%s')", p.reason,
					     cfg_show(&shown, e->value));
	}
	return 0;
}

static int check_loaded_sink(struct loader *ld, const struct key *k, const struct pl_sink *sink,
			     size_t i, size_t start_line)
{
	struct problem p;

	if (cfg_check_sink(k, sink, i, &p) == 0)
		return 0;
	cfg_set_key(ld, "%s", p.key);
	return cfg_fail_line(ld, start_line, "%s", p.reason);
}

/* Current event: the start of the mapping of sink i. */
static int load_sink(struct loader *ld, const struct key *k, size_t i, struct pl_sink *sink)
{
	struct sink_entries entries = {.n = 0};
	const struct sink_kind *kind = NULL;
	size_t start_line = cfg_event_line(ld);
	int rc = -1;

	if (ld->event.type != YAML_MAPPING_START_EVENT)
		return fail(ld, "expected a mapping (type: file or syslog, and its keys), found %s",
			    cfg_node_kind(&ld->event));
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

int cfg_load_sink_sequence(struct loader *ld, const struct key *k)
{
	struct sink_list list = {NULL, 0};
	struct pl_sink *sink;
	int rc = -1;

	for (size_t i = 0;; i++) {
		cfg_set_key(ld, "%s[%zu]", k->name, i);
		if (cfg_next_event(ld) < 0)
			goto out;
		if (ld->event.type == YAML_SEQUENCE_END_EVENT)
			break;
		if (i >= k->max) {
			fail(ld, "more than %llu sinks", (unsigned long long)k->max);
			goto out;
		}
		sink = cfg_sink_list_add(&list);
		if (!sink) {
			fail(ld, "out of memory");
			goto out;
		}
		if (load_sink(ld, k, i, sink) < 0)
			goto out;
	}
	cfg_store_sinks(k, ld->cfg, &list);
	rc = 0;
out:
	cfg_free_sinks(&list.items, &list.n);
	return rc;
}
