/* Unit tests of the root-side pieces of staging: src/common/runas.c (work as the
 * user), src/stage/stage_dir.c (the stage directory under root) and src/common/purge.c
 * (removal as the owner). They need root, as the prolog has; CI runs them as
 * root, an unprivileged developer run skips them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above first. */
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "job_cgroup.h"
#include "purge.h"
#include "runas.h"
#include "stage_dir.h"

static struct pl_user nobody;
static char tmp[256];

static int setup(void **state)
{
	struct passwd *pw = getpwnam("nobody");

	(void)state;
	if (!pw)
		return -1;
	nobody.uid = pw->pw_uid;
	nobody.gid = pw->pw_gid;
	snprintf(tmp, sizeof(tmp), "%s/pl-privsep-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(tmp))
		return -1;
	return chmod(tmp, 0755);
}

static int teardown(void **state)
{
	char err[256];

	(void)state;
	return pl_remove_tree(tmp, err, sizeof(err));
}

static void need_root(void)
{
	if (geteuid() != 0)
		skip();
}

static int report_ids(void *arg, char *msg, size_t len)
{
	(void)arg;
	snprintf(msg, len, "%u %u %d", (unsigned)getuid(), (unsigned)geteuid(), getgroups(0, NULL));
	return 0;
}

static void test_work_runs_as_the_user_for_good(void **state)
{
	char msg[256];
	char want[64];

	(void)state;
	need_root();
	assert_int_equal(pl_run_as_user(&nobody, report_ids, NULL, 10, msg, sizeof(msg)), 0);
	snprintf(want, sizeof(want), "%u %u", (unsigned)nobody.uid, (unsigned)nobody.uid);
	assert_memory_equal(msg, want, strlen(want));
}

static int fail_with_reason(void *arg, char *msg, size_t len)
{
	(void)arg;
	snprintf(msg, len, "env.tar: Unrecognized archive format");
	return -1;
}

static void test_failure_reason_reaches_root(void **state)
{
	char msg[256];

	(void)state;
	need_root();
	assert_int_equal(pl_run_as_user(&nobody, fail_with_reason, NULL, 10, msg, sizeof(msg)), -1);
	assert_string_equal(msg, "env.tar: Unrecognized archive format");
}

static int hang(void *arg, char *msg, size_t len)
{
	(void)arg;
	(void)msg;
	(void)len;
	pause();
	return 0;
}

static void test_overrunning_work_is_killed(void **state)
{
	char msg[256];

	(void)state;
	need_root();
	assert_int_equal(pl_run_as_user(&nobody, hang, NULL, 1, msg, sizeof(msg)), -1);
	assert_non_null(strstr(msg, "did not finish within 1 s"));
}

static int write_into(void *arg, char *msg, size_t len)
{
	int fd = open(arg, O_WRONLY | O_CREAT | O_EXCL, 0600);

	if (fd < 0) {
		snprintf(msg, len, "%s", strerror(errno));
		return -1;
	}
	close(fd);
	return 0;
}

static void test_user_cannot_write_where_root_could(void **state)
{
	char path[300];
	char msg[256];

	(void)state;
	need_root();
	snprintf(path, sizeof(path), "%s/rootonly", tmp);
	assert_int_equal(pl_run_as_user(&nobody, write_into, path, 10, msg, sizeof(msg)), -1);
	assert_string_equal(msg, "Permission denied");
}

static void test_stage_base_made_root_owned(void **state)
{
	char base[300];
	char err[256];
	struct stat st;
	int fd;

	(void)state;
	need_root();
	snprintf(base, sizeof(base), "%s/stage", tmp);
	assert_int_equal(pl_stage_base_open(base, &fd, err, sizeof(err)), 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_uid, 0);
	assert_int_equal(st.st_mode & 07777, 0755);
	close(fd);
}

/* Nothing of ours is left beside the base once a plant is reclaimed. */
static int entries_in(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return n;
}

static void assert_root_base(int fd)
{
	struct stat st;

	assert_int_equal(fstat(fd, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_uid, 0);
	assert_int_equal(st.st_mode & 07777, 0755);
}

static void test_stage_base_symlink_reclaimed(void **state)
{
	char parent[300], base[320], victim[320], keep[340];
	char err[256] = "";
	int fd;

	(void)state;
	need_root();
	snprintf(parent, sizeof(parent), "%s/shm-link", tmp);
	snprintf(base, sizeof(base), "%s/pylaunch", parent);
	snprintf(victim, sizeof(victim), "%s/link-victim", tmp);
	snprintf(keep, sizeof(keep), "%s/keep", victim);
	assert_int_equal(mkdir(parent, 01777), 0);
	assert_int_equal(chmod(parent, 01777), 0);
	assert_int_equal(mkdir(victim, 0755), 0);
	close(open(keep, O_CREAT | O_WRONLY, 0644));
	assert_int_equal(symlink(victim, base), 0);
	assert_int_equal(pl_stage_base_open(base, &fd, err, sizeof(err)), 0);
	assert_root_base(fd);
	close(fd);
	assert_int_equal(entries_in(parent), 1);
	assert_int_equal(access(keep, F_OK), 0);
}

/* A user's `mkdir /dev/shm/pylaunch`, with a tree that resists: mode 000 directories and
 * a link to a file of root's, which must survive. */
static int plant_tree(void *arg, char *msg, size_t len)
{
	const char *base = arg;
	char path[400];

	(void)msg;
	(void)len;
	snprintf(path, sizeof(path), "%s/a", base);
	if (mkdir(base, 0755) < 0 || mkdir(path, 0700) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/a/b", base);
	if (mkdir(path, 0700) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/a/b/f", base);
	close(open(path, O_CREAT | O_WRONLY, 0600));
	snprintf(path, sizeof(path), "%s/passwd", base);
	if (symlink("/etc/passwd", path) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/a/b", base);
	chmod(path, 0);
	snprintf(path, sizeof(path), "%s/a", base);
	return chmod(path, 0);
}

static void test_stage_base_planted_dir_reclaimed(void **state)
{
	char parent[300], base[320];
	char err[256] = "";
	int fd;

	(void)state;
	need_root();
	snprintf(parent, sizeof(parent), "%s/shm-dir", tmp);
	snprintf(base, sizeof(base), "%s/pylaunch", parent);
	assert_int_equal(mkdir(parent, 01777), 0);
	assert_int_equal(chmod(parent, 01777), 0);
	assert_int_equal(pl_run_as_user(&nobody, plant_tree, base, 10, err, sizeof(err)), 0);
	assert_int_equal(pl_stage_base_open(base, &fd, err, sizeof(err)), 0);
	assert_root_base(fd);
	close(fd);
	assert_int_equal(entries_in(base), 0);
	assert_int_equal(entries_in(parent), 1);
	assert_int_equal(access("/etc/passwd", F_OK), 0);
	/* A plain file planted there goes too; a second open keeps what is now root's. */
	assert_int_equal(rmdir(base), 0);
	close(open(base, O_CREAT | O_WRONLY, 0644));
	assert_int_equal(pl_stage_base_open(base, &fd, err, sizeof(err)), 0);
	assert_root_base(fd);
	close(fd);
	assert_int_equal(entries_in(parent), 1);
}

static void test_job_dir_belongs_to_user_0700_and_status_round_trips(void **state)
{
	char base[300];
	char err[256];
	char status[64];
	struct stat st;
	int basefd, statefd;

	(void)state;
	need_root();
	snprintf(base, sizeof(base), "%s/stage2", tmp);
	assert_int_equal(pl_stage_base_open(base, &basefd, err, sizeof(err)), 0);
	assert_int_equal(pl_stage_job_dir(basefd, 42, &nobody, err, sizeof(err)), 0);
	assert_int_equal(fstatat(basefd, "42", &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_int_equal(st.st_uid, nobody.uid);
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(pl_stage_state_open(basefd, 42, &statefd, err, sizeof(err)), 0);
	errno = 0;
	assert_int_equal(pl_stage_status_read(statefd, "0123456789abcdef", status, sizeof(status)),
			 -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(pl_stage_status_write(statefd, "0123456789abcdef", "ok"), 0);
	assert_int_equal(pl_stage_status_read(statefd, "0123456789abcdef", status, sizeof(status)),
			 0);
	assert_string_equal(status, "ok");
	close(statefd);
	pl_stage_remove_job_entries(basefd, 42);
	assert_int_equal(fstatat(basefd, ".state/42", &st, AT_SYMLINK_NOFOLLOW), -1);
	assert_int_equal(fstatat(basefd, "42", &st, AT_SYMLINK_NOFOLLOW), -1);
	close(basefd);
}

static void test_purge_does_not_follow_links_and_opens_locked_dirs(void **state)
{
	char tree[300], victim[300], path[400];
	char err[256];
	int fd;

	(void)state;
	snprintf(tree, sizeof(tree), "%s/tree", tmp);
	snprintf(victim, sizeof(victim), "%s/victim", tmp);
	assert_int_equal(mkdir(victim, 0755), 0);
	snprintf(path, sizeof(path), "%s/keep", victim);
	fd = open(path, O_CREAT | O_WRONLY, 0644);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(mkdir(tree, 0700), 0);
	snprintf(path, sizeof(path), "%s/link", tree);
	assert_int_equal(symlink(victim, path), 0);
	snprintf(path, sizeof(path), "%s/locked", tree);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/locked/inner", tree);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/locked", tree);
	assert_int_equal(chmod(path, 0), 0);
	assert_int_equal(pl_remove_tree(tree, err, sizeof(err)), 0);
	assert_int_equal(access(tree, F_OK), -1);
	snprintf(path, sizeof(path), "%s/keep", victim);
	assert_int_equal(access(path, F_OK), 0);
}

/* ------------------------------------------------------------ nothing outlives the work */

struct daemonize {
	char lock[300]; /* a file the daemon holds locked while it lives */
	bool hang;	/* the work itself then never returns (the timeout kills it) */
};

/* Starts a daemon the way a hostile conda-unpack would (fork, setsid, hold on), waits until
 * it holds its lock, and returns (or hangs). */
static int start_daemon(void *arg, char *msg, size_t len)
{
	const struct daemonize *d = arg;
	int ready[2];
	char c;

	if (pipe(ready) < 0)
		return -1;
	if (fork() == 0) {
		int fd;

		setsid();
		if (fork() != 0)
			_exit(0);
		fd = open(d->lock, O_RDWR | O_CREAT, 0600);
		if (fd < 0 || flock(fd, LOCK_EX) < 0)
			_exit(1);
		if (write(ready[1], "x", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	if (read(ready[0], &c, 1) != 1) {
		snprintf(msg, len, "the daemon did not start");
		return -1;
	}
	while (d->hang)
		pause();
	return 0;
}

/* The daemon is gone once the lock is free: a process's locks go with it. */
static bool daemon_gone(const char *lock)
{
	int fd = open(lock, O_RDWR);
	bool gone = fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0;

	if (fd >= 0)
		close(fd);
	return gone;
}

static void daemon_dir(struct daemonize *d, const char *name)
{
	char dir[300];

	snprintf(dir, sizeof(dir), "%s/%s", tmp, name);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(chown(dir, nobody.uid, nobody.gid), 0);
	snprintf(d->lock, sizeof(d->lock), "%s/lock", dir);
}

static void test_setsid_daemon_does_not_outlive_the_work(void **state)
{
	struct daemonize d = {.hang = false};
	char msg[256];

	(void)state;
	need_root();
	daemon_dir(&d, "daemon-done");
	assert_int_equal(pl_run_as_user(&nobody, start_daemon, &d, 10, msg, sizeof(msg)), 0);
	assert_int_equal(access(d.lock, F_OK), 0);
	assert_true(daemon_gone(d.lock));
}

static void test_setsid_daemon_does_not_outlive_a_timeout(void **state)
{
	struct daemonize d = {.hang = true};
	char msg[256];

	(void)state;
	need_root();
	daemon_dir(&d, "daemon-hung");
	/* 3 s: time enough for the daemon to start, under valgrind too (its lock must exist). */
	assert_int_equal(pl_run_as_user(&nobody, start_daemon, &d, 3, msg, sizeof(msg)), -1);
	assert_non_null(strstr(msg, "did not finish within 3 s"));
	assert_int_equal(access(d.lock, F_OK), 0);
	assert_true(daemon_gone(d.lock));
}

/* close_range refused (seccomp, as a site's profile or an old kernel would): the daemon's
 * descriptors are closed one by one all the same. Needs no root. */
static void test_fds_closed_without_close_range(void **state)
{
	struct sock_filter filter[] = {
	    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_close_range, 0, 1),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {.len = 4, .filter = filter};
	int status;
	pid_t pid;

	(void)state;
	pid = fork();
	if (pid == 0) {
		int fd = open("/dev/null", O_RDONLY);

		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
		    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
			_exit(10);
		if (close_range(200, 200, 0) == 0 || errno != ENOSYS)
			_exit(11);
		dup2(fd, 10);
		dup2(fd, 20);
		dup2(fd, 30);
		dup2(fd, 1000);
		pl_close_inherited_fds(20, -1);
		if (fcntl(10, F_GETFD) != -1 || fcntl(30, F_GETFD) != -1 ||
		    fcntl(1000, F_GETFD) != -1)
			_exit(12);
		_exit(fcntl(20, F_GETFD) == -1 ? 13 : 0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---------------------------------------------------------------- the job's cgroup */

/* A stand-in for /sys/fs/cgroup under tmp: v1 controllers are directories with a cgroup.procs
 * (a plain file here, which the kernel would make). */
static void fake_file(const char *dir, const char *name)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	close(fd);
}

static void fake_mount(char *mount, size_t len, const char *name, bool slurm_dir)
{
	char dir[512];

	snprintf(mount, len, "%s/%s", tmp, name);
	assert_int_equal(mkdir(mount, 0755), 0);
	for (int i = 0; i < 2; i++) {
		snprintf(dir, sizeof(dir), "%s/%s", mount, i ? "freezer" : "memory");
		assert_int_equal(mkdir(dir, 0755), 0);
		fake_file(dir, "cgroup.procs");
	}
	/* proctrack/cgroup makes the node's directory in freezer when slurmd starts. */
	snprintf(dir, sizeof(dir), "%s/freezer/slurm_n1", mount);
	if (slurm_dir)
		assert_int_equal(mkdir(dir, 0755), 0);
}

static int ok_work(void *arg, char *msg, size_t len)
{
	(void)arg;
	snprintf(msg, len, "done");
	return 0;
}

static long pid_in(const char *dir)
{
	char path[512];
	long pid = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	f = fopen(path, "r");
	assert_non_null(f);
	if (fscanf(f, "%ld", &pid) != 1)
		pid = 0;
	fclose(f);
	return pid;
}

static void test_job_cgroup_made_and_joined_before_the_work(void **state)
{
	struct pl_job_cgroup cg;
	struct pl_user user;
	char mount[512], err[256], msg[256];
	struct stat st;

	(void)state;
	need_root();
	fake_mount(mount, sizeof(mount), "cg-joined", true);
	assert_int_equal(
	    pl_job_cgroup_prepare(mount, "n1", nobody.uid, 77, true, &cg, err, sizeof(err)), 0);
	assert_int_equal(cg.n, 2);
	for (size_t i = 0; i < cg.n; i++) {
		assert_non_null(strstr(cg.dirs[i], "/slurm_n1/uid_"));
		assert_non_null(strstr(cg.dirs[i], "/job_77"));
		/* Root's, like Slurm's own job directories. */
		assert_int_equal(stat(cg.dirs[i], &st), 0);
		assert_int_equal(st.st_uid, 0);
		fake_file(cg.dirs[i], "cgroup.procs");
	}
	user = nobody;
	user.cgroup = &cg;
	assert_int_equal(pl_run_as_user(&user, ok_work, NULL, 10, msg, sizeof(msg)), 0);
	for (size_t i = 0; i < cg.n; i++) {
		long pid = pid_in(cg.dirs[i]);

		assert_true(pid > 0 && pid != (long)getpid());
		unlink(strcat(cg.dirs[i], "/cgroup.procs"));
		*strrchr(cg.dirs[i], '/') = '\0';
	}
	/* The epilog removes what is empty: the job's and the user's, never the node's. */
	pl_job_cgroup_release(mount, "n1", nobody.uid, 77);
	for (size_t i = 0; i < cg.n; i++) {
		assert_int_equal(access(cg.dirs[i], F_OK), -1);
		*strrchr(cg.dirs[i], '/') = '\0';
		assert_int_equal(access(cg.dirs[i], F_OK), -1);
		*strrchr(cg.dirs[i], '/') = '\0';
		assert_int_equal(access(cg.dirs[i], F_OK), 0);
	}
}

/* A job cgroup that refuses the child: no user work runs, and the reason reaches root. */
static void test_job_cgroup_refusing_stops_the_work(void **state)
{
	struct pl_job_cgroup cg;
	struct pl_user user;
	char mount[512], err[256], msg[256];

	(void)state;
	need_root();
	fake_mount(mount, sizeof(mount), "cg-refused", true);
	assert_int_equal(
	    pl_job_cgroup_prepare(mount, "n1", nobody.uid, 78, true, &cg, err, sizeof(err)), 0);
	assert_int_equal(cg.n, 2);
	user = nobody;
	user.cgroup = &cg;
	assert_int_equal(pl_run_as_user(&user, ok_work, NULL, 10, msg, sizeof(msg)), -1);
	assert_non_null(strstr(msg, "cannot join the job's cgroup"));
	pl_job_cgroup_release(mount, "n1", nobody.uid, 78);
}

/* No cgroup plugin (no slurm directory) and cgroup v2: nothing is made, and that is no error. */
static void test_job_cgroup_none_without_slurm_or_on_v2(void **state)
{
	struct pl_job_cgroup cg;
	char mount[512], err[256], path[600];

	(void)state;
	need_root();
	fake_mount(mount, sizeof(mount), "cg-none", false);
	assert_int_equal(
	    pl_job_cgroup_prepare(mount, "n1", nobody.uid, 79, true, &cg, err, sizeof(err)), 0);
	assert_int_equal(cg.n, 0);
	assert_non_null(strstr(err, "no cgroup v1 hierarchy of Slurm's"));
	snprintf(path, sizeof(path), "%s/memory/slurm_n1", mount);
	assert_int_equal(access(path, F_OK), -1);
	fake_file(mount, "cgroup.controllers");
	snprintf(path, sizeof(path), "%s/freezer/slurm_n1", mount);
	assert_int_equal(mkdir(path, 0755), 0);
	assert_int_equal(
	    pl_job_cgroup_prepare(mount, "n1", nobody.uid, 79, true, &cg, err, sizeof(err)), 0);
	assert_int_equal(cg.n, 0);
	assert_non_null(strstr(err, "cgroup v2 at"));
	assert_non_null(strstr(err, "makes the job's cgroup after the prolog"));
}

/* ---------------------------------------------------------------- the work's memory */

static int wait_for_eof(void *arg, char *msg, size_t len)
{
	int fd = *(int *)arg;
	char c;

	while (read(fd, &c, 1) > 0)
		;
	snprintf(msg, len, "dumpable=%d", prctl(PR_GET_DUMPABLE));
	return 0;
}

/* The work process of the child (its only child, pid 1 of its namespace), from /proc. */
static pid_t work_pid(pid_t child)
{
	char path[64];
	long pid = 0;

	snprintf(path, sizeof(path), "/proc/%ld/task/%ld/children", (long)child, (long)child);
	for (int i = 0; i < 500 && pid <= 0; i++) {
		FILE *f = fopen(path, "r");

		if (f && fscanf(f, "%ld", &pid) != 1)
			pid = 0;
		if (f)
			fclose(f);
		if (pid <= 0)
			usleep(10000);
	}
	return (pid_t)pid;
}

/* What a process of the same user gets trying to read the work's memory: 0 read, else errno. */
static int peek_as(const struct pl_user *user, pid_t pid)
{
	char path[64];
	int status;
	pid_t p = fork();

	if (p == 0) {
		char err[128];
		int fd;

		if (pl_become_user(user, err, sizeof(err)) < 0)
			_exit(100);
		snprintf(path, sizeof(path), "/proc/%ld/mem", (long)pid);
		fd = open(path, O_RDONLY);
		_exit(fd >= 0 ? 0 : errno);
	}
	assert_int_equal(waitpid(p, &status, 0), p);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* The work holds a copy of the daemon's memory: the user's other processes cannot read it. */
static void test_users_processes_cannot_read_the_works_memory(void **state)
{
	struct pl_user_child child;
	char msg[256];
	int fds[2];
	pid_t work;

	(void)state;
	need_root();
	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	assert_int_equal(
	    pl_spawn_as_user(&nobody, wait_for_eof, &fds[0], fds[0], &child, msg, sizeof(msg)), 0);
	close(fds[0]);
	work = work_pid(child.pid);
	assert_true(work > 0);
	assert_int_equal(peek_as(&nobody, work), EACCES);
	close(fds[1]);
	assert_int_equal(pl_user_child_finish(&child, 10, msg, sizeof(msg)), 0);
	assert_string_equal(msg, "dumpable=0");
}

/* Slurm will limit the job's memory: the staging joins freezer alone. */
static void test_job_cgroup_without_memory_when_slurm_limits_it(void **state)
{
	struct pl_job_cgroup cg;
	char mount[512], err[256];

	(void)state;
	need_root();
	fake_mount(mount, sizeof(mount), "cg-nomem", true);
	assert_int_equal(
	    pl_job_cgroup_prepare(mount, "n1", nobody.uid, 80, false, &cg, err, sizeof(err)), 0);
	assert_int_equal(cg.n, 1);
	assert_non_null(strstr(cg.dirs[0], "/freezer/slurm_n1/uid_"));
	pl_job_cgroup_release(mount, "n1", nobody.uid, 80);
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* A step's staging: the job's memory cgroup only where Slurm made it (with its limit), and the
 * room that limit leaves, less the reserve; none without a limit or a cgroup. */
static void test_step_finds_the_jobs_memory_cgroup_and_its_room(void **state)
{
	struct pl_job_cgroup cg;
	char mount[512], dir[700], file[800];

	(void)state;
	fake_mount(mount, sizeof(mount), "cg-step", true);
	pl_job_cgroup_existing_memory(mount, "n1", 1000, 81, &cg);
	assert_int_equal(cg.n, 0); /* no memory hierarchy of Slurm's for the node yet */
	assert_true(pl_job_cgroup_memory_room(&cg, 0) == UINT64_MAX);
	snprintf(dir, sizeof(dir), "%s/memory/slurm_n1", mount);
	assert_int_equal(mkdir(dir, 0755), 0);
	pl_job_cgroup_existing_memory(mount, "n1", 1000, 81, &cg);
	assert_int_equal(cg.n, 0); /* the job's directory is not made here */
	assert_int_equal(access(strcat(dir, "/uid_1000"), F_OK), -1);
	assert_int_equal(mkdir(dir, 0755), 0);
	assert_int_equal(mkdir(strcat(dir, "/job_81"), 0755), 0);
	pl_job_cgroup_existing_memory(mount, "../n1", 1000, 81, &cg);
	assert_int_equal(cg.n, 0);
	pl_job_cgroup_existing_memory(mount, "n1", 1000, 81, &cg);
	assert_int_equal(cg.n, 1);
	assert_string_equal(cg.dirs[0], dir);
	assert_true(pl_job_cgroup_memory_room(&cg, 0) == UINT64_MAX); /* unreadable */
	snprintf(file, sizeof(file), "%s/memory.limit_in_bytes", dir);
	write_text(file, "536870912\n");
	snprintf(file, sizeof(file), "%s/memory.usage_in_bytes", dir);
	write_text(file, "3145728\n");
	assert_true(pl_job_cgroup_memory_room(&cg, 16 << 20) == (512u - 3 - 16) << 20);
	write_text(file, "520093696\n"); /* 496 MiB used: 16 MiB left, all of it the reserve */
	assert_true(pl_job_cgroup_memory_room(&cg, 16 << 20) == 0);
	snprintf(file, sizeof(file), "%s/memory.limit_in_bytes", dir);
	write_text(file, "9223372036854771712\n"); /* v1's "no limit" */
	assert_true(pl_job_cgroup_memory_room(&cg, 16 << 20) == UINT64_MAX);
}

/* cgroup v2: a step's own cgroup from /proc/self/cgroup, and the tightest room among it and
 * its ancestors (Slurm's job level, a step's, a site's slice); none on a v1 mount. */
static void test_v2_step_room_is_the_tightest_limit_above_it(void **state)
{
	const char *job = "/system.slice/n1_slurmstepd.scope/job_81";
	char mount[512], dir[900], file[1000], self[600];

	(void)state;
	snprintf(file, sizeof(file), "%s/proc-cgroup", tmp);
	write_text(file, "12:memory:/slurm/uid_1000/job_81\n0::/\n");
	assert_int_equal(pl_cgroup2_self_path(file, self, sizeof(self)), 0);
	assert_string_equal(self, "/");
	write_text(file, "0::/../outside\n");
	assert_int_equal(pl_cgroup2_self_path(file, self, sizeof(self)), -1);
	write_text(file, "1:name=systemd:/\n");
	assert_int_equal(pl_cgroup2_self_path(file, self, sizeof(self)), -1);
	snprintf(dir, sizeof(dir), "0::%s/step_0/slurm\n", job);
	write_text(file, dir);
	assert_int_equal(pl_cgroup2_self_path(file, self, sizeof(self)), 0);
	snprintf(dir, sizeof(dir), "%s/step_0/slurm", job);
	assert_string_equal(self, dir);

	snprintf(mount, sizeof(mount), "%s/cg2", tmp);
	snprintf(dir, sizeof(dir), "mkdir -p %s%s/step_0/slurm", mount, job);
	assert_int_equal(system(dir), 0);
	/* Not a cgroup2 root (no cgroup.controllers): no room to speak of. */
	assert_true(pl_cgroup2_memory_room(mount, self, 0) == UINT64_MAX);
	fake_file(mount, "cgroup.controllers");
	assert_true(pl_cgroup2_memory_room(mount, self, 0) == UINT64_MAX); /* no limit anywhere */
	snprintf(dir, sizeof(dir), "%s%s", mount, job);
	snprintf(file, sizeof(file), "%s/memory.max", dir);
	write_text(file, "536870912\n");
	snprintf(file, sizeof(file), "%s/memory.current", dir);
	write_text(file, "3145728\n");
	assert_true(pl_cgroup2_memory_room(mount, self, 16 << 20) == (512u - 3 - 16) << 20);
	/* The scope above says "max": no tighter. A slice above with less room: that one. */
	snprintf(file, sizeof(file), "%s/system.slice/n1_slurmstepd.scope/memory.max", mount);
	write_text(file, "max\n");
	snprintf(file, sizeof(file), "%s/system.slice/n1_slurmstepd.scope/memory.current", mount);
	write_text(file, "900000000\n");
	assert_true(pl_cgroup2_memory_room(mount, self, 16 << 20) == (512u - 3 - 16) << 20);
	snprintf(file, sizeof(file), "%s/system.slice/memory.max", mount);
	write_text(file, "1073741824\n");
	snprintf(file, sizeof(file), "%s/system.slice/memory.current", mount);
	write_text(file, "1040187392\n"); /* 992 MiB of 1 GiB */
	assert_true(pl_cgroup2_memory_room(mount, self, 16 << 20) == 16u << 20);
	snprintf(file, sizeof(file), "%s/memory.current", dir);
	write_text(file, "536870912\n"); /* the job's level full */
	assert_true(pl_cgroup2_memory_room(mount, self, 16 << 20) == 0);
	assert_true(pl_cgroup2_memory_room(mount, "relative", 0) == UINT64_MAX);
}

static void test_cgroup_conf_says_whether_slurm_limits_memory(void **state)
{
	char dir[512], conf[600], cgconf[600];

	(void)state;
	snprintf(dir, sizeof(dir), "%s/etc", tmp);
	assert_int_equal(mkdir(dir, 0755), 0);
	snprintf(conf, sizeof(conf), "%s/slurm.conf", dir);
	snprintf(cgconf, sizeof(cgconf), "%s/cgroup.conf", dir);
	/* Unreadable: assume a limit comes. */
	assert_true(pl_cgroup_conf_limits_memory(conf));
	write_text(cgconf, "CgroupPlugin=cgroup/v1\n#ConstrainRAMSpace=yes\nConstrainCores=yes\n");
	assert_false(pl_cgroup_conf_limits_memory(conf));
	write_text(cgconf, "CgroupPlugin=cgroup/v1\n  constrainramspace = Yes\n");
	assert_true(pl_cgroup_conf_limits_memory(conf));
	write_text(cgconf, "ConstrainRAMSpace=no\nConstrainSwapSpace=yes\n");
	assert_true(pl_cgroup_conf_limits_memory(conf));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_work_runs_as_the_user_for_good),
	    cmocka_unit_test(test_failure_reason_reaches_root),
	    cmocka_unit_test(test_overrunning_work_is_killed),
	    cmocka_unit_test(test_user_cannot_write_where_root_could),
	    cmocka_unit_test(test_stage_base_made_root_owned),
	    cmocka_unit_test(test_stage_base_symlink_reclaimed),
	    cmocka_unit_test(test_stage_base_planted_dir_reclaimed),
	    cmocka_unit_test(test_job_dir_belongs_to_user_0700_and_status_round_trips),
	    cmocka_unit_test(test_purge_does_not_follow_links_and_opens_locked_dirs),
	    cmocka_unit_test(test_setsid_daemon_does_not_outlive_the_work),
	    cmocka_unit_test(test_setsid_daemon_does_not_outlive_a_timeout),
	    cmocka_unit_test(test_fds_closed_without_close_range),
	    cmocka_unit_test(test_job_cgroup_made_and_joined_before_the_work),
	    cmocka_unit_test(test_job_cgroup_refusing_stops_the_work),
	    cmocka_unit_test(test_job_cgroup_none_without_slurm_or_on_v2),
	    cmocka_unit_test(test_users_processes_cannot_read_the_works_memory),
	    cmocka_unit_test(test_job_cgroup_without_memory_when_slurm_limits_it),
	    cmocka_unit_test(test_step_finds_the_jobs_memory_cgroup_and_its_room),
	    cmocka_unit_test(test_v2_step_room_is_the_tightest_limit_above_it),
	    cmocka_unit_test(test_cgroup_conf_says_whether_slurm_limits_memory),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
