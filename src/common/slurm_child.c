#include "slurm_child.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <slurm/slurm.h>
#include <slurm/slurm_errno.h>
#include <slurm/slurm_version.h>

/* slurmctld answers in MessageTimeout (10 s by default); a child still busy after this is
 * stuck, and the epilog must not wait for it. */
#define CHILD_TIMEOUT_MS 20000

/* Not in Slurm's public headers but exported by libslurmfull (read_config.h), with the same
 * signature on every release from 22.05 to 26.05. Looked up at run time: the plugin must load
 * with BIND_NOW in srun and sbatch too, where only libslurm may be present. */
typedef int (*conf_reinit_fn)(const char *file);
typedef void (*slurm_init_fn)(const char *conf);
typedef int (*get_addr_fn)(const char *node, struct sockaddr_storage *addr, uint16_t flags);
#if SLURM_VERSION_NUMBER >= SLURM_VERSION_NUM(26, 5, 0)
/* 26.05 names a job by slurm_step_id_t (slurm.h maps the old call onto it by a macro). */
typedef int (*load_job_fn)(job_info_msg_t **resp, slurm_step_id_t id, uint16_t show_flags);
#else
typedef int (*load_job_fn)(job_info_msg_t **resp, uint32_t job_id, uint16_t show_flags);
#endif

typedef void (*child_fn)(int wfd, const void *arg);

static void *slurm_sym(const char *name)
{
	return dlsym(RTLD_DEFAULT, name);
}

/* In the child: the full configuration from slurm.conf ($SLURM_CONF, which slurmd sets for
 * prolog and epilog, configless sites included), then the client plugins where the release
 * has slurm_init() (23.02+; on 22.05 the process has them already). */
static int child_init(void)
{
	conf_reinit_fn reinit = (conf_reinit_fn)slurm_sym("slurm_conf_reinit");
	slurm_init_fn init = (slurm_init_fn)slurm_sym("slurm_init");

	if (!reinit || reinit(NULL) != 0)
		return -1;
	if (init)
		init(NULL);
	return 0;
}

static void write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(3);
		p += n;
		len -= (size_t)n;
	}
}

static void describe_status(int status, char *err, size_t errlen)
{
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		snprintf(err, errlen, "slurmctld gave no clear answer");
	else if (WIFSIGNALED(status))
		snprintf(err, errlen, "the query process was killed by signal %d (%s)",
			 WTERMSIG(status), strsignal(WTERMSIG(status)));
	else if (WIFEXITED(status) && WEXITSTATUS(status) == 2)
		snprintf(err, errlen, "the query process could not read slurm.conf");
	else if (WIFEXITED(status) && WEXITSTATUS(status) == 4)
		snprintf(err, errlen, "Slurm's library does not export what the query needs");
	else if (WIFEXITED(status) && WEXITSTATUS(status) == 5)
		snprintf(err, errlen, "slurm.conf has no address for the node");
	else if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
		snprintf(err, errlen,
			 "the query process exited with status %d (a fatal error "
			 "of Slurm's library: see the lines above)",
			 WEXITSTATUS(status));
}

static long ms_left(const struct timespec *deadline)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (deadline->tv_sec - now.tv_sec) * 1000 + (deadline->tv_nsec - now.tv_nsec) / 1000000;
}

/* Reads what the child writes until it closes the pipe or the time is up. */
static size_t read_answer(int rfd, char *buf, size_t len, bool *timed_out)
{
	struct timespec deadline;
	size_t got = 0;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += CHILD_TIMEOUT_MS / 1000;
	*timed_out = false;
	for (;;) {
		struct pollfd pfd = {.fd = rfd, .events = POLLIN};
		long left = ms_left(&deadline);
		ssize_t n;

		if (left <= 0 || poll(&pfd, 1, (int)left) == 0) {
			*timed_out = true;
			return got;
		}
		n = read(rfd, buf + got, len - got);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			return got;
		got += (size_t)n;
		if (got == len)
			return got;
	}
}

static void reap(pid_t pid, bool kill_it, int *status)
{
	if (kill_it)
		kill(pid, SIGKILL);
	while (waitpid(pid, status, 0) < 0 && errno == EINTR)
		;
}

/* Runs fn(wfd, arg) in a child and reads up to len bytes of its answer into buf: how many. */
static size_t run_child(child_fn fn, const void *arg, void *buf, size_t len, char *err,
			size_t errlen)
{
	int fds[2];
	int status = 0;
	bool timed_out;
	size_t got;
	pid_t pid;

	snprintf(err, errlen, "no answer");
	if (pipe2(fds, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return 0;
	}
	pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return 0;
	}
	if (pid == 0) {
		close(fds[0]);
		signal(SIGPIPE, SIG_DFL);
		if (child_init() < 0)
			_exit(2);
		fn(fds[1], arg);
		_exit(0);
	}
	close(fds[1]);
	got = read_answer(fds[0], buf, len, &timed_out);
	close(fds[0]);
	/* A child of a threaded process can block for good on a lock another thread held at the
	 * fork (malloc's, Slurm's): once it has answered, it is not waited for. */
	reap(pid, timed_out || got == len, &status);
	if (got == len)
		snprintf(err, errlen, "slurmctld gave no clear answer");
	else if (timed_out)
		snprintf(err, errlen, "the query process gave no answer in %d s",
			 CHILD_TIMEOUT_MS / 1000);
	else
		describe_status(status, err, errlen);
	return got;
}

/* ---------------------------------------------------------------- jobs */

struct job_query {
	const uint32_t *ids;
	size_t n;
};

static int load_job(load_job_fn load, job_info_msg_t **msg, uint32_t job_id)
{
#if SLURM_VERSION_NUMBER >= SLURM_VERSION_NUM(26, 5, 0)
	slurm_step_id_t id = SLURM_STEP_ID_INITIALIZER;

	id.job_id = job_id;
	return load(msg, id, SHOW_ALL);
#else
	return load(msg, job_id, SHOW_ALL);
#endif
}

static enum pl_job_fate fate_of_state(uint32_t state)
{
	if (state & JOB_COMPLETING)
		return PL_JOB_ALIVE;
	switch (state & JOB_STATE_BASE) {
	case JOB_PENDING:
	case JOB_RUNNING:
	case JOB_SUSPENDED:
		return PL_JOB_ALIVE;
	default:
		return PL_JOB_OVER;
	}
}

/* Only a clear answer counts: "no such job" from slurmctld, or the job's own record. An error
 * of any other kind, an empty answer or another job's record is "cannot tell" - a running
 * job's tree must never go because a query failed. */
static enum pl_job_fate ask_one(load_job_fn load, uint32_t job_id)
{
	job_info_msg_t *msg = NULL;
	enum pl_job_fate fate = PL_JOB_UNKNOWN;

	if (load_job(load, &msg, job_id) != 0)
		return errno == ESLURM_INVALID_JOB_ID ? PL_JOB_OVER : PL_JOB_UNKNOWN;
	if (msg && msg->record_count >= 1 && msg->job_array[0].job_id == job_id)
		fate = fate_of_state(msg->job_array[0].job_state);
	/* Not freed: the child ends in a moment, and free() is one more lock it could hang on. */
	return fate;
}

static void ask_jobs(int wfd, const void *arg)
{
	const struct job_query *q = arg;
	load_job_fn load = (load_job_fn)slurm_sym("slurm_load_job");

	if (!load)
		_exit(4);
	for (size_t i = 0; i < q->n; i++) {
		unsigned char fate = (unsigned char)ask_one(load, q->ids[i]);

		write_all(wfd, &fate, 1);
	}
}

size_t pl_slurm_job_fates(const uint32_t *ids, size_t n, enum pl_job_fate *fates, char *err,
			  size_t errlen)
{
	struct job_query q = {.ids = ids, .n = n};
	unsigned char answer[PL_SLURM_MAX_JOBS] = {0};
	size_t got;

	if (n > PL_SLURM_MAX_JOBS)
		n = PL_SLURM_MAX_JOBS;
	q.n = n;
	got = n ? run_child(ask_jobs, &q, answer, n, err, errlen) : 0;
	for (size_t i = 0; i < n; i++)
		fates[i] = i < got && answer[i] <= PL_JOB_OVER ? (enum pl_job_fate)answer[i]
							       : PL_JOB_UNKNOWN;
	return got;
}

/* ---------------------------------------------------------------- configuration */

/* The whole slurm_conf symbol is read in the child, where it is the full configuration. */
static void ask_prolog_flags(int wfd, const void *arg)
{
	const slurm_conf_t *conf = slurm_sym("slurm_conf");
	uint16_t flags;

	(void)arg;
	if (!conf)
		_exit(4);
	flags = conf->prolog_flags;
	write_all(wfd, &flags, sizeof(flags));
}

int pl_slurm_conf_prolog_alloc(bool *alloc, char *err, size_t errlen)
{
	uint16_t flags = 0;

	if (run_child(ask_prolog_flags, NULL, &flags, sizeof(flags), err, errlen) != sizeof(flags))
		return -1;
	*alloc = (flags & PROLOG_FLAG_ALLOC) != 0;
	return 0;
}

static void ask_node_addr(int wfd, const void *arg)
{
	get_addr_fn get_addr = (get_addr_fn)slurm_sym("slurm_conf_get_addr");
	struct sockaddr_storage addr;

	memset(&addr, 0, sizeof(addr));
	if (!get_addr || get_addr(arg, &addr, 0) != 0)
		_exit(5);
	write_all(wfd, &addr, sizeof(addr));
}

int pl_slurm_conf_node_addr(const char *node, struct sockaddr_storage *addr, socklen_t *len,
			    char *err, size_t errlen)
{
	memset(addr, 0, sizeof(*addr));
	if (run_child(ask_node_addr, node, addr, sizeof(*addr), err, errlen) != sizeof(*addr))
		return -1;
	return pl_sockaddr_len(addr, len);
}

int pl_sockaddr_len(const struct sockaddr_storage *addr, socklen_t *len)
{
	if (addr->ss_family == AF_INET)
		*len = sizeof(struct sockaddr_in);
	else if (addr->ss_family == AF_INET6)
		*len = sizeof(struct sockaddr_in6);
	else
		return -1;
	return 0;
}
