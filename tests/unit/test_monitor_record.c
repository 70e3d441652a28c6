/* Unit tests of src/monitor/monitor_record.c (and monitor_json.c, monitor_job.c): JSON escaping of
 * whatever user processes wrote, the record of a job on a node, staff membership and the job's
 * metadata. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above first. */
#include <cmocka.h>

#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "json_check.h"
#include "monitor_record.h"

static char *escaped(const char *s, size_t len)
{
	struct pl_text t = {0};

	pl_json_add_string(&t, s, len);
	assert_false(t.failed);
	return t.buf;
}

static void assert_escape(const char *in, size_t len, const char *want)
{
	char *got = escaped(in, len);

	assert_string_equal(got, want);
	assert_true(json_valid_ascii(got));
	free(got);
}

#define ESC(lit, want) assert_escape(lit, sizeof(lit) - 1, want)

static void test_json_escapes_specials(void **state)
{
	(void)state;
	ESC("plain", "\"plain\"");
	ESC("", "\"\"");
	ESC("q\"b\\s/", "\"q\\\"b\\\\s/\"");
	ESC("\n\t\r\b\f", "\"\\n\\t\\r\\u0008\\u000c\"");
	ESC("\x01\x1f\x7f", "\"\\u0001\\u001f\\u007f\"");
	ESC("nul\0in", "\"nul\\u0000in\"");
	ESC("</script>", "\"</script>\"");
}

static void test_json_escapes_unicode_as_ascii(void **state)
{
	(void)state;
	ESC("n\xc3\xa4me", "\"n\\u00e4me\"");
	ESC("\xe6\x97\xa5", "\"\\u65e5\"");
	ESC("\xf0\x9f\x90\x8d", "\"\\ud83d\\udc0d\"");
	ESC("\xf4\x8f\xbf\xbf", "\"\\udbff\\udfff\"");
	ESC("\xc2\x85", "\"\\u0085\"");
	ESC("\xe2\x80\xa8", "\"\\u2028\"");
}

static void test_json_replaces_invalid_utf8(void **state)
{
	(void)state;
	ESC("\xff", "\"\\ufffd\"");
	ESC("a\xc0\xafz", "\"a\\ufffd\\ufffdz\"");		     /* overlong '/' */
	ESC("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"");	     /* a surrogate */
	ESC("\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* past U+10FFFF */
	ESC("cut\xe2\x82", "\"cut\\ufffd\\ufffd\"");
	ESC("\x80", "\"\\ufffd\"");
}

static void test_json_every_byte_string_is_valid(void **state)
{
	unsigned char buf[512];

	(void)state;
	srand(4);
	for (int round = 0; round < 2000; round++) {
		size_t len = (size_t)(rand() % (int)sizeof(buf));
		char *out;

		for (size_t i = 0; i < len; i++)
			buf[i] = (unsigned char)rand();
		out = escaped((const char *)buf, len);
		assert_true(json_valid_ascii(out));
		free(out);
	}
}

static void test_rfc3339(void **state)
{
	char buf[40];

	(void)state;
	pl_monitor_rfc3339(0.5, buf, sizeof(buf));
	assert_string_equal(buf, "1970-01-01T00:00:00.500Z");
	pl_monitor_rfc3339(1700000000.999999, buf, sizeof(buf));
	assert_string_equal(buf, "2023-11-14T22:13:20.999Z");
}

/* ------------------------------------------------------------------ the record */

static void add_log(struct pl_mon_node *node, const char *log)
{
	struct pl_mon_process p;
	char err[64];

	assert_int_equal(pl_mon_parse(log, strlen(log), &p, err, sizeof(err)), 0);
	assert_int_equal(pl_mon_node_add(node, &p), 0);
	pl_mon_process_free(&p);
}

static void meta_example(struct pl_job_meta *meta)
{
	memset(meta, 0, sizeof(*meta));
	meta->job_id = 77;
	meta->cluster = "c1";
	meta->user = "alice";
	meta->uid = 1000;
	meta->account = "proj\"x";
	meta->partition = "debug";
	meta->qos = NULL;
	meta->node = "n1";
	meta->num_nodes = 3;
	meta->exit_status = 256;
	meta->is_staff = true;
	meta->end_time = 1700000100.0;
}

static char *record_of(const struct pl_job_meta *meta, struct pl_mon_node *node)
{
	size_t len = 0;
	char *rec;

	pl_mon_node_sort(node);
	rec = pl_monitor_record(meta, node, &len);
	assert_non_null(rec);
	assert_int_equal(strlen(rec), len);
	assert_true(json_valid_ascii(rec));
	return rec;
}

static void test_record_exact(void **state)
{
	struct pl_job_meta meta;
	struct pl_mon_node node;
	char *rec;

	(void)state;
	meta_example(&meta);
	pl_mon_node_init(&node);
	/* Format 2 with its distribution and exit status, and a format 1 log. */
	add_log(&node, "pylaunch-monitor 2\njob\t77\nrank\t0\nstep\t0\nstart\t1700000000\n"
		       "executable\t/usr/bin/python3\npyver\t3.11.2\nimplementation\tcpython\n"
		       "main\t/home/u/run.py\nhook\tpth\nimport\tnumpy\nversion\tnumpy\t1.24.2\n"
		       "dist\tnumpy\tnumpy\t1.24.2\tsystem\nstatus\t0\nexit\t1700000010\n");
	add_log(&node, "pylaunch-monitor 1\njob\t77\nrank\t1\nstep\t0\nstart\t1700000000\n"
		       "executable\t/usr/bin/python3\npyver\t3.11.2\nimplementation\tcpython\n"
		       "main\t/home/u/run.py\ncontainer\tapptainer\nimport\tnumpy\n"
		       "version\tnumpy\t1.24.2\n");
	rec = record_of(&meta, &node);
	assert_string_equal(
	    rec, "{\"schema\":\"pylaunch-monitor-record\",\"schema_version\":2,"
		 "\"cluster\":\"c1\",\"job_id\":77,\"node\":\"n1\",\"user\":\"alice\",\"uid\":1000,"
		 "\"account\":\"proj\\\"x\",\"partition\":\"debug\",\"qos\":null,\"num_nodes\":3,"
		 "\"exit\":{\"status\":256,\"code\":1,\"signal\":0},"
		 "\"start_time\":\"2023-11-14T22:13:20.000Z\","
		 "\"end_time\":\"2023-11-14T22:15:00.000Z\","
		 "\"is_compute\":true,\"is_staff\":true,\"is_container\":true,"
		 "\"partial\":false,\"truncated\":false,\"processes\":2,"
		 "\"processes_incomplete\":1,\"processes_forked\":0,\"processes_truncated\":0,"
		 "\"processes_unlogged\":0,\"python_tasks\":0,\"python_tasks_unhooked\":0,"
		 "\"logs_read\":0,\"logs_skipped\":0,\"lines_skipped\":0,\"lines_lost\":0,"
		 "\"dropped\":{\"packages\":0,\"distributions\":0,\"imports\":0,\"steps\":0,"
		 "\"mains\":0,\"interpreters\":0,\"containers\":0,\"exit_statuses\":0,"
		 "\"record\":0},"
		 "\"steps\":[{\"step\":\"0\",\"processes\":2}],"
		 "\"interpreters\":[{\"executable\":\"/usr/bin/python3\",\"version\":\"3.11.2\","
		 "\"implementation\":\"cpython\",\"processes\":2}],"
		 "\"mains\":[{\"main\":\"/home/u/run.py\",\"processes\":2}],"
		 "\"containers\":[{\"runtime\":\"apptainer\",\"processes\":1}],"
		 "\"exit_statuses\":[{\"status\":\"0\",\"processes\":1},"
		 "{\"status\":\"killed\",\"processes\":1}],"
		 "\"hooks\":[{\"hook\":null,\"processes\":1},{\"hook\":\"pth\",\"processes\":1}],"
		 "\"packages\":[{\"name\":\"numpy\",\"processes\":2,\"incomplete\":1,"
		 "\"ranks\":\"0-1\",\"rank_count\":2,\"ranks_truncated\":false,"
		 "\"versions\":[{\"version\":\"1.24.2\",\"processes\":2}],"
		 "\"versions_dropped\":0,\"origins\":[{\"origin\":null,\"processes\":1},"
		 "{\"origin\":\"system\",\"processes\":1}],\"distribution\":\"numpy\"}],"
		 "\"distributions\":[{\"name\":\"numpy\",\"processes\":1,\"incomplete\":0,"
		 "\"ranks\":\"0\",\"rank_count\":1,\"ranks_truncated\":false,"
		 "\"versions\":[{\"version\":\"1.24.2\",\"processes\":1}],"
		 "\"versions_dropped\":0,\"origins\":[{\"origin\":\"system\",\"processes\":1}]}]}");
	free(rec);
	pl_mon_node_free(&node);
}

static void test_record_unknowns_are_null(void **state)
{
	struct pl_job_meta meta;
	struct pl_mon_node node;
	char *rec;

	(void)state;
	memset(&meta, 0, sizeof(meta));
	meta.job_id = 5;
	meta.uid = meta.num_nodes = meta.exit_status = -1;
	meta.end_time = 1700000000.0;
	pl_mon_node_init(&node);
	add_log(&node, "pylaunch-monitor 1\njob\t5\n");
	rec = record_of(&meta, &node);
	assert_non_null(strstr(rec, "\"cluster\":null,\"job_id\":5,\"node\":null,\"user\":null,"
				    "\"uid\":null,\"account\":null,\"partition\":null,\"qos\":null,"
				    "\"num_nodes\":null,\"exit\":null,\"start_time\":null,"));
	assert_non_null(strstr(rec, "\"steps\":[{\"step\":null,\"processes\":1}]"));
	assert_non_null(strstr(rec, "\"is_container\":false"));
	assert_non_null(strstr(rec, "\"packages\":[]"));
	free(rec);
	pl_mon_node_free(&node);
}

static void test_record_ranks_and_signal(void **state)
{
	struct pl_job_meta meta;
	struct pl_mon_node node;
	int ranks[] = {9, 0, 1, 2, 3, 8, 10, 11, 5};
	char log[256], *rec;

	(void)state;
	meta_example(&meta);
	meta.exit_status = 9; /* killed by SIGKILL */
	pl_mon_node_init(&node);
	for (size_t i = 0; i < sizeof(ranks) / sizeof(ranks[0]); i++) {
		snprintf(log, sizeof(log), "pylaunch-monitor 1\nrank\t%d\nimport\tmpi4py\n",
			 ranks[i]);
		add_log(&node, log);
	}
	rec = record_of(&meta, &node);
	assert_non_null(strstr(rec, "\"exit\":{\"status\":9,\"code\":0,\"signal\":9}"));
	assert_non_null(strstr(rec, "\"ranks\":\"0-3,5,8-11\",\"rank_count\":9"));
	free(rec);
	pl_mon_node_free(&node);
}

static void test_record_hostile_strings_stay_valid(void **state)
{
	struct pl_job_meta meta;
	struct pl_mon_node node;
	char *rec;

	(void)state;
	meta_example(&meta);
	meta.user = "\xff\"\\\n";
	meta.node = "n\x01";
	pl_mon_node_init(&node);
	add_log(&node, "pylaunch-monitor 1\n"
		       "main\t\"},{\"injected\":true,\"x\":\"\n"
		       "executable\t\\\\\\\"\n"
		       "import\t\xe2\x80\xa8\n"
		       "import\tpkg\"quote\n"
		       "version\tpkg\"quote\t1.0\"}]}\n");
	rec = record_of(&meta, &node);
	assert_null(strstr(rec, "\"injected\":true"));
	assert_non_null(strstr(rec, "\"name\":\"pkg\\\"quote\""));
	assert_non_null(strstr(rec, "\"version\":\"1.0\\\"}]}\""));
	assert_non_null(strstr(rec, "\"name\":\"\\u2028\""));
	free(rec);
	pl_mon_node_free(&node);
}

/* ------------------------------------------------------------------ metadata, staff */

static void test_meta_from_env(void **state)
{
	struct pl_job_meta meta;

	(void)state;
	setenv("SLURM_CLUSTER_NAME", "cl", 1);
	setenv("SLURM_JOB_USER", "bob", 1);
	setenv("SLURM_JOB_ACCOUNT", "acct", 1);
	setenv("SLURM_JOB_PARTITION", "part", 1);
	setenv("SLURMD_NODENAME", "node7", 1);
	setenv("SLURM_JOB_NUM_NODES", "12", 1);
	setenv("SLURM_JOB_EXIT_CODE", "0", 1);
	unsetenv("SLURM_JOB_QOS");
	pl_job_meta_from_env(&meta, 42, 1001);
	assert_int_equal(meta.job_id, 42);
	assert_int_equal(meta.uid, 1001);
	assert_string_equal(meta.cluster, "cl");
	assert_string_equal(meta.user, "bob");
	assert_string_equal(meta.account, "acct");
	assert_string_equal(meta.partition, "part");
	assert_string_equal(meta.node, "node7");
	assert_null(meta.qos);
	assert_int_equal(meta.num_nodes, 12);
	assert_int_equal(meta.exit_status, 0);
	assert_true(meta.end_time > 1.6e9);
	setenv("SLURM_JOB_NUM_NODES", "12x", 1);
	setenv("SLURM_JOB_EXIT_CODE", "", 1);
	setenv("SLURM_JOB_QOS", "normal", 1);
	pl_job_meta_from_env(&meta, 42, 1001);
	assert_int_equal(meta.num_nodes, -1);
	assert_int_equal(meta.exit_status, -1);
	assert_string_equal(meta.qos, "normal");
}

static void test_groups_intersect(void **state)
{
	gid_t user[] = {100, 27, 1000};
	gid_t staff_yes[] = {5, 27};
	gid_t staff_no[] = {5, 6};

	(void)state;
	assert_true(pl_monitor_groups_intersect(user, 3, staff_yes, 2));
	assert_false(pl_monitor_groups_intersect(user, 3, staff_no, 2));
	assert_false(pl_monitor_groups_intersect(user, 3, staff_no, 0));
	assert_false(pl_monitor_groups_intersect(user, 0, staff_yes, 2));
}

static void test_is_staff_from_group_database(void **state)
{
	char *root_group[] = {"root"};
	char *missing[] = {"no-such-group-pylaunch"};
	char *both[] = {"no-such-group-pylaunch", "root"};
	struct group *g = getgrnam("root");

	(void)state;
	if (!g || g->gr_gid != 0)
		skip();
	/* uid 0's primary group is root. */
	assert_true(pl_monitor_is_staff(0, 0, root_group, 1));
	assert_true(pl_monitor_is_staff(0, 0, both, 2));
	assert_false(pl_monitor_is_staff(0, 0, missing, 1));
	assert_false(pl_monitor_is_staff(0, 0, root_group, 0));
	/* A uid without a passwd entry: only its primary group counts. */
	assert_true(pl_monitor_is_staff(987654, 0, root_group, 1));
	assert_false(pl_monitor_is_staff(987654, 987654, root_group, 1));
}

/* Issue 13 item 5 / issue 15: 3,000 crafted logs, each with 3 packages of long names
 * of its own and a main of 4 KiB, would make a record of several MiB: it is cut to
 * monitor.record_max, the most-used packages kept, and says so. */
static void test_record_capped_at_record_max(void **state)
{
	static char log[16384];
	struct pl_job_meta meta;
	struct pl_mon_node node;
	char main[4097], *rec, *full;
	size_t len = 0, full_len = 0;

	(void)state;
	meta_example(&meta);
	pl_mon_node_init(&node);
	memset(main, 'm', sizeof(main) - 1);
	main[sizeof(main) - 1] = '\0';
	for (int i = 0; i < 3000; i++) {
		snprintf(
		    log, sizeof(log),
		    "pylaunch-monitor 2\njob\t77\nmain\t/%d%s\nimport\tcommon\n"
		    "import\tpkg_%d_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"
		    "import\tpkg_%d_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n"
		    "dist\tcommon\tcommon-dist\t1.0\tvenv\nexit\t1700000000\n",
		    i, main, i, i);
		add_log(&node, log);
	}
	pl_mon_node_sort(&node);
	full = pl_monitor_record(&meta, &node, &full_len);
	assert_non_null(full);
	assert_true(full_len > 3 * 512 * 1024);
	rec = pl_monitor_record_capped(&meta, &node, 1024 * 1024, &len);
	assert_non_null(rec);
	assert_int_equal(strlen(rec), len);
	assert_true(len <= 1024 * 1024);
	assert_true(json_valid_ascii(rec));
	assert_non_null(strstr(rec, "\"truncated\":true"));
	assert_null(strstr(rec, "\"record\":0}"));
	assert_non_null(strstr(rec, "\"processes\":3000,"));
	/* The package all 3,000 processes used is kept. */
	assert_non_null(strstr(rec, "{\"name\":\"common\",\"processes\":3000,"));
	assert_non_null(
	    strstr(rec, "\"distributions\":[{\"name\":\"common-dist\",\"processes\":3000,"));
	free(rec);
	/* Under the bound nothing is cut. */
	rec = pl_monitor_record_capped(&meta, &node, full_len, &len);
	assert_int_equal(len, full_len);
	assert_non_null(strstr(rec, "\"record\":0}"));
	free(rec);
	free(full);
	pl_mon_node_free(&node);
}

/* attr and attrs come from one distribution: counted once a process. */
static void test_record_distribution_once_per_process(void **state)
{
	struct pl_job_meta meta;
	struct pl_mon_node node;
	char *rec;

	(void)state;
	meta_example(&meta);
	pl_mon_node_init(&node);
	for (int i = 0; i < 2; i++)
		add_log(&node, "pylaunch-monitor 2\njob\t77\nrank\t3\nimport\tattr\nimport\tattrs\n"
			       "version\tattr\t0.0\n"
			       "dist\tattr\tattrs\t23.1.0\tuser\ndist\tattrs\tattrs\t23.1.0\tuser\n"
			       "status\t3\nexit\t1700000000\n");
	rec = record_of(&meta, &node);
	assert_non_null(strstr(rec, "{\"name\":\"attr\",\"processes\":2,"));
	assert_non_null(strstr(rec, "{\"name\":\"attrs\",\"processes\":2,"));
	/* The metadata's version replaces __version__. */
	assert_null(strstr(rec, "\"0.0\""));
	assert_non_null(strstr(rec, "\"distributions\":[{\"name\":\"attrs\",\"processes\":2,"
				    "\"incomplete\":0,\"ranks\":\"3\",\"rank_count\":1,"
				    "\"ranks_truncated\":false,"
				    "\"versions\":[{\"version\":\"23.1.0\",\"processes\":2}],"
				    "\"versions_dropped\":0,"
				    "\"origins\":[{\"origin\":\"user\",\"processes\":2}]}]"));
	assert_non_null(strstr(rec, "\"exit_statuses\":[{\"status\":\"3\",\"processes\":2}]"));
	free(rec);
	pl_mon_node_free(&node);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_json_escapes_specials),
	    cmocka_unit_test(test_json_escapes_unicode_as_ascii),
	    cmocka_unit_test(test_json_replaces_invalid_utf8),
	    cmocka_unit_test(test_json_every_byte_string_is_valid),
	    cmocka_unit_test(test_rfc3339),
	    cmocka_unit_test(test_record_exact),
	    cmocka_unit_test(test_record_unknowns_are_null),
	    cmocka_unit_test(test_record_ranks_and_signal),
	    cmocka_unit_test(test_record_hostile_strings_stay_valid),
	    cmocka_unit_test(test_meta_from_env),
	    cmocka_unit_test(test_groups_intersect),
	    cmocka_unit_test(test_is_staff_from_group_database),
	    cmocka_unit_test(test_record_capped_at_record_max),
	    cmocka_unit_test(test_record_distribution_once_per_process),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
