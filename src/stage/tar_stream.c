#include "tar_stream.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Files are read once, often from a shared file system: few large reads. The buffer also holds
 * symlink targets (PATH_MAX). */
#define READ_BLOCK (1024 * 1024)
/* Writes to out_fd: a few pipe buffers at a time. */
#define OUT_BLOCK (256 * 1024)
#define TAR_BLOCK 512
/* As in extract.c: messages end up in a 512-byte line with a prefix. */
#define SHOWN_NAME_MAX 120
#define QUOTED_MAX (SHOWN_NAME_MAX + 8)
#define PERM_BITS 07777

#define PRINTF_LIKE(a, b) __attribute__((format(printf, a, b)))

/* One call of pl_tar_stream_directory(). */
struct streamer {
	struct archive *a;
	struct archive_entry *e;
	int out_fd;
	uint64_t max_bytes;
	uint64_t data_bytes; /* regular files' sizes so far, against max_bytes */
	uint64_t written;    /* bytes out_fd took */
	unsigned depth;
	bool in_data;	 /* a file's header went out, not yet all of its data and padding */
	bool out_broken; /* out_fd refused bytes: out_errno says why */
	int out_errno;
	bool sealed; /* after an error nothing more reaches out_fd (not even libarchive's close) */
	char *path;  /* the current entry's name, "./a/b" */
	size_t path_len;
	size_t path_size;
	char *out; /* bytes for out_fd not yet written */
	size_t out_len;
	char *buf; /* file data, symlink targets */
	char *err;
	size_t errlen;
};

/* A directory's names, sorted. */
struct names {
	char **v;
	size_t n;
	size_t cap;
};

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
static int PRINTF_LIKE(2, 3) fail_entry(struct streamer *s, const char *fmt, ...)
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

static int fail_entry_errno(struct streamer *s, const char *op)
{
	return fail_entry(s, "%s: %s", op, strerror(errno));
}

/* The entry was stat'ed as one thing and opened as another: someone is changing the directory
 * under us. */
static int fail_replaced(struct streamer *s)
{
	return fail_entry(s, "replaced while being archived");
}

/* Exact, in the binary units stage.max_size is written in ("16 GiB", "1536 MiB"). */
static int fail_cap(struct streamer *s)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
	uint64_t v = s->max_bytes;
	unsigned u = 0;

	while (u + 1 < sizeof(units) / sizeof(units[0]) && v % 1024 == 0) {
		v /= 1024;
		u++;
	}
	return fail_entry(s, "data size exceeds the limit (%" PRIu64 " %s)", v, units[u]);
}

/* A libarchive call failed: because out_fd refused bytes, or for libarchive's own reasons. */
static int fail_archive(struct streamer *s)
{
	char q[QUOTED_MAX];
	const char *why = archive_error_string(s->a);

	if (s->out_broken)
		return fail(s, "cannot write the stream: %s", strerror(s->out_errno));
	return fail_entry(s, "cannot archive: %s", quote(q, why ? why : "unknown error"));
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

/* ------------------------------------------------------------ entries */

static int push_name(struct streamer *s, const char *name)
{
	size_t len = strlen(name);
	size_t need = s->path_len + 1 + len + 1;

	if (need > s->path_size) {
		size_t size = need > 2 * s->path_size ? need : 2 * s->path_size;
		char *bigger = realloc(s->path, size);

		if (!bigger)
			return fail_entry(s, "out of memory");
		s->path = bigger;
		s->path_size = size;
	}
	s->path[s->path_len++] = '/';
	memcpy(s->path + s->path_len, name, len + 1);
	s->path_len += len;
	return 0;
}

static void pop_name(struct streamer *s, size_t len)
{
	s->path_len = len;
	s->path[len] = '\0';
}

/* Owners stay 0 and unnamed (see tar_stream.h); mtimes lose their nanoseconds, which restricted
 * pax would keep only on the entries that happen to need an extended header. */
static int write_header(struct streamer *s, unsigned type, const struct stat *st,
			const char *target)
{
	struct archive_entry *e = archive_entry_clear(s->e);

	archive_entry_copy_pathname(e, s->path);
	archive_entry_set_filetype(e, type);
	archive_entry_set_perm(e, st->st_mode & PERM_BITS);
	archive_entry_set_mtime(e, st->st_mtim.tv_sec, 0);
	archive_entry_set_size(e, type == AE_IFREG ? st->st_size : 0);
	if (target)
		archive_entry_copy_symlink(e, target);
	/* ARCHIVE_WARN: a name that is not text in this locale, stored as its bytes. */
	if (archive_write_header(s->a, e) < ARCHIVE_WARN)
		return fail_archive(s);
	return 0;
}

/* Exactly size bytes: a file that grows is cut at the size its header announced, one that
 * shrinks cannot be stored. */
static int copy_data(struct streamer *s, int fd, uint64_t size)
{
	uint64_t left = size;

	while (left > 0) {
		size_t want = left < READ_BLOCK ? (size_t)left : READ_BLOCK;
		ssize_t n = read(fd, s->buf, want);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fail_entry_errno(s, "read");
		if (n == 0)
			return fail_entry(s, "file shrank while being archived");
		if (archive_write_data(s->a, s->buf, (size_t)n) != n)
			return fail_archive(s);
		left -= (uint64_t)n;
	}
	return 0;
}

static int write_file(struct streamer *s, int fd, const struct stat *st)
{
	uint64_t size = (uint64_t)st->st_size;

	if (s->max_bytes && size > s->max_bytes - s->data_bytes)
		return fail_cap(s);
	s->data_bytes += size;
	if (write_header(s, AE_IFREG, st, NULL) < 0)
		return -1;
	s->in_data = size > 0;
	if (copy_data(s, fd, size) < 0)
		return -1;
	if (archive_write_finish_entry(s->a) != ARCHIVE_OK)
		return fail_archive(s);
	s->in_data = false;
	return 0;
}

/* O_NOFOLLOW and the type of the open descriptor: what was stat'ed as a regular file may have
 * become a symlink or a FIFO since (O_NONBLOCK: opening a FIFO must not wait for a writer). */
static int stream_file(struct streamer *s, int dfd, const char *name)
{
	const int flags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
	int fd = openat(dfd, name, flags);
	struct stat st;
	int rc;

	if (fd < 0)
		return errno == ELOOP ? fail_replaced(s) : fail_entry_errno(s, "open");
	if (fstat(fd, &st) < 0)
		rc = fail_entry_errno(s, "stat");
	else if (!S_ISREG(st.st_mode))
		rc = fail_replaced(s);
	else
		rc = write_file(s, fd, &st);
	close(fd);
	return rc;
}

/* Stored as it is, pointing anywhere: extraction never follows it either. */
static int stream_symlink(struct streamer *s, int dfd, const char *name, const struct stat *st)
{
	ssize_t n = readlinkat(dfd, name, s->buf, PATH_MAX);

	if (n < 0)
		return errno == EINVAL ? fail_replaced(s) : fail_entry_errno(s, "readlink");
	if (n >= PATH_MAX)
		return fail_entry(s, "symlink target too long");
	s->buf[n] = '\0';
	return write_header(s, AE_IFLNK, st, s->buf);
}

/* ------------------------------------------------------------ directories */

static int compare_names(const void *pa, const void *pb)
{
	return strcmp(*(char *const *)pa, *(char *const *)pb);
}

static void free_names(struct names *names)
{
	for (size_t i = 0; i < names->n; i++)
		free(names->v[i]);
	free(names->v);
}

static int add_name(struct names *names, const char *name)
{
	if (names->n == names->cap) {
		size_t cap = names->cap ? 2 * names->cap : 32;
		char **v = realloc(names->v, cap * sizeof(*v));

		if (!v)
			return -1;
		names->v = v;
		names->cap = cap;
	}
	names->v[names->n] = strdup(name);
	if (!names->v[names->n])
		return -1;
	names->n++;
	return 0;
}

static int read_names(struct streamer *s, DIR *d, struct names *names)
{
	struct dirent *de;

	for (errno = 0; (de = readdir(d)) != NULL; errno = 0) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (add_name(names, de->d_name) < 0)
			return fail_entry(s, "out of memory");
	}
	return errno ? fail_entry_errno(s, "read directory") : 0;
}

/* Its own descriptor for readdir, so that dfd stays usable for openat. */
static int list_names(struct streamer *s, int dfd, struct names *names)
{
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d;
	int rc;

	if (fd < 0)
		return fail_entry_errno(s, "open");
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return fail_entry_errno(s, "open");
	}
	rc = read_names(s, d, names);
	closedir(d);
	if (rc == 0 && names->n > 1)
		qsort(names->v, names->n, sizeof(*names->v), compare_names);
	return rc;
}

static int stream_child(struct streamer *s, int dfd, const char *name);

/* The directory's entry, then everything in it. */
static int stream_dir(struct streamer *s, int fd)
{
	struct names names = {0};
	struct stat st;
	int rc;

	if (s->depth > PL_TAR_STREAM_MAX_DEPTH)
		return fail_entry(s, "directories nested more than %d deep",
				  PL_TAR_STREAM_MAX_DEPTH);
	if (fstat(fd, &st) < 0)
		return fail_entry_errno(s, "stat");
	if (write_header(s, AE_IFDIR, &st, NULL) < 0)
		return -1;
	s->depth++;
	rc = list_names(s, fd, &names);
	for (size_t i = 0; rc == 0 && i < names.n; i++)
		rc = stream_child(s, fd, names.v[i]);
	s->depth--;
	free_names(&names);
	return rc;
}

static int stream_subdir(struct streamer *s, int dfd, const char *name)
{
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return errno == ELOOP || errno == ENOTDIR ? fail_replaced(s)
							  : fail_entry_errno(s, "open");
	rc = stream_dir(s, fd);
	close(fd);
	return rc;
}

static int stream_by_type(struct streamer *s, int dfd, const char *name, const struct stat *st)
{
	switch (st->st_mode & S_IFMT) {
	case S_IFREG:
		return stream_file(s, dfd, name);
	case S_IFDIR:
		return stream_subdir(s, dfd, name);
	case S_IFLNK:
		return stream_symlink(s, dfd, name, st);
	case S_IFCHR:
	case S_IFBLK:
		return fail_entry(s, "device nodes are not allowed");
	case S_IFIFO:
		return fail_entry(s, "FIFOs are not allowed");
	case S_IFSOCK:
		return fail_entry(s, "sockets are not allowed");
	default:
		return fail_entry(s, "unknown file type 0%o", (unsigned)(st->st_mode & S_IFMT));
	}
}

static int stream_child(struct streamer *s, int dfd, const char *name)
{
	size_t len = s->path_len;
	struct stat st;
	int rc;

	if (push_name(s, name) < 0)
		return -1;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		rc = fail_entry_errno(s, "stat");
	else
		rc = stream_by_type(s, dfd, name, &st);
	pop_name(s, len);
	return rc;
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
		return fail_archive(s);
	return 0;
}

static int close_archive(struct streamer *s)
{
	if (archive_write_close(s->a) != ARCHIVE_OK)
		return fail_archive(s);
	if (flush_out(s) < 0)
		return fail_archive(s);
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
	if (top >= 0 && open_archive(&s) == 0 && stream_dir(&s, top) == 0 && close_archive(&s) == 0)
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
