/* The YAML reader: a walker over libyaml's events that descends only where the schema has a
 * section or a list, and says file, line and key for every mistake. Sinks: config_yaml_sink.c. */
#include "config_internal.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A value for a scalar key k, stored in base (the configuration or a sink). */
static int load_scalar(struct loader *ld, const struct key *k, void *base)
{
	struct problem p;
	struct shown shown;

	if (cfg_expect_text(ld) < 0)
		return -1;
	if (cfg_apply_text(k, base, cfg_text_of(&ld->event), &p) < 0)
		return fail(ld, "%s (got '%s')", p.reason,
			    cfg_show(&shown, cfg_text_of(&ld->event)));
	return 0;
}

static int load_group_sequence(struct loader *ld, const struct key *k)
{
	struct name_list list = {NULL, 0};
	struct problem p;
	int rc = -1;

	for (size_t i = 0;; i++) {
		cfg_set_key(ld, "%s[%zu]", k->name, i);
		if (cfg_next_event(ld) < 0)
			goto out;
		if (ld->event.type == YAML_SEQUENCE_END_EVENT)
			break;
		if (!cfg_is_text(&ld->event)) {
			fail(ld, "expected a group name, found %s", cfg_node_kind(&ld->event));
			goto out;
		}
		if (cfg_name_list_add(&list, k, cfg_text_of(&ld->event),
				      ld->event.data.scalar.length, &p) < 0) {
			fail(ld, "%s", p.reason);
			goto out;
		}
	}
	cfg_store_names(k, ld->cfg, &list);
	rc = 0;
out:
	cfg_free_names(&list.names, &list.n);
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
		cfg_set_key(ld, "%s", k->name);
		if (cfg_next_event(ld) < 0)
			goto out;
		if (ld->event.type == YAML_MAPPING_END_EVENT)
			break;
		if (!cfg_is_text(&ld->event)) {
			fail(ld, "expected a bundle name, found %s", cfg_node_kind(&ld->event));
			goto out;
		}
		free(name);
		name = strdup(cfg_text_of(&ld->event));
		cfg_set_key(ld, "%s.%s", k->name, name ? name : "?");
		if (!name || cfg_next_event(ld) < 0 || cfg_expect_text(ld) < 0)
			goto out;
		if (cfg_bundle_list_add(&list, k, name, strlen(name), cfg_text_of(&ld->event), &p) <
		    0) {
			fail(ld, "%s", p.reason);
			goto out;
		}
	}
	cfg_store_names(k, ld->cfg, &list);
	rc = 0;
out:
	free(name);
	cfg_free_names(&list.names, &list.n);
	return rc;
}

/* Current event: the value of a list key; no value is the empty list. */
static int load_list(struct loader *ld, const struct key *k)
{
	if (cfg_is_null(&ld->event)) {
		cfg_free_field(k, ld->cfg);
		return 0;
	}
	/* "staff,admins" as on the plugstack line */
	if (k->type == T_GROUPS && ld->event.type == YAML_SCALAR_EVENT)
		return load_scalar(ld, k, ld->cfg);
	if (ld->event.type != YAML_SEQUENCE_START_EVENT)
		return fail(ld, "expected a list, found %s", cfg_node_kind(&ld->event));
	if (k->type == T_SINKS)
		return cfg_load_sink_sequence(ld, k);
	return load_group_sequence(ld, k);
}

static int load_value(struct loader *ld, const struct key *k)
{
	if (k->type == T_BUNDLES) {
		if (cfg_is_null(&ld->event)) {
			cfg_free_field(k, ld->cfg);
			return 0;
		}
		if (ld->event.type != YAML_MAPPING_START_EVENT)
			return fail(ld, "expected a mapping NAME: /PATH, found %s",
				    cfg_node_kind(&ld->event));
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
	if (cfg_is_null(&ld->event))
		return 0;
	if (ld->event.type != YAML_MAPPING_START_EVENT)
		return fail(ld, "expected a mapping of %s settings, found %s", name,
			    cfg_node_kind(&ld->event));
	return load_mapping(ld, name);
}

/* Current event: a key inside section ("" at the top). */
static int load_entry(struct loader *ld, const char *section)
{
	char name[KEY_MAX];
	const struct key *k;
	struct problem p;
	int sec;

	if (!cfg_is_text(&ld->event))
		return fail(ld, "expected a key, found %s", cfg_node_kind(&ld->event));
	/* A name too long for the buffer is cut; cut, it matches no key and is still unknown. */
	snprintf(name, sizeof(name), "%s%s%s", section, *section ? "." : "",
		 cfg_text_of(&ld->event));
	cfg_set_key(ld, "%s", name);
	k = cfg_find_key(name);
	if (k) {
		if (cfg_mark_given(ld, &ld->key_line[k - config_keys]) < 0 ||
		    cfg_next_event(ld) < 0)
			return -1;
		return load_value(ld, k);
	}
	sec = cfg_find_section(name);
	if (sec >= 0) {
		if (cfg_mark_given(ld, &ld->section_line[sec]) < 0 || cfg_next_event(ld) < 0)
			return -1;
		return load_section(ld, name);
	}
	cfg_unknown_key(&p, name, false);
	return fail(ld, "%s", p.reason);
}

/* Current event: the start of the mapping of section. */
static int load_mapping(struct loader *ld, const char *section)
{
	for (;;) {
		cfg_set_key(ld, "%s", section);
		if (cfg_next_event(ld) < 0)
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
	if (cfg_is_null(&ld->event))
		return 0;
	if (ld->event.type != YAML_MAPPING_START_EVENT)
		return fail(ld, "expected a mapping of settings (KEY: VALUE), found %s",
			    cfg_node_kind(&ld->event));
	return load_mapping(ld, "");
}

static int load_stream(struct loader *ld)
{
	/* stream start, then a document or the end of an empty stream */
	if (cfg_next_event(ld) < 0 || cfg_next_event(ld) < 0)
		return -1;
	if (ld->event.type == YAML_STREAM_END_EVENT)
		return 0;
	/* top node, ..., document end, then the stream's end or another document */
	if (cfg_next_event(ld) < 0 || load_root(ld) < 0 || cfg_next_event(ld) < 0 ||
	    cfg_next_event(ld) < 0)
		return -1;
	if (ld->event.type != YAML_STREAM_END_EVENT)
		return fail(ld, "a second YAML document (the file must hold one)");
	return 0;
}

int cfg_load_text(struct pl_config *cfg, const char *path, const char *text, size_t len, char *err,
		  size_t errlen)
{
	struct loader ld = {.path = path, .text = text, .cfg = cfg, .err = err, .errlen = errlen};
	int rc;

	if (!yaml_parser_initialize(&ld.parser)) {
		cfg_file_error(err, errlen, path, strerror(ENOMEM));
		return -1;
	}
	yaml_parser_set_input_string(&ld.parser, (const unsigned char *)text, len);
	rc = load_stream(&ld);
	if (ld.have_event)
		yaml_event_delete(&ld.event);
	yaml_parser_delete(&ld.parser);
	return rc;
}
