/* Unit tests of src/monitor/monitor.c: sampling, and the prolog and epilog entry points from
 * spool to record, with synthetic logs and (when Debian's python3 is there) with logs
 * written by the real hook. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above first. */
#include <cmocka.h>

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "json_check.h"
#include "monitor.h"
#include "monitor_spool.h"
#include "slurm_log_stub.h"

#define JOB 4711

struct fixture {
	char top[64];
	char sink_path[128];
	struct pl_config cfg;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char spool[128];

	strcpy(f->top, "/tmp/pl-monitor-XXXXXX");
	if (!mkdtemp(f->top))
		return -1;
	snprintf(spool, sizeof(spool), "%s/spool", f->top);
	snprintf(f->sink_path, sizeof(f->sink_path), "%s/records.jsonl", f->top);
	pl_config_init_defaults(&f->cfg);
	free(f->cfg.monitor_spool_dir);
	f->cfg.monitor_spool_dir = strdup(spool);
	f->cfg.sinks = calloc(1, sizeof(*f->cfg.sinks));
	f->cfg.sinks[0].type = PL_SINK_FILE;
	f->cfg.sinks[0].path = strdup(f->sink_path);
	f->cfg.n_sinks = 1;
	setenv("SLURMD_NODENAME", "node1", 1);
	setenv("SLURM_JOB_USER", "tester", 1);
	setenv("SLURM_JOB_NUM_NODES", "3", 1);
	setenv("SLURM_CLUSTER_NAME", "testcluster", 1);
	pl_test_log_clear();
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[96];

	pl_config_free(&f->cfg);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->top);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static void job_path(const struct fixture *f, const char *rel, char *out, size_t len)
{
	snprintf(out, len, "%s/%u%s%s", f->cfg.monitor_spool_dir, JOB, rel[0] ? "/" : "", rel);
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static void write_log(const struct fixture *f, const char *name, const char *text)
{
	char path[256];
	FILE *fp;

	job_path(f, name, path, sizeof(path));
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

/* The records the file sink got, one a line. */
static char *sink_text(const struct fixture *f)
{
	FILE *fp = fopen(f->sink_path, "r");
	char *buf;
	long size;

	if (!fp)
		return NULL;
	fseek(fp, 0, SEEK_END);
	size = ftell(fp);
	rewind(fp);
	buf = calloc(1, (size_t)size + 1);
	assert_int_equal(fread(buf, 1, (size_t)size, fp), (size_t)size);
	fclose(fp);
	return buf;
}

/* ------------------------------------------------------------------ sampling */

static void test_sampling(void **state)
{
	struct pl_config cfg = {0};
	unsigned taken = 0;

	(void)state;
	cfg.monitor_sample_rate = 1.0;
	assert_true(pl_monitor_sampled(&cfg, 0));
	assert_true(pl_monitor_sampled(&cfg, UINT32_MAX));
	cfg.monitor_sample_rate = 0.0;
	assert_false(pl_monitor_sampled(&cfg, 12));
	cfg.monitor_sample_rate = NAN;
	assert_false(pl_monitor_sampled(&cfg, 12));
	cfg.monitor_sample_rate = 0.25;
	for (uint32_t id = 1; id <= 100000; id++) {
		bool s = pl_monitor_sampled(&cfg, id);

		assert_int_equal(s, pl_monitor_sampled(&cfg, id)); /* the same on every node */
		taken += s;
	}
	assert_true(taken > 24000 && taken < 26000);
}

/* ------------------------------------------------------------------ prolog, epilog */

static void test_prolog_outside_the_sample(void **state)
{
	struct fixture *f = *state;
	char path[256];

	f->cfg.monitor_sample_rate = 0.0;
	pl_monitor_prolog(&f->cfg, JOB, getuid(), getgid());
	job_path(f, "", path, sizeof(path));
	assert_false(exists(path));
	pl_monitor_epilog(&f->cfg, JOB, getuid(), getgid());
	assert_null(sink_text(f));
}

static void test_prolog_prepares_the_spool(void **state)
{
	struct fixture *f = *state;
	const char *srcdir = getenv("srcdir");
	char path[256], share[512];

	snprintf(share, sizeof(share), "%s/share/monitor", srcdir ? srcdir : ".");
	free(f->cfg.monitor_hook_dir);
	f->cfg.monitor_hook_dir = strdup(share);
	pl_monitor_prolog(&f->cfg, JOB, getuid(), getgid());
	job_path(f, ".hook/sitecustomize.py", path, sizeof(path));
	assert_true(exists(path));
	assert_false(pl_test_log_contains("error:"));
}

static void test_epilog_sends_one_record_and_removes_the_spool(void **state)
{
	struct fixture *f = *state;
	char path[256], *text;

	assert_int_equal(
	    pl_monitor_spool_prepare(f->cfg.monitor_spool_dir, JOB, getuid(), getgid(), f->top), 0);
	write_log(f, "10-a.log",
		  "pylaunch-monitor 1\njob\t4711\nrank\t0\nstep\t0\nstart\t1700000000\n"
		  "executable\t/usr/bin/python3\npyver\t3.11.2\nmain\t/home/t/a.py\n"
		  "import\tnumpy\nversion\tnumpy\t1.24.2\nexit\t1700000001\n");
	write_log(f, "11-b.log",
		  "pylaunch-monitor 1\njob\t4711\nrank\t1\nstep\t0\nstart\t1700000000\n"
		  "executable\t/usr/bin/python3\npyver\t3.11.2\nmain\t/home/t/a.py\n"
		  "import\tnumpy\n");
	write_log(f, "12-c.log", "not a log\n");
	pl_monitor_epilog(&f->cfg, JOB, getuid(), getgid());

	text = sink_text(f);
	assert_non_null(text);
	assert_int_equal(strchr(text, '\n') - text + 1, (long)strlen(text)); /* one line */
	text[strlen(text) - 1] = '\0';
	assert_true(json_valid_ascii(text));
	assert_non_null(strstr(text, "\"job_id\":4711,\"node\":\"node1\",\"user\":\"tester\""));
	assert_non_null(strstr(text, "\"cluster\":\"testcluster\""));
	assert_non_null(strstr(text, "\"num_nodes\":3"));
	assert_non_null(strstr(text, "\"processes\":2,\"processes_incomplete\":1"));
	assert_non_null(strstr(text, "\"logs_read\":2,\"logs_skipped\":1"));
	assert_non_null(strstr(text, "{\"name\":\"numpy\",\"processes\":2,\"incomplete\":1,"
				     "\"ranks\":\"0-1\""));
	assert_true(pl_test_log_contains("2 Python processes (1 incomplete), 1 packages"));
	free(text);
	job_path(f, "", path, sizeof(path));
	assert_false(exists(path));
}

/* python -I left no log, only task_init's note: the record says so. */
static void test_epilog_reports_python_tasks_without_a_log(void **state)
{
	struct fixture *f = *state;
	char *text;

	assert_int_equal(
	    pl_monitor_spool_prepare(f->cfg.monitor_spool_dir, JOB, getuid(), getgid(), f->top), 0);
	write_log(f, "321.python-task", "");
	write_log(f, "322-x.unlogged", "");
	pl_monitor_epilog(&f->cfg, JOB, getuid(), getgid());
	text = sink_text(f);
	assert_non_null(text);
	assert_non_null(strstr(text, "\"processes\":0,"));
	assert_non_null(strstr(text, "\"processes_unlogged\":1,\"python_tasks\":1,"
				     "\"python_tasks_unhooked\":1,"));
	free(text);
}

static void test_epilog_without_python_sends_nothing(void **state)
{
	struct fixture *f = *state;
	char path[256];

	assert_int_equal(
	    pl_monitor_spool_prepare(f->cfg.monitor_spool_dir, JOB, getuid(), getgid(), f->top), 0);
	pl_monitor_epilog(&f->cfg, JOB, getuid(), getgid());
	assert_null(sink_text(f));
	job_path(f, "", path, sizeof(path));
	assert_false(exists(path));
	/* No spool at all (the prolog did not run here): nothing, quietly. */
	pl_test_log_clear();
	pl_monitor_epilog(&f->cfg, JOB, getuid(), getgid());
	assert_false(pl_test_log_contains("error"));
}

static void test_epilog_timeout_zero_reads_nothing_and_says_so(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(
	    pl_monitor_spool_prepare(f->cfg.monitor_spool_dir, JOB, getuid(), getgid(), f->top), 0);
	write_log(f, "10-a.log", "pylaunch-monitor 1\njob\t4711\nimport\tnumpy\n");
	f->cfg.monitor_epilog_timeout = 0;
	pl_monitor_epilog(&f->cfg, JOB, getuid(), getgid());
	assert_null(sink_text(f));
	assert_true(pl_test_log_contains("epilog_timeout reached"));
}

/* The hook from the source tree, run by Debian's python3, read back by the epilog. */
static void test_real_hook_end_to_end(void **state)
{
	struct fixture *f = *state;
	const char *srcdir = getenv("srcdir");
	char share[512], cmd[2048], spool[256], hook[256], *text;

	if (access("/usr/bin/python3", X_OK) != 0)
		skip();
	snprintf(share, sizeof(share), "%s/share/monitor", srcdir ? srcdir : ".");
	snprintf(cmd, sizeof(cmd), "%s/sitecustomize.py", share);
	if (access(cmd, R_OK) != 0)
		skip();
	assert_int_equal(
	    pl_monitor_spool_prepare(f->cfg.monitor_spool_dir, JOB, getuid(), getgid(), share), 0);
	job_path(f, "", spool, sizeof(spool));
	job_path(f, ".hook", hook, sizeof(hook));
	snprintf(cmd, sizeof(cmd),
		 "mkdir -p %s/pkg/mytool && echo '__version__ = \"3.1\"' > "
		 "%s/pkg/mytool/__init__.py && cd %s/pkg && "
		 "env -u PYTHONHOME PYTHONPATH=%s PYLAUNCH_MONITOR_SPOOL=%s "
		 "PYLAUNCH_MONITOR_JOB=%u SLURM_PROCID=2 SLURM_STEP_ID=0 "
		 "/usr/bin/python3 -c 'import json, multiprocessing, mytool' && "
		 "env PYTHONPATH=%s PYLAUNCH_MONITOR_SPOOL=%s PYLAUNCH_MONITOR_JOB=%u "
		 "/usr/bin/python3 -c 'import os, mytool; os._exit(3)'; test $? = 3",
		 f->top, f->top, f->top, hook, spool, JOB, hook, spool, JOB);
	assert_int_equal(system(cmd), 0);
	pl_monitor_epilog(&f->cfg, JOB, getuid(), getgid());
	text = sink_text(f);
	assert_non_null(text);
	assert_non_null(strstr(text, "\"processes\":2,\"processes_incomplete\":1"));
	/* The process ended by os._exit() right after the import: on record, but its
	 * version was never looked at. */
	assert_non_null(strstr(text, "{\"name\":\"mytool\",\"processes\":2,\"incomplete\":1,"
				     "\"ranks\":\"2\",\"rank_count\":1,\"ranks_truncated\":false,"
				     "\"versions\":[{\"version\":null,\"processes\":1},"
				     "{\"version\":\"3.1\",\"processes\":1}]"));
	assert_non_null(strstr(text, "{\"name\":\"multiprocessing\",\"processes\":1"));
	assert_null(strstr(text, "\"name\":\"json\""));
	assert_non_null(strstr(text, "\"mains\":[{\"main\":\"-c\",\"processes\":2}]"));
	assert_non_null(strstr(text, "\"executable\":\"/usr/bin/python3\""));
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sampling),
	    cmocka_unit_test_setup_teardown(test_prolog_outside_the_sample, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_prolog_prepares_the_spool, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_epilog_sends_one_record_and_removes_the_spool,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_epilog_reports_python_tasks_without_a_log, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_epilog_without_python_sends_nothing, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_epilog_timeout_zero_reads_nothing_and_says_so,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_real_hook_end_to_end, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
