/* The YAML reader: a walker over libyaml's events that descends only where the schema has a
 * section or a list, and says file, line and key for every mistake. Sinks: config_yaml_sink.c. */
#include "config_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t cfg_event_line(const struct loader *ld)
{
	return ld->event.start_mark.line + 1;
}

PRINTF_LIKE(2, 3) void cfg_set_key(struct loader *ld, const char *fmt, ...)
{
	struct shown shown;
	char raw[KEY_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	snprintf(ld->key, sizeof(ld->key), "%s", cfg_show(&shown, raw));
}

PRINTF_LIKE(3, 4) int cfg_fail_line(struct loader *ld, size_t line, const char *fmt, ...)
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
		cfg_file_error(ld->err, ld->errlen, ld->path, strerror(ENOMEM));
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

bool cfg_is_text(const yaml_event_t *ev)
{
	return ev->type == YAML_SCALAR_EVENT && !is_null(ev);
}

const char *cfg_text_of(const yaml_event_t *ev)
{
	return (const char *)ev->data.scalar.value;
}

const char *cfg_node_kind(const yaml_event_t *ev)
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

int cfg_next_event(struct loader *ld)
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
	*first_line = cfg_event_line(ld);
	return 0;
}

int cfg_expect_text(struct loader *ld)
{
	if (ld->event.type != YAML_SCALAR_EVENT)
		return fail(ld, "expected a single value, found %s", cfg_node_kind(&ld->event));
	if (is_null(&ld->event))
		return fail(ld, "no value (leave the key out to keep the default)");
	return 0;
}

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
	if (is_null(&ld->event)) {
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
		if (is_null(&ld->event)) {
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
	if (is_null(&ld->event))
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
		if (mark_given(ld, &ld->key_line[k - config_keys]) < 0 || cfg_next_event(ld) < 0)
			return -1;
		return load_value(ld, k);
	}
	sec = cfg_find_section(name);
	if (sec >= 0) {
		if (mark_given(ld, &ld->section_line[sec]) < 0 || cfg_next_event(ld) < 0)
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
	if (is_null(&ld->event))
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
