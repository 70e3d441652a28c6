#include "base_dir.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "purge.h"
#include "runas.h"

/* Removing a planted tree is bounded: it stays (the user's own, under a name of ours) past this. */
#define PLANTED_REMOVE_SECONDS 20
#define FRESH_NAME_TRIES 16

struct base_path {
	char parent[PATH_MAX];
	const char *name; /* in parent */
};

static int split(const char *path, struct base_path *bp)
{
	char *slash;

	if (path[0] != '/' ||
	    snprintf(bp->parent, sizeof(bp->parent), "%s", path) >= (int)sizeof(bp->parent))
		return -1;
	slash = strrchr(bp->parent, '/');
	*slash = '\0';
	bp->name = slash + 1;
	if (!bp->name[0] || strcmp(bp->name, ".") == 0 || strcmp(bp->name, "..") == 0)
		return -1;
	if (!bp->parent[0])
		strcpy(bp->parent, "/");
	return 0;
}

int pl_dir_open_nofollow(int at, const char *name)
{
	return openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

bool pl_dir_owned_by(int fd, uid_t uid, struct stat *st)
{
	if (fstat(fd, st) < 0) {
		st->st_mode = 0;
		return false;
	}
	return S_ISDIR(st->st_mode) && st->st_uid == uid && !(st->st_mode & 0022);
}

/* Ours: a directory owned by this process's user, writable by no one else. */
static bool is_ours(int fd)
{
	struct stat st;

	return pl_dir_owned_by(fd, geteuid(), &st);
}

static int make_ours_mode(int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -1;
	return (st.st_mode & 07777) == 0755 ? 0 : fchmod(fd, 0755);
}

/* A new directory of ours beside the base, under a name no one else can have taken. */
static int make_fresh(int pfd, const struct base_path *bp, char *fresh, size_t len)
{
	for (unsigned i = 0; i < FRESH_NAME_TRIES; i++) {
		int fd;

		snprintf(fresh, len, ".%s.pylaunch-%ld-%u", bp->name, (long)getpid(), i);
		if (mkdirat(pfd, fresh, 0700) < 0) {
			if (errno == EEXIST)
				continue;
			return -1;
		}
		fd = pl_dir_open_nofollow(pfd, fresh);
		if (fd < 0)
			return -1;
		if (!is_ours(fd) && fchmod(fd, 0755) < 0) {
			close(fd);
			return -1;
		}
		if (make_ours_mode(fd) < 0 || !is_ours(fd)) {
			close(fd);
			errno = EPERM;
			return -1;
		}
		close(fd);
		return 0;
	}
	errno = EEXIST;
	return -1;
}

struct planted {
	const char *parent;
	const char *name;
};

static int remove_as_owner(void *arg, char *msg, size_t len)
{
	const struct planted *p = arg;
	long long deadline = pl_purge_now_ms() + PLANTED_REMOVE_SECONDS * 1000LL;
	int pfd = open(p->parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc;

	if (pfd < 0) {
		snprintf(msg, len, "%s: %s", p->parent, strerror(errno));
		return -1;
	}
	rc = pl_purge_at(pfd, p->name, false, deadline, NULL, msg, len);
	close(pfd);
	return rc;
}

/* The planted entry, now at fresh: a link or file is unlinked (never followed); a directory is
 * removed by its owner, so that nothing in it can steer root. */
static void remove_planted(int pfd, const struct base_path *bp, const char *fresh)
{
	struct planted p = {.parent = bp->parent, .name = fresh};
	struct pl_user owner = {.cgroup = NULL};
	char msg[512] = "";
	struct stat st;
	int rc;

	if (fstatat(pfd, fresh, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return;
	if (!S_ISDIR(st.st_mode))
		rc = unlinkat(pfd, fresh, 0) == 0 || errno == ENOENT ? 0 : -1;
	else if (st.st_uid == geteuid())
		rc = remove_as_owner(&p, msg, sizeof(msg));
	else {
		owner.uid = st.st_uid;
		owner.gid = st.st_gid;
		rc = pl_run_as_user(&owner, remove_as_owner, &p, PLANTED_REMOVE_SECONDS + 5, msg,
				    sizeof(msg));
	}
	if (rc < 0)
		pl_error("the entry planted at %s/%s, moved to %s/%s, is left: %s", bp->parent,
			 bp->name, bp->parent, fresh, msg[0] ? msg : strerror(errno));
}

static const char *kind_of(const struct stat *st)
{
	if (S_ISLNK(st->st_mode))
		return "a symbolic link";
	if (!S_ISDIR(st->st_mode))
		return "not a directory";
	return "a directory";
}

/* Swaps a fresh directory of ours in for whatever is at the base, then removes that. */
static int reclaim(int pfd, const struct base_path *bp, const char *what, char *err, size_t errlen)
{
	char fresh[NAME_MAX + 1];
	struct stat st;
	bool had = fstatat(pfd, bp->name, &st, AT_SYMLINK_NOFOLLOW) == 0;

	if (make_fresh(pfd, bp, fresh, sizeof(fresh)) < 0) {
		snprintf(err, errlen, "%s %s/%s: cannot make a directory beside it: %s", what,
			 bp->parent, bp->name, strerror(errno));
		return -1;
	}
	if (renameat2(pfd, fresh, pfd, bp->name, RENAME_EXCHANGE) < 0) {
		/* Gone meanwhile: put ours there, unless someone was faster again. */
		if (errno != ENOENT || renameat2(pfd, fresh, pfd, bp->name, RENAME_NOREPLACE) < 0) {
			snprintf(err, errlen, "%s %s/%s: cannot replace it: %s", what, bp->parent,
				 bp->name, strerror(errno));
			unlinkat(pfd, fresh, AT_REMOVEDIR);
			return -1;
		}
		return 0;
	}
	if (had)
		pl_error("%s %s/%s was %s owned by uid %u, mode %04o (planted?): replaced by a "
			 "directory of root's; removing the planted one",
			 what, bp->parent, bp->name, kind_of(&st), (unsigned)st.st_uid,
			 (unsigned)(st.st_mode & 07777));
	remove_planted(pfd, bp, fresh);
	return 0;
}

/* The base, if it is ours (a mode of ours gone wrong is mended): the fd, or -1. */
static int open_ours(int pfd, const char *name)
{
	int fd = pl_dir_open_nofollow(pfd, name);
	struct stat st;

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == geteuid())
		make_ours_mode(fd);
	if (!is_ours(fd)) {
		close(fd);
		errno = EPERM;
		return -1;
	}
	return fd;
}

int pl_base_dir_open(const char *path, const char *what, int *fd, char *err, size_t errlen)
{
	struct base_path bp;
	int pfd;

	err[0] = '\0';
	if (split(path, &bp) < 0) {
		snprintf(err, errlen, "%s %s: not an absolute path to a directory", what, path);
		return -1;
	}
	pfd = open(bp.parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (pfd < 0) {
		snprintf(err, errlen, "%s %s: its parent %s: %s", what, path, bp.parent,
			 strerror(errno));
		return -1;
	}
	if (mkdirat(pfd, bp.name, 0755) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
		close(pfd);
		return -1;
	}
	/* Two rounds: a user racing the swap can only make the first one fail. */
	for (int round = 0; round < 2; round++) {
		*fd = open_ours(pfd, bp.name);
		if (*fd >= 0) {
			close(pfd);
			return 0;
		}
		if (reclaim(pfd, &bp, what, err, errlen) < 0)
			break;
	}
	*fd = open_ours(pfd, bp.name);
	close(pfd);
	if (*fd >= 0)
		return 0;
	if (!err[0])
		snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
	return -1;
}

int pl_base_dir_open_existing(const char *path)
{
	int fd = pl_dir_open_nofollow(AT_FDCWD, path);

	if (fd >= 0 && !is_ours(fd)) {
		close(fd);
		errno = EPERM;
		return -1;
	}
	if (fd < 0 && (errno == ELOOP || errno == ENOTDIR))
		errno = EPERM;
	return fd;
}
