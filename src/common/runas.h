/* Running a piece of work as the job's user, from root.
 *
 * Nothing a user names is opened as root: the prolog, the epilog and slurmstepd
 * fork a child that takes the user's gid, supplementary groups and uid for good,
 * does the work, and reports one line back through a pipe. The parent bounds
 * the time and kills the child if it overruns.
 *
 * The work runs as pid 1 of a PID namespace of its own (the forked child makes it and
 * waits): when the work ends or is killed, the kernel kills whatever it started, a
 * setsid'd daemon of a bundle's conda-unpack included, so nothing a user put in a
 * bundle outlives the staging. Every descriptor of the daemon but the report pipe
 * and the data fd is closed in the child (close_range, or one by one where it fails).
 * The child is a fork of the process the plugin runs in (the per-job `slurmstepd spank
 * prolog/epilog`, a step's slurmstepd, or slurmd at start-up), not an exec'd helper: the work
 * marks itself non-dumpable after the change of identity, so no process of the user's can
 * ptrace it or read its memory (pylaunch(8), "Security"). */
#ifndef PL_RUNAS_H
#define PL_RUNAS_H

#include <stddef.h>
#include <sys/types.h>

struct pl_job_cgroup;

struct pl_user {
	uid_t uid;
	gid_t gid;
	/* The job's cgroup the child joins, as root, before anything of the user's runs (the
	 * prolog's work); NULL: it stays in the caller's. */
	const struct pl_job_cgroup *cgroup;
};

/* Runs in the child, as the user; returns 0 or -1, with a message in msg
 * either way (a summary on success, the reason on failure). */
typedef int (*pl_user_work_fn)(void *arg, char *msg, size_t msglen);

/* Returns 0 when work succeeded (msg: its summary); -1 with the reason in msg
 * when it failed, was killed by the timeout (seconds, 0 = none), or the child
 * could not be started or drop privileges. */
int pl_run_as_user(const struct pl_user *user, pl_user_work_fn work, void *arg, unsigned timeout,
		   char *msg, size_t msglen);

/* The same, without waiting: the child also keeps data_fd (-1: none), a pipe
 * or socket the work reads or writes (passed to it through arg); the caller
 * closes its own copy of that end and later collects the child's outcome. */
struct pl_user_child {
	pid_t pid;
	int report_fd; /* readable when the child reports or exits */
};

int pl_spawn_as_user(const struct pl_user *user, pl_user_work_fn work, void *arg, int data_fd,
		     struct pl_user_child *child, char *msg, size_t msglen);
/* Waits for the report (timeout seconds, 0 = none; past it the child is
 * killed) and reaps the child: 0 and its summary, or -1 and the reason. */
int pl_user_child_finish(struct pl_user_child *child, unsigned timeout, char *msg, size_t msglen);
/* Kills and reaps a child whose outcome no longer matters. */
void pl_user_child_kill(struct pl_user_child *child);

/* The child's closing of the daemon's descriptors: all but 0-2, report_fd and data_fd
 * (-1: none). Exposed for the unit tests. */
void pl_close_inherited_fds(int report_fd, int data_fd);

/* The child's half, exposed for the unit tests (which run unprivileged): takes
 * gid, groups and uid of user, in that order, and checks root cannot return. */
int pl_become_user(const struct pl_user *user, char *err, size_t errlen);

#endif
