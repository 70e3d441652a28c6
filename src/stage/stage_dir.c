#include "stage_dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base_dir.h"
#include "log.h"
#include "small_file.h"

#define STATE_DIR ".state"

static int check_root_dir(int fd, const char *what, char *err, size_t errlen)
{
	struct stat st;

	if (pl_dir_owned_by(fd, 0, &st))
		return 0;
	if (!st.st_mode)
		snprintf(err, errlen, "%s: %s", what, strerror(errno));
	else
		snprintf(err, errlen,
			 "%s: not a root-owned directory writable only by root (uid %u, mode %04o)",
			 what, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
	return -1;
}

/* mkdir then open without following: whatever is there must be a directory. */
static int open_or_make_dir(int atfd, const char *name, mode_t mode, int *fd)
{
	if (mkdirat(atfd, name, mode) < 0 && errno != EEXIST)
		return -1;
	*fd = pl_dir_open_nofollow(atfd, name);
	return *fd < 0 ? -1 : 0;
}

int pl_stage_base_open(const char *base, int *fd, char *err, size_t errlen)
{
	return pl_base_dir_open(base, "stage.dir", fd, err, errlen);
}

/* Only root can write the base, so anything but a directory at <jobid> was
 * planted by an earlier hole or by hand: remove it (unlinkat never follows). */
static void remove_planted_entry(int basefd, const char *name)
{
	struct stat st;

	if (fstatat(basefd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode)) {
		pl_error("stage directory entry %s was a %s, not a directory: removed", name,
			 S_ISLNK(st.st_mode) ? "symbolic link" : "file");
		unlinkat(basefd, name, 0);
	}
}

int pl_stage_job_dir(int basefd, uint32_t job_id, const struct pl_user *user, char *err,
		     size_t errlen)
{
	char name[16];
	struct stat st;
	int fd;

	snprintf(name, sizeof(name), "%u", job_id);
	remove_planted_entry(basefd, name);
	if (open_or_make_dir(basefd, name, 0700, &fd) < 0) {
		snprintf(err, errlen, "job directory %s: %s", name, strerror(errno));
		return -1;
	}
	if (fchown(fd, user->uid, user->gid) < 0 || fchmod(fd, 0700) < 0 || fstat(fd, &st) < 0) {
		snprintf(err, errlen, "job directory %s: %s", name, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

int pl_stage_state_open(int basefd, uint32_t job_id, int *fd, char *err, size_t errlen)
{
	char name[16];
	int statefd;
	int rc;

	snprintf(name, sizeof(name), "%u", job_id);
	if (open_or_make_dir(basefd, STATE_DIR, 0700, &statefd) < 0) {
		snprintf(err, errlen, "%s: %s", STATE_DIR, strerror(errno));
		return -1;
	}
	rc = check_root_dir(statefd, STATE_DIR, err, errlen);
	if (rc == 0 && open_or_make_dir(statefd, name, 0700, fd) < 0) {
		snprintf(err, errlen, "%s/%s: %s", STATE_DIR, name, strerror(errno));
		rc = -1;
	}
	close(statefd);
	return rc;
}

int pl_stage_status_write(int statefd, const char *key, const char *text)
{
	char tmp[64];
	size_t len = strlen(text);
	int fd;
	int rc = -1;

	snprintf(tmp, sizeof(tmp), ".%s.tmp", key);
	unlinkat(statefd, tmp, 0);
	fd = openat(statefd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	if (write(fd, text, len) == (ssize_t)len && fsync(fd) == 0)
		rc = renameat(statefd, tmp, statefd, key);
	close(fd);
	return rc;
}

int pl_stage_status_read(int statefd, const char *key, char *buf, size_t len)
{
	return pl_read_small(statefd, key, buf, len);
}

int pl_stage_lock(int statefd, const char *key)
{
	char name[64];
	int fd;

	snprintf(name, sizeof(name), "%s.lock", key);
	fd = openat(statefd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	while (flock(fd, LOCK_EX) < 0)
		if (errno != EINTR) {
			close(fd);
			return -1;
		}
	return fd;
}

/* .state/<jobid> holds only files root made there: a flat removal suffices. */
static void remove_state_dir(int basefd, const char *name)
{
	int statefd = pl_dir_open_nofollow(basefd, STATE_DIR);
	int jobfd;
	DIR *dir;
	struct dirent *de;

	if (statefd < 0)
		return;
	jobfd = pl_dir_open_nofollow(statefd, name);
	if (jobfd >= 0 && (dir = fdopendir(jobfd))) {
		while ((de = readdir(dir)))
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
				unlinkat(jobfd, de->d_name, 0);
		closedir(dir);
	} else if (jobfd >= 0) {
		close(jobfd);
	}
	unlinkat(statefd, name, AT_REMOVEDIR);
	close(statefd);
}

void pl_stage_remove_job_entries(int basefd, uint32_t job_id)
{
	char name[16];

	snprintf(name, sizeof(name), "%u", job_id);
	remove_state_dir(basefd, name);
	unlinkat(basefd, name, AT_REMOVEDIR);
}
