/* One entry at a time: regular files (written within the budget), directories, symbolic and
 * hard links, each created beneath the tree and never through a link. */
#include "extract_internal.h"

#include <archive.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ entries */

/* Set-id bits never reach the stage; the others stay (0755 executables). */
static mode_t kept_mode(struct extractor *x, struct archive_entry *e)
{
	mode_t perm = archive_entry_perm(e);

	if (perm & SETID_BITS)
		x->stats->setid_stripped++;
	return perm & KEPT_BITS;
}

/* atime is left alone: only mtime matters (Python checks .pyc files against it). */
static void entry_times(struct archive_entry *e, struct timespec ts[2])
{
	ts[0].tv_sec = 0;
	ts[0].tv_nsec = UTIME_OMIT;
	ts[1].tv_sec = archive_entry_mtime(e);
	ts[1].tv_nsec = archive_entry_mtime_nsec(e);
}

static uint64_t budget_left(const struct extractor *x)
{
	return x->max_bytes > x->stats->bytes ? x->max_bytes - x->stats->bytes : 0;
}

/* A later layer's file or symlink replaces an earlier one: unlink it, never open it for writing
 * (it may be a symlink, or a hard link that another entry shares). */
static int unlink_existing(struct extractor *x, int pfd, const char *name, const char *what)
{
	if (unlinkat(pfd, name, 0) == 0)
		return 0;
	if (errno == EISDIR)
		return ex_fail_entry(x, "a directory of that name exists, a %s cannot replace it",
				     what);
	return ex_fail_entry_errno(x, "unlink");
}

static int create_file(struct extractor *x, int pfd, const char *name)
{
	const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
	int fd = openat(pfd, name, flags, 0600);

	if (fd < 0 && errno == EEXIST) {
		if (unlink_existing(x, pfd, name, "file") < 0)
			return -1;
		fd = openat(pfd, name, flags, 0600);
	}
	if (fd < 0)
		ex_fail_entry_errno(x, "create");
	return fd;
}

static int write_at(int fd, const char *buf, size_t size, off_t offset)
{
	while (size > 0) {
		ssize_t n = pwrite(fd, buf, size, offset);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			return -1;
		}
		buf += n;
		size -= (size_t)n;
		offset += n;
	}
	return 0;
}

/* Blocks as libarchive hands them out, at their offsets (sparse entries skip the holes); the cap
 * counts what is actually written, whatever the header claimed. *end: where the data ended. */
static int copy_data(struct extractor *x, struct archive *a, int fd, uint64_t *end)
{
	struct quoted why;
	const void *buf;
	size_t size;
	la_int64_t offset;
	int rc;

	*end = 0;
	while ((rc = archive_read_data_block(a, &buf, &size, &offset)) == ARCHIVE_OK) {
		if (size > budget_left(x))
			return ex_fail_cap(x);
		if (offset < 0)
			return ex_fail_entry(x, "data at a negative offset");
		if (write_at(fd, buf, size, (off_t)offset) < 0)
			return ex_fail_entry_errno(x, "write");
		x->stats->bytes += size;
		if ((uint64_t)offset + size > *end)
			*end = (uint64_t)offset + size;
	}
	if (rc != ARCHIVE_EOF)
		return ex_fail_entry(x, "read: %s", ex_archive_why(&why, a));
	return 0;
}

/* After the data: a sparse file may end in a hole, then mtime and mode (mode last: the file may
 * be read-only). */
static int complete_file(struct extractor *x, struct archive_entry *e, int fd, uint64_t end,
			 uint64_t declared, mode_t mode)
{
	struct timespec ts[2];

	if (end < declared && ftruncate(fd, (off_t)declared) < 0)
		return ex_fail_entry_errno(x, "extend");
	entry_times(e, ts);
	if (archive_entry_mtime_is_set(e) && futimens(fd, ts) < 0)
		return ex_fail_entry_errno(x, "set times");
	if (fchmod(fd, mode) < 0)
		return ex_fail_entry_errno(x, "set mode");
	return 0;
}

static int extract_file(struct extractor *x, struct archive *a, struct archive_entry *e)
{
	uint64_t declared = archive_entry_size_is_set(e) && archive_entry_size(e) > 0
				? (uint64_t)archive_entry_size(e)
				: 0;
	mode_t mode = kept_mode(x, e);
	const char *name;
	uint64_t end;
	int pfd;
	int fd;
	int rc = -1;

	if (declared > budget_left(x))
		return ex_fail_cap(x);
	if (ex_open_parent(x, &pfd, &name) < 0)
		return -1;
	fd = create_file(x, pfd, name);
	if (fd < 0)
		return -1;
	if (copy_data(x, a, fd, &end) < 0 || complete_file(x, e, fd, end, declared, mode) < 0)
		goto out;
	x->stats->files++;
	rc = 0;
out:
	close(fd);
	return rc;
}

/* Made 0700 whatever the entry says, so that a read-only directory cannot block what later
 * entries and layers put into it; its own mode waits for pl_extract_finish(). */
static int extract_dir(struct extractor *x, struct archive_entry *e)
{
	mode_t mode = kept_mode(x, e);
	const char *name;
	struct stat st;
	int pfd;

	if (ex_open_parent(x, &pfd, &name) < 0)
		return -1;
	if (mkdirat(pfd, name, 0700) < 0) {
		if (errno != EEXIST)
			return ex_fail_entry_errno(x, "mkdir");
		if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return ex_fail_entry_errno(x, "stat");
		if (!S_ISDIR(st.st_mode))
			return ex_fail_entry(
			    x, "a %s of that name exists, a directory cannot replace it",
			    S_ISLNK(st.st_mode) ? "symlink" : "file");
	}
	if (ex_remember_dir(x->path, mode, e) < 0)
		return ex_fail_entry(x, "out of memory");
	x->stats->dirs++;
	return 0;
}

/* Created as it is, pointing anywhere (conda and Debian trees hold absolute links): it is never
 * followed, since every later path is resolved without following symlinks. */
static int extract_symlink(struct extractor *x, struct archive_entry *e)
{
	const char *target = archive_entry_symlink(e);
	struct timespec ts[2];
	const char *name;
	int pfd;

	if (!target)
		target = archive_entry_symlink_utf8(e);
	if (!target || !target[0])
		return ex_fail_entry(x, "symlink without a target");
	if (ex_open_parent(x, &pfd, &name) < 0)
		return -1;
	if (symlinkat(target, pfd, name) < 0) {
		if (errno != EEXIST)
			return ex_fail_entry_errno(x, "symlink");
		if (unlink_existing(x, pfd, name, "symlink") < 0)
			return -1;
		if (symlinkat(target, pfd, name) < 0)
			return ex_fail_entry_errno(x, "symlink");
	}
	entry_times(e, ts);
	if (archive_entry_mtime_is_set(e) && utimensat(pfd, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
		return ex_fail_entry_errno(x, "set times");
	x->stats->symlinks++;
	return 0;
}

/* The target must be a regular file already beneath dirfd, reached without symlinks. */
static int open_link_target(struct extractor *x, char *target, const char *subject, int *tfd,
			    const char **tname)
{
	char *slash = strrchr(target, '/');
	struct stat st;

	*tfd = x->dirfd;
	*tname = target;
	if (slash) {
		*slash = '\0';
		*tfd = ex_open_dir_beneath(x, target, O_PATH, false);
		if (*tfd < 0 && errno != ENOENT)
			return ex_fail_walk(x, subject, target);
		*slash = '/';
		*tname = slash + 1;
	}
	if (*tfd < 0 || fstatat(*tfd, *tname, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
		return ex_fail_entry(x, "%s is not an earlier regular file", subject);
	return 0;
}

static int link_replacing(struct extractor *x, int tfd, const char *tname, int pfd,
			  const char *name)
{
	if (linkat(tfd, tname, pfd, name, 0) == 0)
		return 0;
	if (errno != EEXIST)
		return ex_fail_entry_errno(x, "link");
	if (unlink_existing(x, pfd, name, "hard link") < 0)
		return -1;
	if (linkat(tfd, tname, pfd, name, 0) < 0)
		return ex_fail_entry_errno(x, "link");
	return 0;
}

static int check_link_target(struct extractor *x, const char *raw, char *target,
			     const char *subject)
{
	switch (ex_normalize(raw, target)) {
	case PATH_ABSOLUTE:
		return ex_fail_entry(x, "%s is an absolute path", subject);
	case PATH_DOTDOT:
		return ex_fail_entry(x, "%s leaves the bundle", subject);
	case PATH_INSIDE:
		return 0;
	default:
		return ex_fail_entry(x, "%s is not an earlier regular file", subject);
	}
}

static int extract_hardlink(struct extractor *x, const char *raw)
{
	char subject[SUBJECT_MAX];
	char *target = malloc(strlen(raw) + 1);
	const char *tname;
	const char *name;
	struct quoted q;
	int tfd = -1;
	int pfd;
	int rc = -1;

	if (!target)
		return ex_fail_entry(x, "out of memory");
	snprintf(subject, sizeof(subject), "hard link target '%s'", ex_quote(&q, raw));
	if (check_link_target(x, raw, target, subject) < 0)
		goto out;
	/* `tar -c f f` links the second f to the first: it is there already. */
	if (strcmp(target, x->path) == 0) {
		rc = 0;
		goto out;
	}
	if (open_link_target(x, target, subject, &tfd, &tname) < 0 ||
	    ex_open_parent(x, &pfd, &name) < 0 || link_replacing(x, tfd, tname, pfd, name) < 0)
		goto out;
	x->stats->hardlinks++;
	rc = 0;
out:
	if (tfd >= 0 && tfd != x->dirfd)
		close(tfd);
	free(target);
	return rc;
}

static int extract_entry(struct extractor *x, struct archive *a, struct archive_entry *e)
{
	enum path_kind kind = PATH_EMPTY;
	const char *link;

	if (ex_take_entry_path(x, e, &kind) < 0)
		return -1;
	/* "./": the mode of dirfd is the caller's. */
	if (kind == PATH_TOP && archive_entry_filetype(e) == AE_IFDIR)
		return 0;
	if (kind == PATH_TOP)
		return x->from_disk
			   ? ex_fail(x, "not a directory")
			   : ex_fail_entry(x, "names the top of the bundle but is not a directory");
	link = archive_entry_hardlink(e);
	if (link)
		return extract_hardlink(x, link);
	switch (archive_entry_filetype(e)) {
	case AE_IFREG:
		return extract_file(x, a, e);
	case AE_IFDIR:
		return extract_dir(x, e);
	case AE_IFLNK:
		return extract_symlink(x, e);
	case AE_IFCHR:
	case AE_IFBLK:
		return ex_fail_entry(x, "device nodes are not allowed");
	case AE_IFIFO:
		return ex_fail_entry(x, "FIFOs are not allowed");
	case AE_IFSOCK:
		return ex_fail_entry(x, "sockets are not allowed");
	default:
		return ex_fail_entry(x, "unknown entry type 0%o",
				     (unsigned)archive_entry_filetype(e));
	}
}

static int descend_if_directory(struct extractor *x, struct archive *a)
{
	if (!x->from_disk || !archive_read_disk_can_descend(a) ||
	    archive_read_disk_descend(a) == ARCHIVE_OK)
		return 0;
	return ex_fail_disk(x, a);
}

int ex_extract_entries(struct extractor *x, struct archive *a)
{
	struct archive_entry *e;
	int rc;

	while ((rc = archive_read_next_header(a, &e)) == ARCHIVE_OK || rc == ARCHIVE_WARN) {
		uint64_t implied_before = ex_implied_dirs_made;

		if (ex_over_entries(x) < 0)
			return -1;
		rc = extract_entry(x, a, e);
		x->stats->implied_dirs += ex_implied_dirs_made - implied_before;
		if (rc < 0 || ex_over_entries_after(x) < 0 || descend_if_directory(x, a) < 0)
			return -1;
	}
	return rc == ARCHIVE_EOF ? 0 : ex_fail_header(x, a);
}
