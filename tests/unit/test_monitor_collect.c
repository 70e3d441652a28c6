/* Unit tests of the collector (src/monitor/monitor_collect.c, _parse, _process, _node): the import
 * logs as the hook writes them, as a hostile user could write them, and their aggregation per job
 * and node. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above first. */
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "monitor_collect.h"
#include "slurm_log_stub.h"

static const char good_log[] = "pylaunch-monitor 1\n"
			       "pid\t4242\n"
			       "ppid\t4000\n"
			       "job\t77\n"
			       "rank\t3\n"
			       "step\t0\n"
			       "start\t1700000000.250000\n"
			       "executable\t/usr/bin/python3\n"
			       "python\t3.11.2 (main, Mar 13 2023) [GCC 12.2.0]\n"
			       "pyver\t3.11.2\n"
			       "implementation\tcpython\n"
			       "stdlib\tsys.stdlib_module_names\n"
			       "container\tapptainer\n"
			       "main\t/home/u/run.py\n"
			       "import\tnumpy\n"
			       "import\tmultiprocessing\n"
			       "version\tnumpy\t1.24.2\n"
			       "import\tscipy\n"
			       "exit\t1700000009.5\n";

static void parse_ok(const char *data, size_t len, struct pl_mon_process *p)
{
	char err[128] = "";

	assert_int_equal(pl_mon_parse(data, len, p, err, sizeof(err)), 0);
}

static void parse_str(const char *data, struct pl_mon_process *p)
{
	parse_ok(data, strlen(data), p);
}

static const struct pl_mon_import *find_import(const struct pl_mon_process *p, const char *name)
{
	for (size_t i = 0; i < p->n_imports; i++)
		if (strcmp(p->imports[i].name, name) == 0)
			return &p->imports[i];
	return NULL;
}

/* ------------------------------------------------------------------ parsing */

static void test_parse_full_log(void **state)
{
	struct pl_mon_process p;

	(void)state;
	parse_str(good_log, &p);
	assert_int_equal(p.pid, 4242);
	assert_int_equal(p.ppid, 4000);
	assert_int_equal(p.rank, 3);
	assert_string_equal(p.job, "77");
	assert_string_equal(p.step, "0");
	assert_string_equal(p.executable, "/usr/bin/python3");
	assert_string_equal(p.pyver, "3.11.2");
	assert_string_equal(p.implementation, "cpython");
	assert_string_equal(p.container, "apptainer");
	assert_string_equal(p.main, "/home/u/run.py");
	assert_true(p.start > 1700000000.2 && p.start < 1700000000.3);
	assert_true(p.exited);
	assert_false(p.forked);
	assert_int_equal(p.lines_skipped, 0);
	/* Sorted by name. */
	assert_int_equal(p.n_imports, 3);
	assert_string_equal(p.imports[0].name, "multiprocessing");
	assert_null(p.imports[0].version);
	assert_string_equal(p.imports[1].name, "numpy");
	assert_string_equal(p.imports[1].version, "1.24.2");
	assert_string_equal(p.imports[2].name, "scipy");
	pl_mon_process_free(&p);
}

static void test_parse_refuses_other_formats(void **state)
{
	static const char *const bad[] = {
	    "",
	    "pylaunch-monitor 1",
	    "pylaunch-monitor 3\nimport\tnumpy\n",
	    "pylaunch-monitor 0\n",
	    "pylaunch-monitor 10\n",
	    "PYLAUNCH-MONITOR 1\n",
	    "\npylaunch-monitor 1\n",
	    "{\"pylaunch-monitor\": 1}\n",
	};
	struct pl_mon_process p;
	char err[128];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(pl_mon_parse(bad[i], strlen(bad[i]), &p, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "not a log"));
		pl_mon_process_free(&p);
	}
}

static void test_parse_truncated_last_line(void **state)
{
	struct pl_mon_process p;
	const char *data = "pylaunch-monitor 1\nimport\tnumpy\nimport\tsci";

	(void)state;
	parse_str(data, &p);
	assert_int_equal(p.n_imports, 1);
	assert_string_equal(p.imports[0].name, "numpy");
	assert_int_equal(p.lines_skipped, 1);
	assert_false(p.exited);
	pl_mon_process_free(&p);
}

static void test_parse_huge_line(void **state)
{
	size_t big = 3 * 1024 * 1024;
	char *data = malloc(big + 64);
	struct pl_mon_process p;
	size_t len;

	(void)state;
	assert_non_null(data);
	len = (size_t)sprintf(data, "pylaunch-monitor 1\nimport\t");
	memset(data + len, 'a', big);
	len += big;
	len += (size_t)sprintf(data + len, "\nimport\tok\nmain\t");
	parse_ok(data, len, &p);
	assert_int_equal(p.n_imports, 1);
	assert_string_equal(p.imports[0].name, "ok");
	assert_int_equal(p.lines_skipped, 2); /* the huge line and the unterminated one */
	pl_mon_process_free(&p);
	free(data);
}

static void test_parse_invalid_utf8_and_controls(void **state)
{
	static const char data[] = "pylaunch-monitor 1\n"
				   "import\tbad\xff\n"
				   "import\tover\xc0\xaflong\n"
				   "import\tsurrogate\xed\xa0\x80\n"
				   "import\tc1\xc2\x85x\n"
				   "import\tdel\x7f\n"
				   "import\tcut\xe2\x82\n"
				   "import\tpast\xf4\x90\x80\x80\n"
				   "import\tbell\a\n"
				   "import\twith space\n"
				   "import\tdot.ted\n"
				   "import\tsl/ash\n"
				   "import\t\n"
				   "import\tn\xc3\xa4me\n"
				   "import\t\xe6\x97\xa5\xe6\x9c\xac\n"
				   "import\t\xf0\x9f\x90\x8d\n"
				   /* A NUL ends the log (the hook preallocates it with zeros):
				    * the cut line is skipped, what follows is not read. */
				   "main\tnul\0byte\nimport\tafter\n";
	struct pl_mon_process p;

	(void)state;
	parse_ok(data, sizeof(data) - 1, &p);
	assert_int_equal(p.lines_skipped, 13);
	assert_null(p.main);
	assert_int_equal(p.n_imports, 3);
	assert_null(find_import(&p, "after"));
	assert_non_null(find_import(&p, "n\xc3\xa4me"));
	assert_non_null(find_import(&p, "\xe6\x97\xa5\xe6\x9c\xac"));
	assert_non_null(find_import(&p, "\xf0\x9f\x90\x8d"));
	pl_mon_process_free(&p);
}

static void test_parse_deep_nonsense(void **state)
{
	size_t depth = 200000, len = 0;
	char *data = malloc(depth * 4 + 256);
	struct pl_mon_process p;

	(void)state;
	assert_non_null(data);
	len += (size_t)sprintf(data, "pylaunch-monitor 1\n");
	memset(data + len, '[', depth);
	len += depth;
	data[len++] = '\n';
	for (size_t i = 0; i < depth / 4; i++)
		len += (size_t)sprintf(data + len, "{\t");
	data[len++] = '\n';
	len += (size_t)sprintf(data + len, "\t\t\t\t\n\t\nimport\n\n\n\n");
	len += (size_t)sprintf(data + len, "version\tx\nversion\tnumpy\t1\t2\nimport\tfine\n");
	parse_ok(data, len, &p);
	assert_int_equal(p.n_imports, 1);
	assert_string_equal(p.imports[0].name, "fine");
	assert_true(p.lines_skipped >= 8);
	pl_mon_process_free(&p);
	free(data);
}

static void test_parse_duplicates_and_first_values(void **state)
{
	struct pl_mon_process p;

	(void)state;
	parse_str("pylaunch-monitor 1\n"
		  "main\tfirst\nmain\tsecond\n"
		  "import\tb\nimport\ta\nimport\tb\nimport\ta\n"
		  "version\ta\t1.0\nversion\ta\t2.0\nversion\tnot_imported\t3\n"
		  "start\t1700000000\nstart\t1600000000\n"
		  "future_key\twhatever it is\n",
		  &p);
	assert_string_equal(p.main, "second"); /* a spawn worker's real main comes later */
	assert_int_equal(p.n_imports, 2);
	assert_string_equal(p.imports[0].name, "a");
	assert_string_equal(p.imports[0].version, "1.0");
	assert_null(p.imports[1].version);
	assert_true(p.start == 1700000000.0);
	assert_int_equal(p.lines_skipped, 0);
	pl_mon_process_free(&p);
}

static void test_parse_unimport_retracts(void **state)
{
	struct pl_mon_process p;

	(void)state;
	parse_str("pylaunch-monitor 1\n"
		  "import\tprobe\nimport\tagain\nimport\tkept\n"
		  "unimport\tprobe\nunimport\tagain\nunimport\tnever_imported\n"
		  "version\tprobe\t1.0\nimport\tagain\nunimport\tbad name\n",
		  &p);
	assert_int_equal(p.n_imports, 2);
	assert_string_equal(p.imports[0].name, "again");
	assert_string_equal(p.imports[1].name, "kept");
	assert_int_equal(p.lines_skipped, 1);
	pl_mon_process_free(&p);
}

static void test_parse_numbers(void **state)
{
	struct pl_mon_process p;

	(void)state;
	parse_str("pylaunch-monitor 1\n"
		  "pid\t12a\nppid\t-1\nrank\t99999999999\n"
		  "start\t1e9\nexit\tnan\nexit\t1.2.3x\nforked\t1\n",
		  &p);
	assert_int_equal(p.pid, -1);
	assert_int_equal(p.ppid, -1);
	assert_int_equal(p.rank, -1);
	assert_true(p.start == 0);
	assert_false(p.exited);
	assert_true(p.forked);
	assert_int_equal(p.lines_skipped, 6);
	pl_mon_process_free(&p);
}

static void test_parse_imports_bounded(void **state)
{
	size_t n = PL_MON_IMPORTS_MAX + 100, len = 0;
	char *data = malloc(n * 16 + 64);
	struct pl_mon_process p;

	(void)state;
	assert_non_null(data);
	len += (size_t)sprintf(data, "pylaunch-monitor 1\n");
	for (size_t i = 0; i < n; i++)
		len += (size_t)sprintf(data + len, "import\tp%zu\n", i);
	parse_ok(data, len, &p);
	assert_int_equal(p.n_imports, PL_MON_IMPORTS_MAX);
	assert_int_equal(p.lines_skipped, 100);
	pl_mon_process_free(&p);
	free(data);
}

/* ------------------------------------------------------------------ aggregation */

static void add_log(struct pl_mon_node *node, const char *log)
{
	struct pl_mon_process p;

	parse_str(log, &p);
	assert_int_equal(pl_mon_node_add(node, &p), 0);
	pl_mon_process_free(&p);
}

static const struct pl_mon_package *find_package(const struct pl_mon_node *node, const char *name)
{
	for (size_t i = 0; i < node->pkgs.n; i++)
		if (strcmp(node->pkgs.items[i].name, name) == 0)
			return &node->pkgs.items[i];
	return NULL;
}

static void test_aggregate_per_node(void **state)
{
	struct pl_mon_node node;
	const struct pl_mon_package *numpy, *mp;

	(void)state;
	pl_mon_node_init(&node);
	add_log(&node, good_log);
	add_log(&node, "pylaunch-monitor 1\njob\t77\nrank\t4\nstep\t0\nstart\t1699999999\n"
		       "executable\t/usr/bin/python3\npyver\t3.11.2\nimplementation\tcpython\n"
		       "main\t/home/u/run.py\nimport\tnumpy\nversion\tnumpy\t1.24.2\n");
	add_log(&node, "pylaunch-monitor 1\njob\t77\nrank\t3\nforked\t1\nstep\t0\n"
		       "executable\t/usr/bin/python3\npyver\t3.11.2\nimplementation\tcpython\n"
		       "main\t/home/u/run.py\nimport\tnumpy\nimport\tmultiprocessing\n");
	add_log(&node, "pylaunch-monitor 1\njob\t77\nstep\t1\nexecutable\t/opt/conda/bin/python\n"
		       "pyver\t3.10.1\nimplementation\tcpython\nmain\t-c\nimport\tnumpy\n"
		       "version\tnumpy\t1.26.0\nexit\t1700000001\n");
	pl_mon_node_sort(&node);

	assert_int_equal(node.processes, 4);
	assert_int_equal(node.incomplete, 2);
	assert_int_equal(node.forked, 1);
	assert_true(node.start == 1699999999.0);
	assert_false(pl_mon_node_truncated(&node));

	assert_int_equal(node.pkgs.n, 3);
	assert_string_equal(node.pkgs.items[0].name, "multiprocessing");
	assert_string_equal(node.pkgs.items[1].name, "numpy");
	assert_string_equal(node.pkgs.items[2].name, "scipy");
	numpy = find_package(&node, "numpy");
	assert_int_equal(numpy->processes, 4);
	assert_int_equal(numpy->incomplete, 2);
	assert_int_equal(numpy->n_ranks, 2); /* ranks 3 and 4; the fork child repeats 3 */
	assert_int_equal(numpy->ranks[0], 3);
	assert_int_equal(numpy->ranks[1], 4);
	/* Most processes first: 1.24.2 (2), then 1.26.0 and unknown (1 each, null first). */
	assert_int_equal(numpy->versions.n, 3);
	assert_string_equal(numpy->versions.items[0].keys[0], "1.24.2");
	assert_int_equal(numpy->versions.items[0].processes, 2);
	assert_null(numpy->versions.items[1].keys[0]);
	assert_string_equal(numpy->versions.items[2].keys[0], "1.26.0");
	mp = find_package(&node, "multiprocessing");
	assert_int_equal(mp->processes, 2);

	assert_int_equal(node.steps.n, 2);
	assert_string_equal(node.steps.items[0].keys[0], "0");
	assert_int_equal(node.steps.items[0].processes, 3);
	assert_int_equal(node.interpreters.n, 2);
	assert_string_equal(node.interpreters.items[0].keys[0], "/usr/bin/python3");
	assert_string_equal(node.interpreters.items[0].keys[1], "3.11.2");
	assert_string_equal(node.interpreters.items[0].keys[2], "cpython");
	assert_int_equal(node.interpreters.items[0].processes, 3);
	assert_string_equal(node.mains.items[0].keys[0], "/home/u/run.py");
	assert_int_equal(node.containers.n, 1);
	assert_string_equal(node.containers.items[0].keys[0], "apptainer");
	pl_mon_node_free(&node);
}

static void test_aggregate_bounds(void **state)
{
	struct pl_mon_node node;
	struct pl_mon_process p;
	char name[32], version[32];

	(void)state;
	pl_mon_node_init(&node);
	memset(&p, 0, sizeof(p));
	p.pid = p.ppid = p.rank = -1;
	p.n_imports = 1;
	p.imports = calloc(1, sizeof(*p.imports));
	p.imports[0].name = name;
	p.imports[0].version = version;
	for (int i = 0; i < PL_MON_PACKAGES_MAX + 10; i++) {
		snprintf(name, sizeof(name), "pkg%d", i);
		snprintf(version, sizeof(version), "1.%d", i);
		assert_int_equal(pl_mon_node_add(&node, &p), 0);
	}
	strcpy(name, "pkg0");
	for (int i = 0; i < PL_MON_VERSIONS_MAX + 5; i++) {
		snprintf(version, sizeof(version), "2.%d", i);
		assert_int_equal(pl_mon_node_add(&node, &p), 0);
	}
	pl_mon_node_sort(&node);
	assert_int_equal(node.pkgs.n, PL_MON_PACKAGES_MAX);
	assert_int_equal(node.pkgs.dropped, 10);
	assert_string_equal(node.pkgs.items[0].name, "pkg0");
	assert_int_equal(node.pkgs.items[0].versions.n, PL_MON_VERSIONS_MAX);
	assert_int_equal(node.pkgs.items[0].versions.dropped, 6);
	assert_true(pl_mon_node_truncated(&node));
	free(p.imports);
	pl_mon_node_free(&node);
}

/* ------------------------------------------------------------------ the spool */

struct spool {
	char dir[64];
	int fd;
};

static void spool_make(struct spool *s)
{
	strcpy(s->dir, "/tmp/pl-collect-XXXXXX");
	assert_non_null(mkdtemp(s->dir));
	s->fd = open(s->dir, O_RDONLY | O_DIRECTORY);
	assert_true(s->fd >= 0);
}

static void spool_write(struct spool *s, const char *name, const char *data, size_t len)
{
	int fd = openat(s->fd, name, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static void spool_drop(struct spool *s)
{
	char cmd[128];

	close(s->fd);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", s->dir);
	assert_int_equal(system(cmd), 0);
}

static void test_collect_hostile_spool(void **state)
{
	struct spool s, outside;
	struct pl_mon_node node;
	char *big = malloc(PL_MON_LOG_MAX + 2);
	char path[256];

	(void)state;
	spool_make(&s);
	spool_make(&outside);
	spool_write(&s, "1-aa.log", good_log, strlen(good_log));
	spool_write(&s, "2-bb.log", good_log, strlen(good_log));
	spool_write(&s, "notes.txt", "import\tnumpy\n", 13); /* not a log: ignored */
	spool_write(&s, ".pylaunch-monitor.pyc", "x", 1);
	assert_int_equal(mkdirat(s.fd, ".hook", 0700), 0);
	assert_int_equal(mkdirat(s.fd, "dir.log", 0700), 0);
	/* A symbolic link to a good log elsewhere, and to something that blocks. */
	spool_write(&outside, "real.log", good_log, strlen(good_log));
	snprintf(path, sizeof(path), "%s/real.log", outside.dir);
	assert_int_equal(symlinkat(path, s.fd, "link.log"), 0);
	assert_int_equal(symlinkat("/dev/zero", s.fd, "zero.log"), 0);
	assert_int_equal(mkfifoat(s.fd, "fifo.log", 0600), 0);
	assert_int_equal(linkat(s.fd, "2-bb.log", s.fd, "hard.log", 0), 0);
	memset(big, 'x', PL_MON_LOG_MAX + 1);
	memcpy(big, "pylaunch-monitor 1\n", 19);
	spool_write(&s, "big.log", big, PL_MON_LOG_MAX + 1);
	spool_write(&s, "garbage.log",
		    "\x7f"
		    "ELF\x02\x01\x01",
		    7);
	spool_write(&s, "empty.log", "", 0);
	spool_write(&s, "other-job.log", "pylaunch-monitor 1\njob\t78\nimport\tx\n", 35);
	spool_write(&s, "no-job.log", "pylaunch-monitor 1\nimport\tx\n", 28);
	spool_write(&s, "bad\nname\x1b[31m.log", "junk", 4);

	pl_test_log_clear();
	pl_mon_node_init(&node);
	assert_int_equal(pl_mon_collect(s.fd, getuid(), "77", 0, &node), 0);
	/* The hard-linked pair: both names of 2-bb.log are refused. */
	assert_int_equal(node.logs_read, 1);
	assert_int_equal(node.processes, 1);
	assert_int_equal(node.logs_skipped, 12);
	assert_false(node.partial);
	assert_true(pl_test_log_contains("more spool files skipped"));
	assert_false(pl_test_log_contains("\x1b"));
	pl_mon_node_free(&node);

	if (geteuid() == 0) {
		/* Another user's file is refused even when it is a good log. */
		assert_int_equal(fchownat(s.fd, "1-aa.log", 12345, 12345, 0), 0);
		pl_mon_node_init(&node);
		assert_int_equal(pl_mon_collect(s.fd, 0, "77", 0, &node), 0);
		assert_int_equal(node.logs_read, 0);
		pl_mon_node_free(&node);
	}
	free(big);
	spool_drop(&outside);
	spool_drop(&s);
}

/* Format 2's counts: a fork child's inherited packages, the 4096 cap, lost lines. */
static void test_parse_format_2_counts(void **state)
{
	struct pl_mon_process p;
	struct pl_mon_node node;

	(void)state;
	parse_str("pylaunch-monitor 2\njob\t77\nforked\t1\ninherited\t12\nimport\twpkg\n"
		  "truncated\t5\nlost\t2\nstatus\t0\nexit\t1700000000\n",
		  &p);
	assert_int_equal(p.inherited, 12);
	assert_int_equal(p.truncated, 5);
	assert_int_equal(p.lost, 2);
	assert_int_equal(p.status, 0);
	assert_true(p.forked && p.exited);
	pl_mon_node_init(&node);
	assert_int_equal(pl_mon_node_add(&node, &p), 0);
	assert_int_equal(node.processes_truncated, 1);
	assert_int_equal(node.imports_truncated, 5);
	assert_int_equal(node.lines_lost, 2);
	assert_true(pl_mon_node_truncated(&node));
	pl_mon_node_free(&node);
	pl_mon_process_free(&p);
	/* A dist line with an unknown origin or too few fields is skipped. */
	parse_str("pylaunch-monitor 2\nimport\ta\ndist\ta\tA\t1\tmars\ndist\ta\tA\t1\n", &p);
	assert_int_equal(p.lines_skipped, 2);
	assert_null(p.imports[0].dist);
	pl_mon_process_free(&p);
}

/* task_init's notes against the logs: the Python tasks that left none are counted, and
 * the hook's .unlogged markers too. */
static void test_collect_python_tasks_and_unlogged(void **state)
{
	static const char log100[] = "pylaunch-monitor 2\njob\t77\npid\t100\nexit\t1700000000\n";
	static const char child[] = "pylaunch-monitor 2\njob\t77\npid\t200\nforked\t1\n";
	struct spool s;
	struct pl_mon_node node;

	(void)state;
	spool_make(&s);
	spool_write(&s, "100-aa.log", log100, strlen(log100));
	spool_write(&s, "100.python-task", "", 0);
	spool_write(&s, "200.python-task", "", 0);	     /* python -I: no log of its own */
	spool_write(&s, "201-bb.log", child, strlen(child)); /* a fork child is not pid 200 */
	spool_write(&s, "300-cc.unlogged", "", 0);	     /* a full spool */
	spool_write(&s, "300.python-task", "", 0);
	spool_write(&s, "x.python-task", "", 0); /* no pid: ignored */
	pl_mon_node_init(&node);
	assert_int_equal(pl_mon_collect(s.fd, getuid(), "77", 0, &node), 0);
	assert_int_equal(node.logs_read, 2);
	assert_int_equal(node.python_tasks, 3);
	assert_int_equal(node.python_tasks_unhooked, 1);
	assert_int_equal(node.unlogged, 1);
	assert_int_equal(node.logs_skipped, 0);
	pl_mon_node_free(&node);
	spool_drop(&s);
}

static void test_collect_deadline(void **state)
{
	struct spool s;
	struct pl_mon_node node;

	(void)state;
	spool_make(&s);
	spool_write(&s, "1-aa.log", good_log, strlen(good_log));
	pl_mon_node_init(&node);
	assert_int_equal(pl_mon_collect(s.fd, getuid(), "77", pl_mon_now_ms() - 1, &node), 0);
	assert_true(node.partial);
	assert_int_equal(node.processes, 0);
	pl_mon_node_free(&node);
	spool_drop(&s);
}

/* Issue 4's benchmark: the epilog reading 1,000 process logs of a node. */
static void test_collect_thousand_logs(void **state)
{
	struct spool s;
	struct pl_mon_node node;
	char name[32], log[4096];
	long long t0, ms;

	(void)state;
	spool_make(&s);
	for (int i = 0; i < 1000; i++) {
		int n = snprintf(log, sizeof(log),
				 "pylaunch-monitor 1\npid\t%d\njob\t77\nrank\t%d\nstep\t0\n"
				 "start\t1700000000\nexecutable\t/usr/bin/python3\npyver\t3.11.2\n"
				 "main\t/home/u/run.py\n",
				 1000 + i, i % 64);
		for (int k = 0; k < 40; k++)
			n += snprintf(log + n, sizeof(log) - (size_t)n, "import\tpkg%d\n",
				      (i + k) % 60);
		n += snprintf(log + n, sizeof(log) - (size_t)n, "exit\t1700000100\n");
		snprintf(name, sizeof(name), "%d-%04x.log", 1000 + i, i);
		spool_write(&s, name, log, (size_t)n);
	}
	pl_mon_node_init(&node);
	t0 = pl_mon_now_ms();
	assert_int_equal(pl_mon_collect(s.fd, getuid(), "77", 0, &node), 0);
	ms = pl_mon_now_ms() - t0;
	assert_int_equal(node.processes, 1000);
	assert_int_equal(node.pkgs.n, 60);
	print_message("collected 1000 process logs (40 imports each) in %lld ms\n", ms);
	assert_true(ms < 5000);
	pl_mon_node_free(&node);
	spool_drop(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_full_log),
	    cmocka_unit_test(test_parse_refuses_other_formats),
	    cmocka_unit_test(test_parse_truncated_last_line),
	    cmocka_unit_test(test_parse_huge_line),
	    cmocka_unit_test(test_parse_invalid_utf8_and_controls),
	    cmocka_unit_test(test_parse_deep_nonsense),
	    cmocka_unit_test(test_parse_duplicates_and_first_values),
	    cmocka_unit_test(test_parse_unimport_retracts),
	    cmocka_unit_test(test_parse_numbers),
	    cmocka_unit_test(test_parse_imports_bounded),
	    cmocka_unit_test(test_aggregate_per_node),
	    cmocka_unit_test(test_aggregate_bounds),
	    cmocka_unit_test(test_collect_hostile_spool),
	    cmocka_unit_test(test_collect_deadline),
	    cmocka_unit_test(test_parse_format_2_counts),
	    cmocka_unit_test(test_collect_python_tasks_and_unlogged),
	    cmocka_unit_test(test_collect_thousand_logs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
