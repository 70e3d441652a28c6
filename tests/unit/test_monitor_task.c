/* Unit tests of src/monitor/monitor_task.c: the environment task_init gives a monitored task,
 * against a stand-in for the SPANK environment calls. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above first. */
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "monitor_task.h"
#include "slurm_log_stub.h"

/* ------------------------------------------------------------------ a task's environment */

#define ENV_MAX 16

struct spank_handle {
	char *name[ENV_MAX];
	char *value[ENV_MAX];
	int n;
};

static int env_find(spank_t sp, const char *name)
{
	for (int i = 0; i < sp->n; i++)
		if (strcmp(sp->name[i], name) == 0)
			return i;
	return -1;
}

spank_err_t spank_getenv(spank_t sp, const char *var, char *buf, int len)
{
	int i = env_find(sp, var);

	if (i < 0)
		return ESPANK_ENV_NOEXIST;
	if ((int)strlen(sp->value[i]) >= len)
		return ESPANK_NOSPACE;
	strcpy(buf, sp->value[i]);
	return ESPANK_SUCCESS;
}

spank_err_t spank_setenv(spank_t sp, const char *var, const char *val, int overwrite)
{
	int i = env_find(sp, var);

	if (i >= 0 && !overwrite)
		return ESPANK_ENV_EXISTS;
	if (i < 0) {
		i = sp->n++;
		sp->name[i] = strdup(var);
	} else {
		free(sp->value[i]);
	}
	sp->value[i] = strdup(val);
	return ESPANK_SUCCESS;
}

/* The task's command line, for S_JOB_ARGV. */
static char *task_argv[2] = {"/usr/bin/python3.11", NULL};
static int task_argc = 1;

spank_err_t spank_get_item(spank_t sp, spank_item_t item, ...)
{
	va_list ap;

	(void)sp;
	if (item != S_JOB_ARGV)
		return ESPANK_BAD_ARG;
	va_start(ap, item);
	*va_arg(ap, int *) = task_argc;
	*va_arg(ap, char ***) = task_argv;
	va_end(ap);
	return ESPANK_SUCCESS;
}

const char *spank_strerror(spank_err_t err)
{
	return err == ESPANK_NOSPACE ? "Insufficient space in buffer" : "error";
}

static const char *env_get(spank_t sp, const char *name)
{
	int i = env_find(sp, name);

	return i < 0 ? NULL : sp->value[i];
}

static void env_free(spank_t sp)
{
	for (int i = 0; i < sp->n; i++) {
		free(sp->name[i]);
		free(sp->value[i]);
	}
	sp->n = 0;
}

/* ------------------------------------------------------------------ pure helpers */

static void test_opted_out(void **state)
{
	(void)state;
	assert_true(pl_monitor_opted_out("0"));
	assert_true(pl_monitor_opted_out("no"));
	assert_true(pl_monitor_opted_out("NO"));
	assert_true(pl_monitor_opted_out(" off\n"));
	assert_true(pl_monitor_opted_out("False"));
	assert_false(pl_monitor_opted_out(NULL));
	assert_false(pl_monitor_opted_out(""));
	assert_false(pl_monitor_opted_out("1"));
	assert_false(pl_monitor_opted_out("yes"));
	assert_false(pl_monitor_opted_out("nope"));
	assert_false(pl_monitor_opted_out("00"));
}

static void test_job_spool(void **state)
{
	char out[32];

	(void)state;
	assert_int_equal(pl_monitor_job_spool("/dev/shm/sp", 4294967295U, out, sizeof(out)), 0);
	assert_string_equal(out, "/dev/shm/sp/4294967295");
	assert_int_equal(pl_monitor_job_spool("/dev/shm/spool", 4294967295U, out, 20), -1);
}

static void assert_path(const char *existing, const char *want)
{
	char out[256];

	assert_int_equal(pl_monitor_pythonpath("/s/7/.hook", existing, out, sizeof(out)), 0);
	assert_string_equal(out, want);
}

static void test_pythonpath(void **state)
{
	char small[16];

	(void)state;
	assert_path(NULL, "/s/7/.hook");
	assert_path("", "/s/7/.hook");
	assert_path("/a:/b", "/s/7/.hook:/a:/b");
	/* Not twice, when an srun inherits it from the batch step. */
	assert_path("/s/7/.hook:/a", "/s/7/.hook:/a");
	assert_path("/a:/s/7/.hook:/b:/s/7/.hook", "/s/7/.hook:/a:/b");
	assert_path("/s/7/.hook", "/s/7/.hook");
	assert_path("/s/7/.hooks:/s/7", "/s/7/.hook:/s/7/.hooks:/s/7");
	/* The user's empty entries (the current directory) stay as they were. */
	assert_path("/a::/b", "/s/7/.hook:/a::/b");
	assert_path(":/a", "/s/7/.hook::/a");
	assert_path("/a:", "/s/7/.hook:/a:");
	assert_int_equal(pl_monitor_pythonpath("/s/7/.hook", "/abcdef", small, sizeof(small)), -1);
	assert_int_equal(pl_monitor_pythonpath("/s/7/.hook", NULL, small, 10), -1);
}

/* ------------------------------------------------------------------ task_init */

struct fixture {
	char spool[64];
	char hook[128];
	struct spank_handle env;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char path[160];
	FILE *fp;

	strcpy(f->spool, "/tmp/pl-task-XXXXXX");
	if (!mkdtemp(f->spool))
		return -1;
	snprintf(path, sizeof(path), "%s/31", f->spool);
	mkdir(path, 0700);
	snprintf(f->hook, sizeof(f->hook), "%s/31/.hook", f->spool);
	mkdir(f->hook, 0700);
	snprintf(path, sizeof(path), "%s/sitecustomize.py", f->hook);
	fp = fopen(path, "w");
	fclose(fp);
	pl_test_log_clear();
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[96];

	env_free(&f->env);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->spool);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static void test_task_env_sets_hook_first(void **state)
{
	struct fixture *f = *state;
	char want[256], spool[96];

	spank_setenv(&f->env, "PYTHONPATH", "/staged/lib/python3.11/site-packages", 1);
	assert_int_equal(pl_monitor_task_env(&f->env, f->spool, 31), 0);
	snprintf(want, sizeof(want), "%s:/staged/lib/python3.11/site-packages", f->hook);
	assert_string_equal(env_get(&f->env, "PYTHONPATH"), want);
	snprintf(spool, sizeof(spool), "%s/31", f->spool);
	assert_string_equal(env_get(&f->env, "PYLAUNCH_MONITOR_SPOOL"), spool);
	assert_string_equal(env_get(&f->env, "PYLAUNCH_MONITOR_JOB"), "31");
	/* Again (a step inside the job): the same, not the hook twice. */
	assert_int_equal(pl_monitor_task_env(&f->env, f->spool, 31), 0);
	assert_string_equal(env_get(&f->env, "PYTHONPATH"), want);
}

static void test_task_env_without_pythonpath(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(pl_monitor_task_env(&f->env, f->spool, 31), 0);
	assert_string_equal(env_get(&f->env, "PYTHONPATH"), f->hook);
}

static void test_task_env_opt_out(void **state)
{
	struct fixture *f = *state;

	spank_setenv(&f->env, "PYLAUNCH_MONITOR", "no", 1);
	spank_setenv(&f->env, "PYTHONPATH", "/a", 1);
	assert_int_equal(pl_monitor_task_env(&f->env, f->spool, 31), 0);
	assert_string_equal(env_get(&f->env, "PYTHONPATH"), "/a");
	assert_null(env_get(&f->env, "PYLAUNCH_MONITOR_SPOOL"));
	assert_null(env_get(&f->env, "PYLAUNCH_MONITOR_JOB"));
}

static void test_task_env_no_hook_on_this_node(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(pl_monitor_task_env(&f->env, f->spool, 32), 0);
	assert_int_equal(f->env.n, 0);
	assert_true(pl_test_log_contains("not monitored"));
}

static void test_task_env_pythonpath_too_long(void **state)
{
	struct fixture *f = *state;
	size_t len = 200 * 1024;
	char *huge = malloc(len + 1);

	memset(huge, 'x', len);
	huge[0] = '/';
	huge[len] = '\0';
	spank_setenv(&f->env, "PYTHONPATH", huge, 1);
	assert_int_equal(pl_monitor_task_env(&f->env, f->spool, 31), -1);
	assert_string_equal(env_get(&f->env, "PYTHONPATH"), huge);
	assert_null(env_get(&f->env, "PYLAUNCH_MONITOR_SPOOL"));
	assert_true(pl_test_log_contains("PYTHONPATH"));
	free(huge);
}

static void test_python_names(void **state)
{
	static const char *const python[] = {"python", "python3", "/usr/bin/python3.11", "./pypy3",
					     "/opt/x/bin/python3.12"};
	static const char *const other[] = {
	    "bash", "/usr/bin/python3-config", "pythonista", "", "/bin/env", "mypython3"};

	(void)state;
	for (size_t i = 0; i < sizeof(python) / sizeof(python[0]); i++)
		assert_true(pl_monitor_is_python(python[i]));
	for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++)
		assert_false(pl_monitor_is_python(other[i]));
	assert_false(pl_monitor_is_python(NULL));
}

/* A Python task gets its note <pid>.python-task; another command none. */
static void test_task_env_notes_python_tasks(void **state)
{
	struct fixture *f = *state;
	char path[256];
	struct stat st;

	assert_int_equal(pl_monitor_task_env(&f->env, f->spool, 31), 0);
	snprintf(path, sizeof(path), "%s/31/%ld.python-task", f->spool, (long)getpid());
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_size, 0);
	unlink(path);
	task_argv[0] = "/bin/bash";
	assert_int_equal(pl_monitor_task_env(&f->env, f->spool, 31), 0);
	task_argv[0] = "/usr/bin/python3.11";
	assert_int_equal(stat(path, &st), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_opted_out),
	    cmocka_unit_test(test_job_spool),
	    cmocka_unit_test(test_pythonpath),
	    cmocka_unit_test_setup_teardown(test_task_env_sets_hook_first, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_task_env_without_pythonpath, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_task_env_opt_out, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_task_env_no_hook_on_this_node, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_task_env_pythonpath_too_long, setup, teardown),
	    cmocka_unit_test(test_python_names),
	    cmocka_unit_test_setup_teardown(test_task_env_notes_python_tasks, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
