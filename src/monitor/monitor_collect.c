/* The epilog's collector: every import log the hook wrote into the job's spool on this node,
 * read within its bounds (a user can fill the spool with junk), parsed and added to the node's
 * tally (monitor_node.c). */
#include "monitor_collect.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "monitor_collect_internal.h"

long long pl_mon_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------ the spool */

/* A file name fit for the slurmd log: what a user chose may hold anything. */
static void shown_name(const char *name, char *out, size_t len)
{
	size_t i;

	for (i = 0; name[i] && i + 1 < len && i < LOG_NAME_SHOWN; i++)
		out[i] = (name[i] >= 0x20 && name[i] < 0x7f) ? name[i] : '?';
	out[i] = '\0';
}

static void skip_log(struct collect_state *cs, const char *name, const char *reason)
{
	char shown[LOG_NAME_SHOWN + 1];

	cs->node->logs_skipped++;
	if (cs->skipped_named++ >= SKIP_LOG_NAMED)
		return;
	shown_name(name, shown, sizeof(shown));
	pl_info("monitor: job %s: skipping spool file \"%s\": %s", cs->job_id, shown, reason);
}

/* Reads the log into cs->buf; its length, or -1 with reason set. */
static ssize_t read_log(struct collect_state *cs, const char *name, const char **reason)
{
	struct stat st;
	ssize_t total = -1;
	size_t used = 0;
	int fd =
	    openat(cs->dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);

	if (fd < 0) {
		*reason = errno == ELOOP ? "a symbolic link" : strerror(errno);
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		*reason = strerror(errno);
		goto done;
	}
	if (!S_ISREG(st.st_mode)) {
		*reason = "not a regular file";
		goto done;
	}
	if (st.st_uid != cs->uid) {
		*reason = "not owned by the job's user";
		goto done;
	}
	if (st.st_nlink != 1) {
		*reason = "has other hard links";
		goto done;
	}
	if (st.st_size > PL_MON_LOG_MAX) {
		*reason = "larger than 1 MiB";
		goto done;
	}
	for (;;) {
		ssize_t n = read(fd, cs->buf + used, PL_MON_LOG_MAX + 1 - used);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*reason = strerror(errno);
			goto done;
		}
		if (n == 0)
			break;
		used += (size_t)n;
		if (used > PL_MON_LOG_MAX) {
			*reason = "larger than 1 MiB";
			goto done;
		}
	}
	total = (ssize_t)used;
done:
	close(fd);
	return total;
}

static bool has_suffix(const char *name, const char *suffix)
{
	size_t len = strlen(name), n = strlen(suffix);

	return len > n && strcmp(name + len - n, suffix) == 0;
}

static bool is_log_name(const char *name)
{
	return has_suffix(name, PL_MON_LOG_SUFFIX);
}

/* The pid a marker's name starts with ("123-ab.unlogged", "123.python-task"), or -1. */
static long long name_pid(const char *name)
{
	long long pid = 0;
	size_t i;

	for (i = 0; name[i] >= '0' && name[i] <= '9' && i < 10; i++)
		pid = pid * 10 + (name[i] - '0');
	return i > 0 && (name[i] == '-' || name[i] == '.') ? pid : -1;
}

/* 1 when name is a marker (counted), 0 when not, -1 when memory ran out. */
static int count_marker(struct pl_mon_node *node, const char *name)
{
	if (has_suffix(name, PL_MON_UNLOGGED_SUFFIX)) {
		node->unlogged++;
		return mc_add_pid(&node->log_pids, &node->n_log_pids, name_pid(name)) < 0 ? -1 : 1;
	}
	if (has_suffix(name, PL_MON_TASK_SUFFIX) && name_pid(name) >= 0) {
		node->python_tasks++;
		return mc_add_pid(&node->task_pids, &node->n_task_pids, name_pid(name)) < 0 ? -1
											    : 1;
	}
	return 0;
}

/* -1 only when memory ran out. */
static int collect_one(struct collect_state *cs, const char *name)
{
	struct pl_mon_process p;
	const char *reason = NULL;
	char err[128];
	ssize_t len = read_log(cs, name, &reason);
	int rc = 0;

	if (len < 0) {
		skip_log(cs, name, reason);
		return 0;
	}
	if (pl_mon_parse(cs->buf, (size_t)len, &p, err, sizeof(err)) < 0) {
		skip_log(cs, name, err);
		rc = strcmp(err, "out of memory") == 0 ? -1 : 0;
		goto done;
	}
	if (!p.job || strcmp(p.job, cs->job_id) != 0) {
		skip_log(cs, name, "written for another job");
		goto done;
	}
	cs->node->logs_read++;
	cs->node->lines_skipped += p.lines_skipped;
	rc = pl_mon_node_add(cs->node, &p);
done:
	pl_mon_process_free(&p);
	return rc;
}

int pl_mon_collect(int dir_fd, uid_t uid, const char *job_id, long long deadline_ms,
		   struct pl_mon_node *node)
{
	struct collect_state cs = {.dir_fd = dir_fd, .uid = uid, .job_id = job_id, .node = node};
	struct dirent *e;
	DIR *dir = NULL;
	int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = -1;

	if (fd < 0 || !(dir = fdopendir(fd))) {
		pl_error_errno(errno, "monitor: job %s: cannot read the spool", job_id);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (!(cs.buf = malloc(PL_MON_LOG_MAX + 1))) {
		pl_error("monitor: job %s: out of memory", job_id);
		goto done;
	}
	while ((e = readdir(dir))) {
		int marker = count_marker(node, e->d_name);

		if (marker == 0 && !is_log_name(e->d_name))
			continue;
		if (deadline_ms && pl_mon_now_ms() >= deadline_ms) {
			node->partial = true;
			break;
		}
		if (marker < 0 || (marker == 0 && collect_one(&cs, e->d_name) < 0)) {
			pl_error("monitor: job %s: out of memory; the record is partial", job_id);
			node->partial = true;
			break;
		}
	}
	pl_mon_node_match_tasks(node);
	if (cs.skipped_named > SKIP_LOG_NAMED)
		pl_info("monitor: job %s: %u more spool files skipped", job_id,
			cs.skipped_named - SKIP_LOG_NAMED);
	rc = 0;
done:
	free(cs.buf);
	closedir(dir);
	return rc;
}
