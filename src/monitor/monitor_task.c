#include "monitor_task.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "monitor_collect.h"
#include "monitor_spool.h"

/* Longest PYTHONPATH handled; a longer one is left alone (and the task not monitored)
 * rather than cut. */
#define PYTHONPATH_MAX (128 * 1024)
#define PATH_LEN 4096

bool pl_monitor_opted_out(const char *value)
{
	static const char *const no[] = {"0", "no", "off", "false"};
	size_t len;

	if (!value)
		return false;
	while (isspace((unsigned char)*value))
		value++;
	len = strlen(value);
	while (len > 0 && isspace((unsigned char)value[len - 1]))
		len--;
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		if (strlen(no[i]) == len && strncasecmp(value, no[i], len) == 0)
			return true;
	return false;
}

int pl_monitor_job_spool(const char *spool_dir, uint32_t job_id, char *out, size_t len)
{
	int n = snprintf(out, len, "%s/%u", spool_dir, job_id);

	return (n < 0 || (size_t)n >= len) ? -1 : 0;
}

static int append(char *out, size_t len, size_t *used, const char *s, size_t n)
{
	if (*used + n >= len)
		return -1;
	memcpy(out + *used, s, n);
	*used += n;
	out[*used] = '\0';
	return 0;
}

int pl_monitor_pythonpath(const char *hook_dir, const char *existing, char *out, size_t len)
{
	size_t used = 0, hook_len = strlen(hook_dir);
	const char *p = existing;

	if (len == 0 || append(out, len, &used, hook_dir, hook_len) < 0)
		return -1;
	if (!existing || !*existing)
		return 0;
	for (;;) {
		const char *colon = strchr(p, ':');
		size_t n = colon ? (size_t)(colon - p) : strlen(p);

		if (!(n == hook_len && strncmp(p, hook_dir, n) == 0) &&
		    (append(out, len, &used, ":", 1) < 0 || append(out, len, &used, p, n) < 0))
			return -1;
		if (!colon)
			return 0;
		p = colon + 1;
	}
}

/* The task's value of name into buf: 1 set, 0 unset, -1 too long or an error. */
static int task_env(spank_t sp, const char *name, char *buf, int len)
{
	spank_err_t rc = spank_getenv(sp, name, buf, len);

	if (rc == ESPANK_SUCCESS)
		return 1;
	if (rc == ESPANK_ENV_NOEXIST)
		return 0;
	pl_error("monitor: cannot read %s of the task: %s", name, spank_strerror(rc));
	return -1;
}

static int set_task_env(spank_t sp, const char *name, const char *value)
{
	spank_err_t rc = spank_setenv(sp, name, value, 1);

	if (rc == ESPANK_SUCCESS)
		return 0;
	pl_error("monitor: cannot set %s for the task: %s", name, spank_strerror(rc));
	return -1;
}

/* The hook the prolog copied, checked as the user who will run it. */
static bool hook_ready(const char *hook_dir)
{
	char file[PATH_LEN];
	struct stat st;

	if (snprintf(file, sizeof(file), "%s/%s", hook_dir, PL_MONITOR_HOOK_FILE) >=
	    (int)sizeof(file))
		return false;
	return stat(file, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == getuid();
}

static int set_monitor_env(spank_t sp, const char *spool, const char *hook_dir, uint32_t job_id)
{
	char *existing = malloc(PYTHONPATH_MAX);
	char *path = malloc(PYTHONPATH_MAX + PATH_LEN);
	char job[16];
	int has, rc = -1;

	if (!existing || !path) {
		pl_error("monitor: out of memory");
		goto fail;
	}
	if ((has = task_env(sp, "PYTHONPATH", existing, PYTHONPATH_MAX)) < 0)
		goto fail;
	if (pl_monitor_pythonpath(hook_dir, has ? existing : NULL, path,
				  PYTHONPATH_MAX + PATH_LEN) < 0) {
		pl_error("monitor: PYTHONPATH too long; the task is not monitored");
		goto fail;
	}
	snprintf(job, sizeof(job), "%u", job_id);
	if (set_task_env(sp, "PYTHONPATH", path) < 0 ||
	    set_task_env(sp, PL_MONITOR_ENV_SPOOL, spool) < 0 ||
	    set_task_env(sp, PL_MONITOR_ENV_JOB, job) < 0)
		goto fail;
	rc = 0;
fail:
	free(existing);
	free(path);
	return rc;
}

bool pl_monitor_is_python(const char *argv0)
{
	static const char *const names[] = {"python", "pypy"};
	const char *base;

	if (!argv0)
		return false;
	base = strrchr(argv0, '/');
	base = base ? base + 1 : argv0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		size_t n = strlen(names[i]);

		if (strncmp(base, names[i], n) == 0 &&
		    strspn(base + n, "0123456789.") == strlen(base + n))
			return true;
	}
	return false;
}

int pl_monitor_note_python_task(const char *spool, const char *argv0, long pid)
{
	char path[PATH_LEN];
	int fd;

	if (!pl_monitor_is_python(argv0))
		return 0;
	if (snprintf(path, sizeof(path), "%s/%ld%s", spool, pid, PL_MON_TASK_SUFFIX) >=
	    (int)sizeof(path))
		return -1;
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		pl_error_errno(errno, "monitor: cannot note the Python task in %s", spool);
		return -1;
	}
	close(fd);
	return 0;
}

/* The task's argv[0] (S_JOB_ARGV), or NULL. */
static const char *task_argv0(spank_t sp)
{
	int argc = 0;
	char **argv = NULL;

	if (spank_get_item(sp, S_JOB_ARGV, &argc, &argv) != ESPANK_SUCCESS || argc < 1 || !argv)
		return NULL;
	return argv[0];
}

int pl_monitor_task_env(spank_t sp, const char *spool_dir, uint32_t job_id)
{
	char value[64];
	char spool[PATH_LEN], hook_dir[PATH_LEN];

	if (task_env(sp, PL_MONITOR_ENV_OPT_OUT, value, sizeof(value)) == 1 &&
	    pl_monitor_opted_out(value)) {
		pl_debug("monitor: job %u: %s=%s, the task is not monitored", job_id,
			 PL_MONITOR_ENV_OPT_OUT, value);
		return 0;
	}
	if (pl_monitor_job_spool(spool_dir, job_id, spool, sizeof(spool)) < 0 ||
	    snprintf(hook_dir, sizeof(hook_dir), "%s/%s", spool, PL_MONITOR_HOOK_DIR_NAME) >=
		(int)sizeof(hook_dir)) {
		pl_error("monitor: job %u: spool path too long", job_id);
		return -1;
	}
	if (!hook_ready(hook_dir)) {
		pl_info("monitor: job %u: no hook in %s on this node; the task is not monitored",
			job_id, hook_dir);
		return 0;
	}
	if (set_monitor_env(sp, spool, hook_dir, job_id) < 0)
		return -1;
	/* task_init runs in the task's process before the exec: its pid is the program's. */
	pl_monitor_note_python_task(spool, task_argv0(sp), (long)getpid());
	return 0;
}
