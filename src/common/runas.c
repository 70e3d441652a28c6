#include "runas.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "job_cgroup.h"

/* Bound of the one-by-one close when close_range is unavailable and the limit is huge. */
#define PL_FD_SCAN_MAX 65535
#define STOP_GRACE_MS 2000

static int set_user_groups(const struct pl_user *user, char *err, size_t errlen)
{
	struct passwd *pw = getpwuid(user->uid);

	/* A uid without a passwd entry still gets a clean group list: only its gid. */
	if (pw ? initgroups(pw->pw_name, user->gid) : setgroups(1, &user->gid)) {
		snprintf(err, errlen, "cannot set the groups of uid %u: %s", (unsigned)user->uid,
			 strerror(errno));
		return -1;
	}
	return 0;
}

int pl_become_user(const struct pl_user *user, char *err, size_t errlen)
{
	/* A job of root's stays root; everyone else's never is. */
	if (getuid() == user->uid && geteuid() == user->uid)
		return 0;
	if (set_user_groups(user, err, errlen) < 0)
		return -1;
	if (setresgid(user->gid, user->gid, user->gid) < 0 ||
	    setresuid(user->uid, user->uid, user->uid) < 0) {
		snprintf(err, errlen, "cannot become uid %u gid %u: %s", (unsigned)user->uid,
			 (unsigned)user->gid, strerror(errno));
		return -1;
	}
	if (setuid(0) == 0) {
		snprintf(err, errlen, "privileges were not dropped");
		return -1;
	}
	return 0;
}

/* fds lo..hi closed; close_range(2) can be missing (kernels before 5.9) or refused (seccomp):
 * then one by one, up to the descriptor limit, so nothing of the daemon's stays open. */
static void close_fd_range(unsigned lo, unsigned hi)
{
	struct rlimit rl;
	unsigned last = hi;

	if (lo > hi || close_range(lo, hi, 0) == 0)
		return;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur <= (rlim_t)hi)
		last = rl.rlim_cur ? (unsigned)rl.rlim_cur - 1 : 0;
	if (last > PL_FD_SCAN_MAX)
		last = PL_FD_SCAN_MAX;
	for (unsigned fd = lo; fd <= last && fd >= lo; fd++)
		close((int)fd);
}

void pl_close_inherited_fds(int report_fd, int data_fd)
{
	int lo = report_fd < data_fd ? report_fd : data_fd;
	int hi = report_fd < data_fd ? data_fd : report_fd;
	unsigned from = 3;

	if (lo >= 3) {
		if ((unsigned)lo > from)
			close_fd_range(from, (unsigned)lo - 1);
		from = (unsigned)lo + 1;
	}
	if (hi >= 3 && (unsigned)hi > from)
		close_fd_range(from, (unsigned)hi - 1);
	close_fd_range(hi >= 0 && (unsigned)hi + 1 > from ? (unsigned)hi + 1 : from, ~0U);
}

/* The work's process, pid 1 of its own PID namespace: when it ends, or is killed, the kernel
 * kills every process left in the namespace, so nothing the work started (conda-unpack and a
 * setsid child of it) outlives it. It never returns: reports "0" or "1<message>" and exits. */
static void run_work(int fd, int alive_fd, const struct pl_user *user, pl_user_work_fn work,
		     void *arg)
{
	struct pollfd p = {.fd = alive_fd, .events = POLLIN};
	char msg[1024];
	int rc;

	msg[0] = '0';
	msg[1] = '\0';
	rc = pl_become_user(user, msg + 1, sizeof(msg) - 1);
	/* This process holds a copy of the daemon's memory: no process of the user's (their
	 * tasks, or conda-unpack, which is exec'd and so dumpable again in its own image) may
	 * ptrace it or read /proc/PID/mem, whatever fs.suid_dumpable says. */
	prctl(PR_SET_DUMPABLE, 0);
	/* An orphaned work must not outlive a killed prolog. Set after the change of identity,
	 * which clears it; the parent's end of alive_fd is closed when it has died already. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (poll(&p, 1, 0) != 0)
		_exit(1);
	close(alive_fd);
	if (rc == 0)
		rc = work(arg, msg + 1, sizeof(msg) - 1);
	if (rc < 0)
		msg[0] = '1';
	if (write(fd, msg, strlen(msg)) < 0)
		_exit(3);
	_exit(rc < 0 ? 1 : 0);
}

static volatile sig_atomic_t stop_requested;

static void request_stop(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* Ends as the work ended: its exit status, or its signal. */
_Noreturn static void exit_like(int status)
{
	if (WIFSIGNALED(status)) {
		signal(WTERMSIG(status), SIG_DFL);
		kill(getpid(), WTERMSIG(status));
		_exit(128 + WTERMSIG(status));
	}
	_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 1);
}

/* Before the namespace and the work: what they start is charged to the job. A job cgroup that
 * refuses us ends the work (reported as its failure): no user work runs outside it. */
static void join_job_cgroup(int fd, const struct pl_user *user)
{
	char msg[1024] = "1";

	if (pl_job_cgroup_join(user->cgroup, msg + 1, sizeof(msg) - 1) == 0)
		return;
	if (write(fd, msg, strlen(msg)) < 0)
		_exit(3);
	_exit(1);
}

/* The child root forked: makes the namespace and waits for the work in it. SIGTERM (the
 * parent's timeout) kills the work, and so the whole namespace, before this one goes; a
 * SIGKILL instead still ends the work through its PR_SET_PDEATHSIG. */
static void run_child(int fd, int data_fd, const struct pl_user *user, pl_user_work_fn work,
		      void *arg)
{
	struct sigaction sa = {.sa_handler = request_stop};
	pid_t parent = getppid();
	int alive[2];
	int status;
	pid_t pid;

	pl_close_inherited_fds(fd, data_fd);
	join_job_cgroup(fd, user);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent || pipe2(alive, O_CLOEXEC) < 0)
		_exit(1);
	/* Without CAP_SYS_ADMIN (an unprivileged test) the work runs in this namespace. */
	(void)unshare(CLONE_NEWPID);
	pid = fork();
	if (pid == 0) {
		close(alive[1]);
		run_work(fd, alive[0], user, work, arg);
	}
	close(alive[0]);
	close(fd);
	if (data_fd >= 0)
		close(data_fd);
	if (pid < 0)
		_exit(1);
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			_exit(1);
		if (stop_requested)
			kill(pid, SIGKILL);
	}
	exit_like(status);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads the child's report until EOF or the deadline; 1 when the deadline hit. */
static int read_report(int fd, unsigned timeout, char *buf, size_t len)
{
	long long deadline = timeout ? now_ms() + (long long)timeout * 1000 : 0;
	size_t used = 0;

	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int wait_ms = deadline ? (int)(deadline - now_ms()) : -1;
		ssize_t n;

		if (deadline && wait_ms <= 0)
			return 1;
		if (poll(&p, 1, wait_ms) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (p.revents == 0)
			continue;
		n = read(fd, buf + used, len - 1 - used);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || used + (size_t)n >= len - 1) {
			used += n > 0 ? (size_t)n : 0;
			buf[used] = '\0';
			return 0;
		}
		used += (size_t)n;
	}
}

static int reap(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return status;
}

/* SIGTERM first: the child then kills the work's namespace and waits until every process in
 * it is gone; SIGKILL if it has not ended after STOP_GRACE_MS. The caller reaps it. */
static void stop(pid_t pid)
{
	kill(pid, SIGTERM);
	for (int waited = 0; waited < STOP_GRACE_MS; waited += 10) {
		siginfo_t info = {0};

		/* WNOWAIT: the caller reaps it. */
		if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
		    info.si_pid == pid)
			return;
		usleep(10000);
	}
	kill(pid, SIGKILL);
}

int pl_spawn_as_user(const struct pl_user *user, pl_user_work_fn work, void *arg, int data_fd,
		     struct pl_user_child *child, char *msg, size_t msglen)
{
	int fds[2];

	child->pid = -1;
	child->report_fd = -1;
	if (pipe2(fds, O_CLOEXEC) < 0) {
		snprintf(msg, msglen, "pipe: %s", strerror(errno));
		return -1;
	}
	child->pid = fork();
	if (child->pid < 0) {
		snprintf(msg, msglen, "fork: %s", strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (child->pid == 0) {
		close(fds[0]);
		/* The data fd was opened close-on-exec like every fd of ours, but the
		 * work may exec (conda-unpack) and must not hand it on: keep the flag. */
		run_child(fds[1], data_fd, user, work, arg);
	}
	close(fds[1]);
	child->report_fd = fds[0];
	return 0;
}

static int describe_end(const char *report, int status, char *msg, size_t msglen)
{
	if (report[0] == '0' && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		snprintf(msg, msglen, "%s", report + 1);
		return 0;
	}
	if (report[0] == '1')
		snprintf(msg, msglen, "%s", report + 1);
	else if (WIFSIGNALED(status))
		snprintf(msg, msglen, "killed by signal %d", WTERMSIG(status));
	else
		snprintf(msg, msglen, "failed without a reason (exit status %d)",
			 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return -1;
}

int pl_user_child_finish(struct pl_user_child *child, unsigned timeout, char *msg, size_t msglen)
{
	char report[1024] = "";
	int timed_out;
	int status;

	timed_out = read_report(child->report_fd, timeout, report, sizeof(report));
	close(child->report_fd);
	child->report_fd = -1;
	if (timed_out == 1)
		stop(child->pid);
	status = reap(child->pid);
	child->pid = -1;
	if (timed_out == 1) {
		snprintf(msg, msglen, "did not finish within %u s (stage.timeout)", timeout);
		return -1;
	}
	return describe_end(report, status, msg, msglen);
}

void pl_user_child_kill(struct pl_user_child *child)
{
	if (child->pid > 0) {
		stop(child->pid);
		reap(child->pid);
		child->pid = -1;
	}
	if (child->report_fd >= 0)
		close(child->report_fd);
	child->report_fd = -1;
}

int pl_run_as_user(const struct pl_user *user, pl_user_work_fn work, void *arg, unsigned timeout,
		   char *msg, size_t msglen)
{
	struct pl_user_child child;

	if (pl_spawn_as_user(user, work, arg, -1, &child, msg, msglen) < 0)
		return -1;
	return pl_user_child_finish(&child, timeout, msg, msglen);
}
