#include "monitor_spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base_dir.h"
#include "log.h"
#include "monitor_collect.h"

#define HOOK_MAX_SIZE (1024 * 1024)
/* A spool left by an earlier run of the same job id (a requeued job) goes first. */
#define STALE_REMOVE_MS 10000
#define LIFT_NAME_TRIES 16

static void job_dir_name(uint32_t job_id, char *buf, size_t len)
{
	snprintf(buf, len, "%u", job_id);
}

/* ------------------------------------------------------------------ the base */

/* The base directory, checked (and created, or reclaimed from a user who planted it, when
 * create is set: base_dir.h); -1 with errno ENOENT when it does not exist and create is not
 * set (not logged), or after logging. */
static int open_base(const char *spool_dir, bool create)
{
	char err[512];
	int fd;

	if (create) {
		if (pl_base_dir_open(spool_dir, "monitor.spool_dir", &fd, err, sizeof(err)) == 0)
			return fd;
		pl_error("monitor: %s", err);
		errno = EIO;
		return -1;
	}
	fd = pl_base_dir_open_existing(spool_dir);
	if (fd < 0 && errno == EPERM)
		pl_error("monitor: refusing the spool %s: not a directory of root's (planted?); "
			 "the next prolog replaces it",
			 spool_dir);
	else if (fd < 0 && errno != ENOENT)
		pl_error_errno(errno, "monitor: cannot open the spool %s", spool_dir);
	return fd;
}

/* ------------------------------------------------------------------ removal */

static bool past(long long deadline_ms)
{
	return deadline_ms && pl_mon_now_ms() >= deadline_ms;
}

/* Opens a directory stream on a fresh descriptor of the directory dir_fd names. */
static DIR *open_stream(int dir_fd, const char *name)
{
	int fd = pl_dir_open_nofollow(dir_fd, name);
	DIR *d;

	if (fd < 0)
		return NULL;
	if (!(d = fdopendir(fd)))
		close(fd);
	return d;
}

static bool is_dot(const char *name)
{
	return name[0] == '.' && (!name[1] || (name[1] == '.' && !name[2]));
}

/* Moves the directory sub/name up into dir under a name of ours; 1 when moved. */
static int lift(int dir_fd, int sub_fd, const char *name, unsigned *counter)
{
	char fresh[32];

	for (int i = 0; i < LIFT_NAME_TRIES; i++) {
		snprintf(fresh, sizeof(fresh), ".pylaunch-rm-%u", (*counter)++);
		if (renameat2(sub_fd, name, dir_fd, fresh, RENAME_NOREPLACE) == 0)
			return 1;
		if (errno == EINVAL && renameat(sub_fd, name, dir_fd, fresh) == 0)
			return 1;
		if (errno != EEXIST && errno != ENOTEMPTY && errno != EINVAL)
			return 0;
	}
	return 0;
}

/* Empties the non-empty directory dir/sub by one level: its files and links go, its
 * directories move up into dir. No recursion and no descriptor per level, so a tree
 * of any depth is removed with two descriptors. Returns the entries it dealt with. */
static size_t flatten(int dir_fd, const char *sub, unsigned *counter, long long deadline_ms)
{
	DIR *d = open_stream(dir_fd, sub);
	struct dirent *e;
	size_t done = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)) && !past(deadline_ms)) {
		if (is_dot(e->d_name))
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) == 0 ||
		    unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR) == 0)
			done++;
		else if (errno != ENOENT)
			done += (size_t)lift(dir_fd, dirfd(d), e->d_name, counter);
	}
	closedir(d);
	return done;
}

/* One pass over the directory dir_fd: what can be removed is removed, non-empty
 * directories are flattened. Returns the entries it dealt with: 0 means stuck. */
static size_t removal_pass(int dir_fd, unsigned *counter, long long deadline_ms)
{
	DIR *d = open_stream(dir_fd, ".");
	struct dirent *e;
	size_t done = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)) && !past(deadline_ms)) {
		if (is_dot(e->d_name))
			continue;
		/* unlink(2) removes a symbolic link itself, never what it points to. */
		if (unlinkat(dir_fd, e->d_name, 0) == 0 ||
		    unlinkat(dir_fd, e->d_name, AT_REMOVEDIR) == 0)
			done++;
		else if (errno == ENOTEMPTY || errno == EEXIST)
			done += flatten(dir_fd, e->d_name, counter, deadline_ms);
	}
	closedir(d);
	return done;
}

/* Removes parent/name, a file, a link or a tree. */
static int remove_entry(int parent_fd, const char *name, long long deadline_ms)
{
	unsigned counter = 0;
	int fd = -1;
	int rc = -1;

	if (unlinkat(parent_fd, name, 0) == 0 || errno == ENOENT)
		return 0;
	fd = pl_dir_open_nofollow(parent_fd, name);
	if (fd < 0)
		return unlinkat(parent_fd, name, 0) == 0 || errno == ENOENT ? 0 : -1;
	for (;;) {
		if (unlinkat(parent_fd, name, AT_REMOVEDIR) == 0 || errno == ENOENT) {
			rc = 0;
			break;
		}
		if ((errno != ENOTEMPTY && errno != EEXIST) || past(deadline_ms) ||
		    removal_pass(fd, &counter, deadline_ms) == 0)
			break;
	}
	close(fd);
	return rc;
}

int pl_monitor_spool_remove(const char *spool_dir, uint32_t job_id, unsigned timeout_ms)
{
	char name[16];
	long long deadline_ms = timeout_ms ? pl_mon_now_ms() + timeout_ms : 0;
	int base = open_base(spool_dir, false);
	int rc;

	if (base < 0)
		return errno == ENOENT ? 0 : -1;
	job_dir_name(job_id, name, sizeof(name));
	rc = remove_entry(base, name, deadline_ms);
	if (rc < 0)
		pl_error("monitor: job %u: the spool %s/%s could not be removed completely%s",
			 job_id, spool_dir, name, past(deadline_ms) ? " in time" : "");
	close(base);
	return rc;
}

/* ------------------------------------------------------------------ creation */

static int copy_fd(int from, int to)
{
	char buf[16384];
	ssize_t n;

	while ((n = read(from, buf, sizeof(buf))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(to, buf + off, (size_t)(n - off));

			if (w < 0 && errno != EINTR)
				return -1;
			off += w > 0 ? w : 0;
		}
	}
	return 0;
}

/* Copies one file of the installed hook into dir_fd as name, owned by uid:gid. */
static int copy_hook_file(const char *source_dir, const char *source, const char *name, int dir_fd,
			  uid_t uid, gid_t gid)
{
	char path[4096];
	struct stat st;
	int from = -1, to = -1, rc = -1;

	snprintf(path, sizeof(path), "%s/%s", source_dir, source);
	from = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (from < 0 || fstat(from, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > HOOK_MAX_SIZE) {
		pl_error_errno(from < 0 ? errno : EINVAL,
			       "monitor: the hook %s is missing (is pylaunch installed?)", path);
		goto fail;
	}
	to = openat(dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (to < 0 || copy_fd(from, to) < 0 || fchown(to, uid, gid) < 0 || fchmod(to, 0644) < 0) {
		pl_error_errno(errno, "monitor: cannot copy the hook %s into the spool", path);
		goto fail;
	}
	rc = 0;
fail:
	if (from >= 0)
		close(from);
	if (to >= 0)
		close(to);
	return rc;
}

/* The core first: without it the shims start nothing. One shim serves both module slots
 * (it takes its slot from __name__), so the usercustomize slot gets a copy of it. */
static int copy_hook(const char *source_dir, int dir_fd, uid_t uid, gid_t gid)
{
	static const char *const files[][2] = {
	    {PL_MONITOR_HOOK_CORE, PL_MONITOR_HOOK_CORE},
	    {PL_MONITOR_HOOK_FILE, PL_MONITOR_HOOK_FILE},
	    {PL_MONITOR_HOOK_FILE, PL_MONITOR_HOOK_USER_FILE},
	};

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		if (copy_hook_file(source_dir, files[i][0], files[i][1], dir_fd, uid, gid) < 0)
			return -1;
	return 0;
}

/* The .hook directory of the job's spool: Python writes the hook's byte code there. */
static int install_hook(int job_fd, const char *source_dir, uid_t uid, gid_t gid)
{
	int fd = -1, rc = -1;

	if (mkdirat(job_fd, PL_MONITOR_HOOK_DIR_NAME, 0700) < 0 ||
	    (fd = pl_dir_open_nofollow(job_fd, PL_MONITOR_HOOK_DIR_NAME)) < 0) {
		pl_error_errno(errno, "monitor: cannot create the hook directory of the spool");
		goto fail;
	}
	if (copy_hook(source_dir, fd, uid, gid) < 0)
		goto fail;
	if (fchown(fd, uid, gid) < 0 || fchmod(fd, 0700) < 0) {
		pl_error_errno(errno, "monitor: cannot hand the hook directory to uid %u",
			       (unsigned)uid);
		goto fail;
	}
	rc = 0;
fail:
	if (fd >= 0)
		close(fd);
	return rc;
}

/* The job's directory, still root's until everything in it is in place. */
static int make_job_dir(int base, const char *spool_dir, const char *name)
{
	int fd;

	if (remove_entry(base, name, pl_mon_now_ms() + STALE_REMOVE_MS) < 0) {
		pl_error("monitor: cannot remove the stale spool %s/%s", spool_dir, name);
		return -1;
	}
	if (mkdirat(base, name, 0700) < 0 || (fd = pl_dir_open_nofollow(base, name)) < 0) {
		pl_error_errno(errno, "monitor: cannot create the spool %s/%s", spool_dir, name);
		return -1;
	}
	if (fchmod(fd, 0700) < 0) {
		pl_error_errno(errno, "monitor: chmod 0700 %s/%s", spool_dir, name);
		close(fd);
		return -1;
	}
	return fd;
}

int pl_monitor_spool_prepare(const char *spool_dir, uint32_t job_id, uid_t uid, gid_t gid,
			     const char *hook_source_dir)
{
	char name[16];
	int base = -1, job = -1, rc = -1;

	job_dir_name(job_id, name, sizeof(name));
	if ((base = open_base(spool_dir, true)) < 0)
		goto fail;
	if ((job = make_job_dir(base, spool_dir, name)) < 0)
		goto fail;
	/* Without the hook the tasks are not monitored; the job runs all the same. */
	install_hook(job, hook_source_dir, uid, gid);
	if (fchown(job, uid, gid) < 0) {
		pl_error_errno(errno, "monitor: cannot hand the spool %s/%s to uid %u", spool_dir,
			       name, (unsigned)uid);
		goto fail;
	}
	rc = 0;
fail:
	if (job >= 0)
		close(job);
	if (base >= 0)
		close(base);
	return rc;
}

int pl_monitor_spool_open(const char *spool_dir, uint32_t job_id)
{
	char name[16];
	int base = open_base(spool_dir, false);
	int fd, saved;

	if (base < 0)
		return -1;
	job_dir_name(job_id, name, sizeof(name));
	fd = pl_dir_open_nofollow(base, name);
	saved = errno;
	if (fd < 0 && saved != ENOENT)
		pl_error_errno(saved, "monitor: cannot open the spool %s/%s", spool_dir, name);
	close(base);
	errno = saved;
	return fd;
}
