/* The YAML reader's events: pulled one at a time from libyaml, what each is and where it
 * stands (line, key), what the schema cannot mean (anchors, aliases, tags) refused, and the
 * message for a mistake. The walker over them is config_yaml.c. */
#include "config_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
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

bool cfg_is_null(const yaml_event_t *ev)
{
	const char *s = (const char *)ev->data.scalar.value;

	return ev->type == YAML_SCALAR_EVENT && ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
	       (s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
		strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0);
}

bool cfg_is_text(const yaml_event_t *ev)
{
	return ev->type == YAML_SCALAR_EVENT && !cfg_is_null(ev);
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
		return cfg_is_null(ev) ? "no value" : "a single value";
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

int cfg_mark_given(struct loader *ld, size_t *first_line)
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
	if (cfg_is_null(&ld->event))
		return fail(ld, "no value (leave the key out to keep the default)");
	return 0;
}
