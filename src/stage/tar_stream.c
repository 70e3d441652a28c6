/* A directory bundle as a tar stream (tar_stream.h): the messages, the output written in large
 * blocks within the byte cap, and the calls. The walk of the tree is tar_stream_walk.c. */
#include "tar_stream.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tar_stream_internal.h"

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

static int PRINTF_LIKE(2, 3) fail(struct streamer *s, const char *fmt, ...)
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
		return fail(s, "cannot write the stream: %s", strerror(s->out_errno));
	return ts_fail_entry(s, "cannot archive: %s", quote(q, why ? why : "unknown error"));
}

/* ------------------------------------------------------------ output */

static int write_all(struct streamer *s, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(s->out_fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			s->out_broken = true;
			s->out_errno = n < 0 ? errno : EIO;
			return -1;
		}
		s->written += (uint64_t)n;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int flush_out(struct streamer *s)
{
	int rc = write_all(s, s->out, s->out_len);

	s->out_len = 0;
	return rc;
}

/* libarchive's blocking is off (bytes per block 0): every byte it produces arrives here at once,
 * so this buffer knows exactly what a reader will have seen when something fails. */
static la_ssize_t on_write(struct archive *a, void *client, const void *buf, size_t len)
{
	struct streamer *s = client;
	const char *p = buf;
	size_t left = len;

	/* libarchive's own close (from archive_write_free) must not complete a failed stream, nor
	 * pad a cut file with gigabytes of zeros. */
	if (s->sealed)
		return -1;
	while (left > 0) {
		size_t n = OUT_BLOCK - s->out_len < left ? OUT_BLOCK - s->out_len : left;

		memcpy(s->out + s->out_len, p, n);
		s->out_len += n;
		p += n;
		left -= n;
		if (s->out_len == OUT_BLOCK && flush_out(s) < 0) {
			archive_set_error(a, s->out_errno, "%s", strerror(s->out_errno));
			return -1;
		}
	}
	return (la_ssize_t)len;
}

/* After an error, between entries: a header that is not one (no valid checksum), so that a reader
 * fails here instead of finding a clean end. Inside a file's data nothing is added: the entry is
 * cut short, which a reader reports as a truncated archive. Nothing at all when nothing was
 * produced yet: an empty stream is no archive either. */
static void seal_after_error(struct streamer *s)
{
	static const char why[] = "pylaunch: the directory could not be archived; stream abandoned";
	char poison[TAR_BLOCK] = {0};
	bool started = s->written > 0 || s->out_len > 0;

	memcpy(poison, why, sizeof(why) - 1);
	if (!s->out_broken && flush_out(s) == 0 && started && !s->in_data)
		write_all(s, poison, sizeof(poison));
	s->sealed = true;
}

/* ------------------------------------------------------------ calls */

/* The one symlink followed: path itself, as `tar -C path` would. O_NONBLOCK: a FIFO named as
 * the bundle must not hang before it is refused. */
static int open_top(struct streamer *s, const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);

	if (fd < 0 && errno == ENOTDIR)
		return fail(s, "not a directory");
	if (fd < 0)
		return fail(s, "cannot read the directory: %s", strerror(errno));
	return fd;
}

static int init_streamer(struct streamer *s, int out_fd, uint64_t max_bytes, char *err,
			 size_t errlen)
{
	memset(s, 0, sizeof(*s));
	s->out_fd = out_fd;
	s->max_bytes = max_bytes;
	s->err = err;
	s->errlen = errlen;
	if (errlen > 0)
		err[0] = '\0';
	s->path_size = 64;
	s->path = malloc(s->path_size);
	s->out = malloc(OUT_BLOCK);
	s->buf = malloc(READ_BLOCK);
	s->e = archive_entry_new();
	if (!s->path || !s->out || !s->buf || !s->e)
		return fail(s, "out of memory");
	memcpy(s->path, ".", 2);
	s->path_len = 1;
	return 0;
}

static void release_streamer(struct streamer *s)
{
	if (s->a)
		archive_write_free(s->a);
	archive_entry_free(s->e);
	free(s->path);
	free(s->out);
	free(s->buf);
}

static int open_archive(struct streamer *s)
{
	s->a = archive_write_new();
	if (!s->a)
		return fail(s, "out of memory");
	if (archive_write_set_format_pax_restricted(s->a) != ARCHIVE_OK ||
	    archive_write_set_bytes_per_block(s->a, 0) != ARCHIVE_OK ||
	    archive_write_open(s->a, s, NULL, on_write, NULL) != ARCHIVE_OK)
		return ts_fail_archive(s);
	return 0;
}

static int close_archive(struct streamer *s)
{
	if (archive_write_close(s->a) != ARCHIVE_OK)
		return ts_fail_archive(s);
	if (flush_out(s) < 0)
		return ts_fail_archive(s);
	return 0;
}

int pl_tar_stream_directory(const char *path, int out_fd, uint64_t max_bytes, uint64_t *bytes_out,
			    char *err, size_t errlen)
{
	struct streamer s;
	int top = -1;
	int rc = -1;

	if (init_streamer(&s, out_fd, max_bytes, err, errlen) == 0)
		top = open_top(&s, path);
	if (top >= 0 && open_archive(&s) == 0 && ts_stream_dir(&s, top) == 0 &&
	    close_archive(&s) == 0)
		rc = 0;
	if (rc < 0 && s.a)
		seal_after_error(&s);
	if (top >= 0)
		close(top);
	release_streamer(&s);
	if (bytes_out)
		*bytes_out = s.written;
	return rc;
}
