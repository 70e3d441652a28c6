#include "purge.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Entries that could not be removed (a mount point, an immutable file) are remembered so
 * that the walk does not go down into them again and again; past this many it gives up. */
#define MAX_STUCK 1024

struct level {
	char *name; /* relative to the level above */
	dev_t dev;
	ino_t ino;
	long resume; /* where this directory's pass goes on after the walk comes back up, -1 */
};

struct walk {
	struct level *stack;
	size_t depth; /* index of the current directory in stack */
	size_t cap;
	int fd; /* the current directory, the only descriptor held */
	long long deadline_ms;
	struct pl_purge_stats *stats;
	int failed_errno; /* the first reason something stayed */
	ino_t stuck[MAX_STUCK];
	size_t n_stuck;
};

long long pl_purge_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool is_dot(const char *name)
{
	return name[0] == '.' && (!name[1] || (name[1] == '.' && !name[2]));
}

static void note_failure(struct walk *w, int err)
{
	if (!w->failed_errno)
		w->failed_errno = err;
}

static bool past_deadline(struct walk *w)
{
	if (w->deadline_ms && pl_purge_now_ms() >= w->deadline_ms)
		w->stats->timed_out = true;
	return w->stats->timed_out;
}

/* A directory of mode 000 cannot be opened even by its owner: chmod it through an O_PATH
 * descriptor (which needs no permission on the directory itself and never follows a link). */
static int open_up_by_name(int at, const char *name)
{
	char proc[64];
	int fd = openat(at, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return -1;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	rc = chmod(proc, 0700);
	close(fd);
	return rc;
}

/* Opens at/name as a directory the walk can empty (u+rwx), on the top's device. A chmod that
 * fails is not fatal: the unlinks below then say what stays. */
static int open_dir(int at, const char *name, dev_t top_dev, bool check_dev, struct stat *st)
{
	int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int saved;

	if (fd < 0 && errno == EACCES && open_up_by_name(at, name) == 0)
		fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (fstat(fd, st) < 0 || (check_dev && st->st_dev != top_dev)) {
		saved = errno;
		close(fd);
		errno = check_dev && st->st_dev != top_dev ? EXDEV : saved;
		return -1;
	}
	if ((st->st_mode & 0700) != 0700)
		(void)fchmod(fd, (st->st_mode & 07777) | 0700);
	return fd;
}

static int push(struct walk *w, const char *name, const struct stat *st)
{
	if (w->depth + 1 >= w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 64;
		struct level *s = realloc(w->stack, cap * sizeof(*s));

		if (!s)
			return -1;
		w->stack = s;
		w->cap = cap;
	}
	w->depth++;
	w->stack[w->depth].name = strdup(name);
	w->stack[w->depth].dev = st->st_dev;
	w->stack[w->depth].ino = st->st_ino;
	w->stack[w->depth].resume = -1;
	return w->stack[w->depth].name ? 0 : -1;
}

static bool is_stuck(const struct walk *w, ino_t ino)
{
	for (size_t i = 0; i < w->n_stuck; i++)
		if (w->stuck[i] == ino)
			return true;
	return false;
}

/* Goes down into the non-empty directory name; 1 when it did, 0 when it is to be left. */
static int descend(struct walk *w, const char *name)
{
	struct stat st;
	int fd;

	if (fstatat(w->fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && is_stuck(w, st.st_ino))
		return 0;
	fd = open_dir(w->fd, name, w->stack[0].dev, true, &st);
	if (fd < 0) {
		note_failure(w, errno);
		return 0;
	}
	if (push(w, name, &st) < 0) {
		close(fd);
		note_failure(w, ENOMEM);
		return -1;
	}
	close(w->fd);
	w->fd = fd;
	return 1;
}

/* Removes one entry of the current directory (counting it in *progress), or goes down into
 * it (1). */
static int remove_one(struct walk *w, const char *name, bool *progress)
{
	/* unlink(2) removes a symbolic link itself, never what it points to. */
	if (unlinkat(w->fd, name, 0) == 0 || unlinkat(w->fd, name, AT_REMOVEDIR) == 0) {
		w->stats->removed++;
		*progress = true;
		return 0;
	}
	if (errno == ENOENT)
		return 0;
	if (errno == ENOTEMPTY || errno == EEXIST)
		return descend(w, name);
	note_failure(w, errno);
	return 0;
}

/* Rewinds, or goes on after the entry the walk went down into: a pass that started from the
 * top after each subdirectory would read the directory again each time, quadratic in a
 * directory of many non-empty subdirectories (150,000 took 40 s). The subdirectory is gone, or
 * stuck: either way the pass is not over, and another follows it (*progress). */
static void start_pass(struct walk *w, DIR *d, bool *progress)
{
	struct level *here = &w->stack[w->depth];

	rewinddir(d);
	if (here->resume >= 0) {
		seekdir(d, here->resume);
		here->resume = -1;
		*progress = true;
	}
}

/* One pass over the current directory: 1 when it went down into a subdirectory, 0 when
 * the pass ended (*progress: it removed something), -1 to stop. */
static int sweep_dir(struct walk *w, bool *progress)
{
	int fd = dup(w->fd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;
	int rc = 0;

	*progress = false;
	if (!d) {
		if (fd >= 0)
			close(fd);
		note_failure(w, errno);
		return -1;
	}
	start_pass(w, d, progress);
	while (rc == 0 && (e = readdir(d))) {
		if (is_dot(e->d_name))
			continue;
		if (past_deadline(w)) {
			rc = -1;
			break;
		}
		rc = remove_one(w, e->d_name, progress);
		/* Went down (depth grew): the level above goes on after this entry. */
		if (rc == 1)
			w->stack[w->depth - 1].resume = telldir(d);
	}
	closedir(d);
	return rc;
}

/* Back up to the parent through "..", which must be the directory the walk came from. */
static int ascend(struct walk *w)
{
	struct level *here = &w->stack[w->depth];
	struct level *above = &w->stack[w->depth - 1];
	struct stat st;
	int up = openat(w->fd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (up < 0 || fstat(up, &st) < 0 || st.st_dev != above->dev || st.st_ino != above->ino) {
		if (up >= 0)
			close(up);
		note_failure(w, ESTALE); /* moved while the walk was below it */
		return -1;
	}
	if (unlinkat(up, here->name, AT_REMOVEDIR) == 0) {
		w->stats->removed++;
	} else {
		note_failure(w, errno);
		if (w->n_stuck == MAX_STUCK) {
			close(up);
			return -1;
		}
		w->stuck[w->n_stuck++] = here->ino;
	}
	free(here->name);
	close(w->fd);
	w->fd = up;
	w->depth--;
	return 0;
}

/* A pass that removed something is followed by another: a directory is left only once a
 * whole pass finds nothing it can remove. */
static int walk_tree(struct walk *w)
{
	for (;;) {
		bool progress;
		int rc = sweep_dir(w, &progress);

		if (rc < 0)
			return -1;
		if (rc == 1 || progress)
			continue;
		if (w->depth == 0)
			return 0;
		if (ascend(w) < 0)
			return -1;
	}
}

static void walk_free(struct walk *w)
{
	for (size_t i = 1; i <= w->depth && w->stack; i++)
		free(w->stack[i].name);
	free(w->stack);
	if (w->fd >= 0)
		close(w->fd);
}

static int purge_dir(int parentfd, const char *name, bool keep_top, struct walk *w)
{
	struct stat st;
	int rc;

	w->fd = open_dir(parentfd, name, 0, false, &st);
	if (w->fd < 0 || push(w, name, &st) < 0) {
		note_failure(w, errno);
		return -1;
	}
	w->depth = 0; /* push made level 1: the top is level 0 */
	w->stack[0] = w->stack[1];
	rc = walk_tree(w);
	if (rc == 0 && !keep_top) {
		if (unlinkat(parentfd, name, AT_REMOVEDIR) == 0)
			w->stats->removed++;
		else if (errno != ENOENT)
			note_failure(w, errno);
	}
	free(w->stack[0].name);
	return rc;
}

static void describe(const char *name, const struct walk *w, char *err, size_t errlen)
{
	if (w->stats->timed_out)
		snprintf(err, errlen,
			 "%s: not everything could be removed: deadline reached after %llu entries",
			 name, (unsigned long long)w->stats->removed);
	else
		snprintf(err, errlen, "%s: not everything could be removed: %s", name,
			 strerror(w->failed_errno ? w->failed_errno : EIO));
}

int pl_purge_at(int parentfd, const char *name, bool keep_top, long long deadline_ms,
		struct pl_purge_stats *stats, char *err, size_t errlen)
{
	struct pl_purge_stats local = {0};
	struct walk w = {.fd = -1, .deadline_ms = deadline_ms, .stats = stats ? stats : &local};
	struct stat st;
	int rc;

	if (fstatat(parentfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", name, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		if (keep_top || unlinkat(parentfd, name, 0) == 0 || errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", name, strerror(errno));
		return -1;
	}
	rc = purge_dir(parentfd, name, keep_top, &w);
	walk_free(&w);
	if (rc < 0 || w.failed_errno || w.stats->timed_out) {
		describe(name, &w, err, errlen);
		return -1;
	}
	return 0;
}

static int purge_path(const char *path, bool keep_top, long long deadline_ms, char *err,
		      size_t errlen)
{
	char parent[PATH_MAX];
	const char *slash = strrchr(path, '/');
	int pfd;
	int rc;

	if (!slash) {
		pfd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	} else {
		snprintf(parent, sizeof(parent), "%.*s", (int)(slash - path), path);
		pfd = open(parent[0] ? parent : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (pfd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return errno == ENOENT ? 0 : -1;
	}
	rc = pl_purge_at(pfd, slash ? slash + 1 : path, keep_top, deadline_ms, NULL, err, errlen);
	close(pfd);
	return rc;
}

int pl_remove_tree(const char *path, char *err, size_t errlen)
{
	return purge_path(path, false, 0, err, errlen);
}

int pl_empty_tree_until(const char *path, long long deadline_ms, char *err, size_t errlen)
{
	return purge_path(path, true, deadline_ms, err, errlen);
}
