/* Directories beneath dirfd: walking a path one component at a time without following links
 * (openat2 RESOLVE_BENEATH when it can), the parent cache, a call's state, and the directories
 * whose modes and times wait for pl_extract_finish(). */
#include "extract_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

/* The API has no handle, and a staging is one process extracting layer after layer. */
static struct {
	struct pending_dir *v;
	size_t n;
	size_t cap;
} pending;

/* ------------------------------------------------------------ directories beneath dirfd */

/* The kernel resolves the whole path and guarantees it neither leaves dirfd nor follows a
 * symlink. Any failure (missing directory, symlink, a kernel without openat2) sends the caller to
 * the component walk, which finds out what exactly is wrong. */
static int open_beneath_fast(int dirfd, const char *rel, int flags)
{
	static bool unavailable;
	struct open_how how = {
	    .flags = (uint64_t)(flags | O_DIRECTORY | O_CLOEXEC),
	    .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	int fd;

	if (unavailable) {
		errno = ENOSYS;
		return -1;
	}
	fd = (int)syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
	if (fd < 0 && (errno == ENOSYS || errno == EPERM))
		unavailable = true; /* old kernel, or a seccomp filter that does not know it */
	return fd;
}

/* errno ELOOP when name is a symlink, ENOTDIR when it is something else that is no directory. */
static void classify_not_dir(int at, const char *name)
{
	struct stat st;

	if (fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
		errno = ELOOP;
	else
		errno = ENOTDIR;
}

/* Parents made for entries that lack them cost inodes too; one extraction at a time per
 * process (see extract.h), so a counter of the process serves. */
uint64_t ex_implied_dirs_made;

/* One component (no slash, never "." or ".."), never following it if it is a symlink. */
static int open_component(int at, const char *name, int flags, bool create)
{
	int open_flags = flags | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
	int fd = openat(at, name, open_flags);

	if (fd < 0 && errno == ENOENT && create) {
		if (mkdirat(at, name, 0700) == 0)
			ex_implied_dirs_made++;
		else if (errno != EEXIST)
			return -1;
		fd = openat(at, name, open_flags);
	}
	if (fd < 0 && (errno == ENOTDIR || errno == ELOOP))
		classify_not_dir(at, name);
	return fd;
}

static void close_keeping_errno(int fd)
{
	int saved = errno;

	close(fd);
	errno = saved;
}

/* Opens rel one component at a time, creating missing directories (0700) if asked. On failure
 * errno says why and x->walk_stop how much of rel is at fault. */
static int walk_beneath(struct extractor *x, const char *rel, int flags, bool create)
{
	char name[NAME_MAX + 1];
	const char *p = rel;
	int at = x->dirfd;

	for (;;) {
		size_t len = strcspn(p, "/");
		bool last = p[len] == '\0';
		int fd = -1;

		if (len > NAME_MAX) {
			errno = ENAMETOOLONG;
		} else {
			memcpy(name, p, len);
			name[len] = '\0';
			fd = open_component(at, name, last ? flags : O_PATH, create);
		}
		if (at != x->dirfd)
			close_keeping_errno(at);
		if (fd < 0) {
			x->walk_stop = (size_t)(p - rel) + len;
			return -1;
		}
		if (last)
			return fd;
		at = fd;
		p += len + 1;
	}
}

int ex_open_dir_beneath(struct extractor *x, const char *rel, int flags, bool create)
{
	int fd = open_beneath_fast(x->dirfd, rel, flags);

	return fd >= 0 ? fd : walk_beneath(x, rel, flags, create);
}

/* subject: what was being resolved ("path", "hard link target 'x'"). */
int ex_fail_walk(struct extractor *x, const char *subject, const char *rel)
{
	int why = errno;
	struct quoted q;
	const char *at = ex_quote_n(&q, rel, x->walk_stop);

	if (why == ELOOP)
		return ex_fail_entry(x, "%s passes through the symlink '%s'", subject, at);
	if (why == ENOTDIR)
		return ex_fail_entry(x, "%s passes through '%s', which is not a directory", subject,
				     at);
	return ex_fail_entry(x, "%s: directory '%s': %s", subject, at, strerror(why));
}

static void forget_parent(struct extractor *x)
{
	if (x->parent_fd >= 0)
		close(x->parent_fd);
	x->parent_fd = -1;
}

static int remember_parent(struct extractor *x, size_t len, int fd)
{
	forget_parent(x);
	if (ex_reserve(&x->parent, &x->parent_size, len + 1) < 0) {
		close(fd);
		return ex_fail_entry(x, "out of memory");
	}
	memcpy(x->parent, x->path, len);
	x->parent[len] = '\0';
	x->parent_len = len;
	x->parent_fd = fd;
	return 0;
}

static bool parent_is_cached(const struct extractor *x, size_t len)
{
	return x->parent_fd >= 0 && x->parent_len == len && memcmp(x->parent, x->path, len) == 0;
}

/* The directory that holds the current entry, made if missing; *name is the entry's last
 * component. */
int ex_open_parent(struct extractor *x, int *pfd, const char **name)
{
	char *slash = strrchr(x->path, '/');
	size_t len;
	int fd;

	if (!slash) {
		*pfd = x->dirfd;
		*name = x->path;
		return 0;
	}
	*name = slash + 1;
	len = (size_t)(slash - x->path);
	if (!parent_is_cached(x, len)) {
		*slash = '\0';
		fd = ex_open_dir_beneath(x, x->path, O_PATH, true);
		if (fd < 0)
			ex_fail_walk(x, "path", x->path);
		*slash = '/';
		if (fd < 0 || remember_parent(x, len, fd) < 0)
			return -1;
	}
	*pfd = x->parent_fd;
	return 0;
}

int ex_remember_dir(const char *path, mode_t mode, struct archive_entry *e)
{
	struct pending_dir *d;

	if (pending.n == pending.cap) {
		size_t cap = pending.cap ? pending.cap * 2 : FIRST_PENDING_CAP;
		struct pending_dir *v = realloc(pending.v, cap * sizeof(*v));

		if (!v)
			return -1;
		pending.v = v;
		pending.cap = cap;
	}
	d = &pending.v[pending.n];
	d->path = strdup(path);
	if (!d->path)
		return -1;
	d->mode = mode;
	d->has_mtime = archive_entry_mtime_is_set(e);
	d->mtime.tv_sec = archive_entry_mtime(e);
	d->mtime.tv_nsec = archive_entry_mtime_nsec(e);
	d->seq = pending.n++;
	return 0;
}

static void forget_dirs(void)
{
	for (size_t i = 0; i < pending.n; i++)
		free(pending.v[i].path);
	free(pending.v);
	memset(&pending, 0, sizeof(pending));
}
void ex_init_extractor(struct extractor *x, int dirfd, const struct pl_extract_limits *lim,
		       struct pl_extract_stats *stats, char *err, size_t errlen)
{
	memset(x, 0, sizeof(*x));
	x->dirfd = dirfd;
	x->max_bytes = lim ? lim->max_bytes : 0;
	x->max_entries = lim ? lim->max_entries : 0;
	x->stats = stats;
	x->err = err;
	x->errlen = errlen;
	x->parent_fd = -1;
	if (errlen > 0)
		err[0] = '\0';
}

static void release_extractor(struct extractor *x)
{
	forget_parent(x);
	free(x->parent);
	free(x->path);
	free(x->disk_root);
	x->parent = x->path = x->disk_root = NULL;
}

/* After an error the caller abandons the staging: the remembered directories go with it. */
int ex_finish_call(struct extractor *x, int rc)
{
	release_extractor(x);
	if (rc < 0)
		forget_dirs();
	return rc;
}

/* ------------------------------------------------------------ finish */

/* A path sorts after its own prefix, so descending order puts children before their parent: a
 * parent made read-only is still open to us while its children are done. Among duplicates the
 * latest layer comes first and wins. */
static int deepest_first(const void *pa, const void *pb)
{
	const struct pending_dir *a = pa;
	const struct pending_dir *b = pb;
	int c = strcmp(b->path, a->path);

	if (c != 0)
		return c;
	return a->seq < b->seq ? 1 : (a->seq > b->seq ? -1 : 0);
}

static int apply_pending(struct extractor *x, const struct pending_dir *d)
{
	struct timespec ts[2] = {{.tv_sec = 0, .tv_nsec = UTIME_OMIT}, d->mtime};
	int fd;
	int rc = -1;

	x->entry = d->path;
	fd = ex_open_dir_beneath(x, d->path, O_RDONLY, false);
	if (fd < 0)
		return ex_fail_walk(x, "path", d->path);
	if (d->has_mtime && futimens(fd, ts) < 0)
		ex_fail_entry_errno(x, "set times");
	else if (fchmod(fd, d->mode) < 0)
		ex_fail_entry_errno(x, "set mode");
	else
		rc = 0;
	close(fd);
	return rc;
}

int pl_extract_finish(int dirfd, char *err, size_t errlen)
{
	struct extractor x;
	int rc = 0;

	ex_init_extractor(&x, dirfd, NULL, NULL, err, errlen);
	if (pending.n > 0)
		qsort(pending.v, pending.n, sizeof(*pending.v), deepest_first);
	for (size_t i = 0; i < pending.n && rc == 0; i++)
		if (i == 0 || strcmp(pending.v[i].path, pending.v[i - 1].path) != 0)
			rc = apply_pending(&x, &pending.v[i]);
	forget_dirs();
	return ex_finish_call(&x, rc);
}
