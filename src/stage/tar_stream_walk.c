/* The walk of a directory bundle: its entries in name order, each opened beneath its parent
 * without following links, written as a tar header and, for a file, its bytes. */
#include "tar_stream_internal.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ entries */

static int push_name(struct streamer *s, const char *name)
{
	size_t len = strlen(name);
	size_t need = s->path_len + 1 + len + 1;

	if (need > s->path_size) {
		size_t size = need > 2 * s->path_size ? need : 2 * s->path_size;
		char *bigger = realloc(s->path, size);

		if (!bigger)
			return ts_fail_entry(s, "out of memory");
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
		return ts_fail_archive(s);
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
			return ts_fail_entry_errno(s, "read");
		if (n == 0)
			return ts_fail_entry(s, "file shrank while being archived");
		if (archive_write_data(s->a, s->buf, (size_t)n) != n)
			return ts_fail_archive(s);
		left -= (uint64_t)n;
	}
	return 0;
}

static int write_file(struct streamer *s, int fd, const struct stat *st)
{
	uint64_t size = (uint64_t)st->st_size;

	if (s->max_bytes && size > s->max_bytes - s->data_bytes)
		return ts_fail_cap(s);
	s->data_bytes += size;
	if (write_header(s, AE_IFREG, st, NULL) < 0)
		return -1;
	s->in_data = size > 0;
	if (copy_data(s, fd, size) < 0)
		return -1;
	if (archive_write_finish_entry(s->a) != ARCHIVE_OK)
		return ts_fail_archive(s);
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
		return errno == ELOOP ? ts_fail_replaced(s) : ts_fail_entry_errno(s, "open");
	if (fstat(fd, &st) < 0)
		rc = ts_fail_entry_errno(s, "stat");
	else if (!S_ISREG(st.st_mode))
		rc = ts_fail_replaced(s);
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
		return errno == EINVAL ? ts_fail_replaced(s) : ts_fail_entry_errno(s, "readlink");
	if (n >= PATH_MAX)
		return ts_fail_entry(s, "symlink target too long");
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
			return ts_fail_entry(s, "out of memory");
	}
	return errno ? ts_fail_entry_errno(s, "read directory") : 0;
}

/* Its own descriptor for readdir, so that dfd stays usable for openat. */
static int list_names(struct streamer *s, int dfd, struct names *names)
{
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d;
	int rc;

	if (fd < 0)
		return ts_fail_entry_errno(s, "open");
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return ts_fail_entry_errno(s, "open");
	}
	rc = read_names(s, d, names);
	closedir(d);
	if (rc == 0 && names->n > 1)
		qsort(names->v, names->n, sizeof(*names->v), compare_names);
	return rc;
}

static int stream_child(struct streamer *s, int dfd, const char *name);

/* The directory's entry, then everything in it. */
int ts_stream_dir(struct streamer *s, int fd)
{
	struct names names = {0};
	struct stat st;
	int rc;

	if (s->depth > PL_TAR_STREAM_MAX_DEPTH)
		return ts_fail_entry(s, "directories nested more than %d deep",
				     PL_TAR_STREAM_MAX_DEPTH);
	if (fstat(fd, &st) < 0)
		return ts_fail_entry_errno(s, "stat");
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
		return errno == ELOOP || errno == ENOTDIR ? ts_fail_replaced(s)
							  : ts_fail_entry_errno(s, "open");
	rc = ts_stream_dir(s, fd);
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
		return ts_fail_entry(s, "device nodes are not allowed");
	case S_IFIFO:
		return ts_fail_entry(s, "FIFOs are not allowed");
	case S_IFSOCK:
		return ts_fail_entry(s, "sockets are not allowed");
	default:
		return ts_fail_entry(s, "unknown file type 0%o", (unsigned)(st->st_mode & S_IFMT));
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
		rc = ts_fail_entry_errno(s, "stat");
	else
		rc = stream_by_type(s, dfd, name, &st);
	pop_name(s, len);
	return rc;
}
