/* A directory bundle as a tar stream (tar_stream.h): the output written in large blocks within
 * the byte cap, and the calls. The walk of the tree is tar_stream_walk.c, the messages
 * tar_stream_msg.c. */
#include "tar_stream.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tar_stream_internal.h"

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
		return ts_fail(s, "not a directory");
	if (fd < 0)
		return ts_fail(s, "cannot read the directory: %s", strerror(errno));
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
		return ts_fail(s, "out of memory");
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
		return ts_fail(s, "out of memory");
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
