/* The record's text and JSON: a growing buffer, strings escaped from whatever user processes
 * wrote (invalid UTF-8 replaced), and the fields of an object. */
#include "monitor_record_internal.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------ text */

void pl_text_free(struct pl_text *t)
{
	free(t->buf);
	memset(t, 0, sizeof(*t));
}

static bool text_reserve(struct pl_text *t, size_t more)
{
	size_t cap = t->cap ? t->cap : 1024;
	char *grown;

	if (t->failed)
		return false;
	if (t->len + more + 1 <= t->cap)
		return true;
	while (cap < t->len + more + 1)
		cap *= 2;
	grown = realloc(t->buf, cap);
	if (!grown) {
		t->failed = true;
		return false;
	}
	t->buf = grown;
	t->cap = cap;
	return true;
}

void pl_text_add(struct pl_text *t, const char *s, size_t len)
{
	if (!text_reserve(t, len))
		return;
	memcpy(t->buf + t->len, s, len);
	t->len += len;
	t->buf[t->len] = '\0';
}

void pl_text_addf(struct pl_text *t, const char *fmt, ...)
{
	char small[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0) {
		t->failed = true;
		return;
	}
	if ((size_t)n < sizeof(small)) {
		pl_text_add(t, small, (size_t)n);
		return;
	}
	if (!text_reserve(t, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(t->buf + t->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	t->len += (size_t)n;
}

void mr_add_str(struct pl_text *t, const char *s)
{
	pl_text_add(t, s, strlen(s));
}

/* ------------------------------------------------------------------ JSON strings */

/* The code point of the UTF-8 sequence at s, its length in *n; -1 (and *n = 1) when
 * the bytes are not UTF-8 (overlong, surrogate, past U+10FFFF, cut short). */
static long decode_utf8(const unsigned char *s, size_t len, size_t *n)
{
	unsigned long cp, min;
	size_t need;

	*n = 1;
	if (s[0] < 0x80)
		return s[0];
	if ((s[0] & 0xe0) == 0xc0)
		need = 2, cp = s[0] & 0x1fUL, min = 0x80;
	else if ((s[0] & 0xf0) == 0xe0)
		need = 3, cp = s[0] & 0x0fUL, min = 0x800;
	else if ((s[0] & 0xf8) == 0xf0)
		need = 4, cp = s[0] & 0x07UL, min = 0x10000;
	else
		return -1;
	if (need > len)
		return -1;
	for (size_t i = 1; i < need; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return -1;
		cp = (cp << 6) | (s[i] & 0x3fUL);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return -1;
	*n = need;
	return (long)cp;
}

static void add_code_point(struct pl_text *t, unsigned long cp)
{
	if (cp >= 0x10000) {
		cp -= 0x10000;
		pl_text_addf(t, "\\u%04lx\\u%04lx", 0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
		return;
	}
	pl_text_addf(t, "\\u%04lx", cp);
}

static void add_ascii_char(struct pl_text *t, char c)
{
	switch (c) {
	case '"':
		pl_text_add(t, "\\\"", 2);
		break;
	case '\\':
		pl_text_add(t, "\\\\", 2);
		break;
	case '\n':
		pl_text_add(t, "\\n", 2);
		break;
	case '\t':
		pl_text_add(t, "\\t", 2);
		break;
	case '\r':
		pl_text_add(t, "\\r", 2);
		break;
	default:
		if ((unsigned char)c < 0x20 || c == 0x7f)
			add_code_point(t, (unsigned char)c);
		else
			pl_text_add(t, &c, 1);
	}
}

void pl_json_add_string(struct pl_text *t, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;

	pl_text_add(t, "\"", 1);
	while (len > 0) {
		size_t n;
		long cp = decode_utf8(p, len, &n);

		if (cp < 0)
			add_code_point(t, 0xfffd);
		else if (cp < 0x80)
			add_ascii_char(t, (char)cp);
		else
			add_code_point(t, (unsigned long)cp);
		p += n;
		len -= n;
	}
	pl_text_add(t, "\"", 1);
}

/* ------------------------------------------------------------------ JSON values */

void mr_add_json_str_or_null(struct pl_text *t, const char *s)
{
	if (s)
		pl_json_add_string(t, s, strlen(s));
	else
		mr_add_str(t, "null");
}

/* ,"key": */
void mr_add_key(struct pl_text *t, const char *key, bool first)
{
	if (!first)
		pl_text_add(t, ",", 1);
	pl_json_add_string(t, key, strlen(key));
	pl_text_add(t, ":", 1);
}

void mr_add_str_field(struct pl_text *t, const char *key, const char *value)
{
	mr_add_key(t, key, false);
	mr_add_json_str_or_null(t, value);
}

void mr_add_num_field(struct pl_text *t, const char *key, long long value)
{
	mr_add_key(t, key, false);
	if (value < 0)
		mr_add_str(t, "null");
	else
		pl_text_addf(t, "%lld", value);
}

void mr_add_bool_field(struct pl_text *t, const char *key, bool value)
{
	mr_add_key(t, key, false);
	mr_add_str(t, value ? "true" : "false");
}

void mr_add_time_field(struct pl_text *t, const char *key, double value)
{
	char buf[40];

	mr_add_key(t, key, false);
	if (value <= 0) {
		mr_add_str(t, "null");
		return;
	}
	pl_monitor_rfc3339(value, buf, sizeof(buf));
	mr_add_json_str_or_null(t, buf);
}

void pl_monitor_rfc3339(double t, char *buf, size_t len)
{
	time_t secs = (time_t)t; /* t > 0: truncation is floor, and no libm */
	long ms = (long)((t - (double)secs) * 1000.0);
	struct tm tm;

	if (ms > 999)
		ms = 999;
	gmtime_r(&secs, &tm);
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}
