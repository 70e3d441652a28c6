/* The tar stream's messages: names quoted as they may appear in a log, and the reasons a
 * stream stops. */
#include "tar_stream_internal.h"

#include <archive.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------ messages */

/* Names come from the user's directory and end up in logs: escape what is not printable ASCII,
 * and cut a name that would drown the message (the same rules as extract.c). */
static const char *quote(char q[QUOTED_MAX], const char *s)
{
	static const char hex[] = "0123456789abcdef";
	size_t len = strlen(s);
	size_t out = 0;
	size_t i;

	for (i = 0; i < len && out + 4 <= SHOWN_NAME_MAX; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x20 && c < 0x7f && c != '\\') {
			q[out++] = (char)c;
			continue;
		}
		q[out++] = '\\';
		q[out++] = 'x';
		q[out++] = hex[c >> 4];
		q[out++] = hex[c & 15];
	}
	if (i < len) {
		memcpy(q + out, "...", 3);
		out += 3;
	}
	q[out] = '\0';
	return q;
}

int PRINTF_LIKE(2, 3) ts_fail(struct streamer *s, const char *fmt, ...)
{
	va_list ap;

	if (s->errlen == 0)
		return -1;
	va_start(ap, fmt);
	vsnprintf(s->err, s->errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* The entry is named relative to the directory, as extract.c names it: without "./". */
int PRINTF_LIKE(2, 3) ts_fail_entry(struct streamer *s, const char *fmt, ...)
{
	char q[QUOTED_MAX];
	const char *name = s->path_len > 2 ? s->path + 2 : ".";
	size_t used;
	va_list ap;

	if (s->errlen == 0)
		return -1;
	snprintf(s->err, s->errlen, "entry '%s': ", quote(q, name));
	used = strnlen(s->err, s->errlen);
	va_start(ap, fmt);
	if (used + 1 < s->errlen)
		vsnprintf(s->err + used, s->errlen - used, fmt, ap);
	va_end(ap);
	return -1;
}

int ts_fail_entry_errno(struct streamer *s, const char *op)
{
	return ts_fail_entry(s, "%s: %s", op, strerror(errno));
}

/* The entry was stat'ed as one thing and opened as another: someone is changing the directory
 * under us. */
int ts_fail_replaced(struct streamer *s)
{
	return ts_fail_entry(s, "replaced while being archived");
}

/* Exact, in the binary units stage.max_size is written in ("16 GiB", "1536 MiB"). */
int ts_fail_cap(struct streamer *s)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
	uint64_t v = s->max_bytes;
	unsigned u = 0;

	while (u + 1 < sizeof(units) / sizeof(units[0]) && v % 1024 == 0) {
		v /= 1024;
		u++;
	}
	return ts_fail_entry(s, "data size exceeds the limit (%" PRIu64 " %s)", v, units[u]);
}

/* A libarchive call failed: because out_fd refused bytes, or for libarchive's own reasons. */
int ts_fail_archive(struct streamer *s)
{
	char q[QUOTED_MAX];
	const char *why = archive_error_string(s->a);

	if (s->out_broken)
		return ts_fail(s, "cannot write the stream: %s", strerror(s->out_errno));
	return ts_fail_entry(s, "cannot archive: %s", quote(q, why ? why : "unknown error"));
}
