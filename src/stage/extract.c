/* Safe streaming extraction (extract.h): the calls, which open an archive or a directory and
 * run its entries through extract_entry.c beneath dirfd. */
#include "extract.h"

#include <archive.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "extract_internal.h"

/* The formats the README promises and nothing else: cpio, ISO images, 7-Zip, RAR or raw data are
 * not bundles, and archive_read_support_filter_all() would let an archive make the prolog run
 * lrzip, grzip or lzop as external programs. ARCHIVE_WARN: this libarchive lacks one of the
 * libraries below and runs its program instead. */
static int add_accepted_formats(struct archive *a)
{
	int (*const add[])(struct archive *) = {
	    archive_read_support_format_tar,  archive_read_support_format_zip,
	    archive_read_support_filter_gzip, archive_read_support_filter_bzip2,
	    archive_read_support_filter_xz,   archive_read_support_filter_zstd,
	    archive_read_support_filter_lz4,
	};

	for (size_t i = 0; i < sizeof(add) / sizeof(add[0]); i++)
		if (add[i](a) < ARCHIVE_WARN)
			return -1;
	return 0;
}

struct archive *pl_archive_reader_new(void)
{
	struct archive *a = archive_read_new();

	if (a && add_accepted_formats(a) < 0) {
		archive_read_free(a);
		a = NULL;
	}
	return a;
}

int pl_bundle_lookup(const char *path, struct stat *st)
{
	int fd = open(path, O_PATH | O_CLOEXEC);

	if (fd >= 0 && fstat(fd, st) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* The looked-up inode opened for reading, without a second walk. /proc is there wherever Slurm
 * runs (slurmd and slurmstepd read it themselves). O_NONBLOCK: should the inode have become a
 * FIFO, it must not hang the prolog. */
static int reopen_for_reading(int pathfd)
{
	char proc[64];

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pathfd);
	return open(proc, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
}

static int open_looked_up(struct extractor *x, int pathfd, const struct stat *st)
{
	int fd;

	if (!S_ISREG(st->st_mode))
		return ex_fail(x, "not a regular file");
	fd = reopen_for_reading(pathfd);
	if (fd < 0)
		return ex_fail(x, "cannot open: %s", strerror(errno));
	return fd;
}

static int open_bundle_file(struct extractor *x, const char *path)
{
	struct stat st;
	int pathfd = pl_bundle_lookup(path, &st);
	int fd;

	if (pathfd < 0)
		return ex_fail(x, "cannot open: %s", strerror(errno));
	fd = open_looked_up(x, pathfd, &st);
	close(pathfd);
	return fd;
}

static int open_reader(struct extractor *x, struct archive *a, int fd, size_t block)
{
	struct quoted why;

	if (!a)
		return ex_fail(x, "out of memory");
	if (archive_read_open_fd(a, fd, block) == ARCHIVE_OK)
		return 0;
	/* Opening already bids for a format. */
	if (archive_errno(a) == FORMAT_ERRNO)
		return ex_fail_header(x, a);
	return ex_fail(x, "cannot read: %s", ex_archive_why(&why, a));
}

/* Reads the first header from fd (closed here). */
static int probe_fd(struct extractor *x, int fd)
{
	struct archive *a = pl_archive_reader_new();
	struct archive_entry *e;
	int rc = -1;

	if (open_reader(x, a, fd, PROBE_BLOCK) < 0)
		goto out;
	rc = archive_read_next_header(a, &e);
	rc = rc == ARCHIVE_OK || rc == ARCHIVE_WARN || rc == ARCHIVE_EOF ? 0 : ex_fail_header(x, a);
out:
	archive_read_free(a);
	close(fd);
	return rc;
}

int pl_archive_probe(const char *path, char *err, size_t errlen)
{
	struct extractor x;
	int fd;

	ex_init_extractor(&x, -1, NULL, NULL, err, errlen);
	fd = open_bundle_file(&x, path);
	return fd < 0 ? -1 : probe_fd(&x, fd);
}

int pl_archive_probe_looked_up(int pathfd, const struct stat *st, char *err, size_t errlen)
{
	struct extractor x;
	int fd;

	ex_init_extractor(&x, -1, NULL, NULL, err, errlen);
	fd = open_looked_up(&x, pathfd, st);
	return fd < 0 ? -1 : probe_fd(&x, fd);
}

int pl_extract_archive(struct archive *a, int dirfd, const struct pl_extract_limits *lim,
		       struct pl_extract_stats *stats, char *err, size_t errlen)
{
	struct extractor x;

	ex_init_extractor(&x, dirfd, lim, stats, err, errlen);
	return ex_finish_call(&x, ex_extract_entries(&x, a));
}

int pl_extract_archive_fd(int fd, int dirfd, const struct pl_extract_limits *lim,
			  struct pl_extract_stats *stats, char *err, size_t errlen)
{
	struct archive *a = pl_archive_reader_new();
	struct extractor x;
	int rc = -1;

	ex_init_extractor(&x, dirfd, lim, stats, err, errlen);
	if (open_reader(&x, a, fd, READ_BLOCK) == 0)
		rc = pl_extract_archive(a, dirfd, lim, stats, err, errlen);
	archive_read_free(a);
	return ex_finish_call(&x, rc);
}

int pl_extract_archive_file(const char *path, int dirfd, const struct pl_extract_limits *lim,
			    struct pl_extract_stats *stats, char *err, size_t errlen)
{
	struct extractor x;
	int fd;
	int rc;

	ex_init_extractor(&x, dirfd, lim, stats, err, errlen);
	fd = open_bundle_file(&x, path);
	if (fd < 0)
		return ex_finish_call(&x, -1);
	rc = pl_extract_archive_fd(fd, dirfd, lim, stats, err, errlen);
	close(fd);
	return rc;
}

int pl_extract_archive_looked_up(int pathfd, const struct stat *st, int dirfd,
				 const struct pl_extract_limits *lim,
				 struct pl_extract_stats *stats, char *err, size_t errlen)
{
	struct extractor x;
	int fd;
	int rc;

	ex_init_extractor(&x, dirfd, lim, stats, err, errlen);
	fd = open_looked_up(&x, pathfd, st);
	if (fd < 0)
		return ex_finish_call(&x, -1);
	rc = pl_extract_archive_fd(fd, dirfd, lim, stats, err, errlen);
	close(fd);
	return rc;
}

/* Hybrid: a symlink named as the bundle is followed (as `tar -C path` would), none inside it.
 * ACLs, extended attributes and file flags are not staged: no need to read them. */
static int open_directory(struct extractor *x, struct archive *a, const char *path)
{
	struct quoted why;
	const int skip =
	    ARCHIVE_READDISK_NO_XATTR | ARCHIVE_READDISK_NO_ACL | ARCHIVE_READDISK_NO_FFLAGS;

	if (!a)
		return ex_fail(x, "out of memory");
	if (archive_read_disk_set_symlink_hybrid(a) != ARCHIVE_OK ||
	    archive_read_disk_set_behavior(a, skip) != ARCHIVE_OK ||
	    archive_read_disk_open(a, path) != ARCHIVE_OK)
		return ex_fail(x, "cannot read the directory: %s", ex_archive_why(&why, a));
	return 0;
}

int pl_extract_directory(const char *path, int dirfd, const struct pl_extract_limits *lim,
			 struct pl_extract_stats *stats, char *err, size_t errlen)
{
	struct archive *a = archive_read_disk_new();
	struct extractor x;
	int rc = -1;

	ex_init_extractor(&x, dirfd, lim, stats, err, errlen);
	x.from_disk = true;
	if (open_directory(&x, a, path) == 0)
		rc = ex_extract_entries(&x, a);
	archive_read_free(a);
	return ex_finish_call(&x, rc);
}
