/* Unit tests of src/common/config*.c: defaults, the YAML file, plugstack overrides, validation, and
 * the message every mistake produces (file, line, key, reason). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* after the four above, which it needs and does not include */
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

#define ERRLEN 512 /* what the plugin's callers pass (PL_ERRLEN) */

/* Short enough for every message about it to fit in ERRLEN. */
static char tmp_path[256];

static const char *tmp_dir(void)
{
	const char *dir = getenv("TMPDIR");

	return dir && *dir ? dir : "/tmp";
}

/* automake runs tests with srcdir in the environment; a plain build runs from the checkout. */
static const char *src_dir(void)
{
	const char *dir = getenv("srcdir");

#ifdef PL_SRCDIR
	if (!dir)
		dir = PL_SRCDIR;
#endif
	return dir ? dir : ".";
}

static void write_tmp(const char *text, size_t len)
{
	int fd;

	snprintf(tmp_path, sizeof(tmp_path), "%s/pylaunch-test-XXXXXX", tmp_dir());
	fd = mkstemp(tmp_path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

/* Defaults, then text as the file; the file is removed, its name stays in tmp_path. */
static int load_yaml_len(struct pl_config *cfg, const char *text, size_t len, char *err)
{
	int rc;

	write_tmp(text, len);
	pl_config_init_defaults(cfg);
	rc = pl_config_load_file(cfg, tmp_path, err, ERRLEN);
	unlink(tmp_path);
	return rc;
}

static int load_yaml(struct pl_config *cfg, const char *text, char *err)
{
	return load_yaml_len(cfg, text, strlen(text), err);
}

/* The message must be "TMPFILE:WHERE: ..." and contain reason, WHERE being "LINE: KEY" or
 * "LINE" alone. */
static void expect_error_len(const char *text, size_t len, const char *where, const char *reason)
{
	struct pl_config cfg;
	char err[ERRLEN] = "", want[ERRLEN];

	assert_int_equal(load_yaml_len(&cfg, text, len, err), -1);
	snprintf(want, sizeof(want), "%s:%s: ", tmp_path, where);
	if (strncmp(err, want, strlen(want)) != 0 || !strstr(err + strlen(want), reason))
		fail_msg("got \"%s\"\nwant \"%s...%s...\"", err, want, reason);
	pl_config_free(&cfg);
}

static void expect_error(const char *text, const char *where, const char *reason)
{
	expect_error_len(text, strlen(text), where, reason);
}

static void assert_strings_equal(char *const *a, size_t na, char *const *b, size_t nb)
{
	assert_int_equal(na, nb);
	for (size_t i = 0; i < na; i++)
		assert_string_equal(a[i], b[i]);
}

static void assert_optional_string_equal(const char *a, const char *b)
{
	if (!a || !b)
		assert_ptr_equal(a, b);
	else
		assert_string_equal(a, b);
}

static void assert_sinks_equal(const struct pl_sink *a, size_t na, const struct pl_sink *b,
			       size_t nb)
{
	assert_int_equal(na, nb);
	for (size_t i = 0; i < na; i++) {
		assert_int_equal(a[i].type, b[i].type);
		assert_optional_string_equal(a[i].path, b[i].path);
		assert_optional_string_equal(a[i].address, b[i].address);
		assert_optional_string_equal(a[i].facility, b[i].facility);
		assert_int_equal(a[i].max_message, b[i].max_message);
	}
}

/* Every setting; source is where it came from, not a setting. */
static void assert_settings_equal(const struct pl_config *a, const struct pl_config *b)
{
	assert_int_equal(a->debug, b->debug);
	assert_string_equal(a->stage_dir, b->stage_dir);
	assert_true(a->stage_max_size == b->stage_max_size);
	assert_int_equal(a->stage_ld_library_path, b->stage_ld_library_path);
	assert_int_equal(a->stage_timeout, b->stage_timeout);
	assert_int_equal(a->tree_fanout, b->tree_fanout);
	assert_int_equal(a->tree_port_min, b->tree_port_min);
	assert_int_equal(a->tree_port_max, b->tree_port_max);
	assert_int_equal(a->tree_connect_timeout, b->tree_connect_timeout);
	assert_int_equal(a->tree_stall_timeout, b->tree_stall_timeout);
	assert_int_equal(a->tree_enabled, b->tree_enabled);
	assert_int_equal(a->tree_store_and_forward, b->tree_store_and_forward);
	assert_int_equal(a->tree_prolog_alloc, b->tree_prolog_alloc);
	assert_int_equal(a->monitor_default, b->monitor_default);
	assert_true(a->monitor_sample_rate == b->monitor_sample_rate);
	assert_string_equal(a->monitor_spool_dir, b->monitor_spool_dir);
	assert_string_equal(a->monitor_hook_dir, b->monitor_hook_dir);
	assert_int_equal(a->monitor_epilog_timeout, b->monitor_epilog_timeout);
	assert_strings_equal(a->staff_groups, a->n_staff_groups, b->staff_groups,
			     b->n_staff_groups);
	assert_sinks_equal(a->sinks, a->n_sinks, b->sinks, b->n_sinks);
}

/* ------------------------------------------------------------------ defaults */

static void test_defaults_are_the_documented_ones(void **state)
{
	struct pl_config cfg;
	char err[ERRLEN] = "";

	(void)state;
	pl_config_init_defaults(&cfg);
	assert_string_equal(cfg.source, "(defaults)");
	assert_false(cfg.debug);
	assert_string_equal(cfg.stage_dir, "/dev/shm/pylaunch");
	assert_true(cfg.stage_max_size == 16ULL << 30);
	assert_true(cfg.stage_ld_library_path);
	assert_int_equal(cfg.stage_timeout, 600);
	assert_int_equal(cfg.tree_fanout, 4);
	assert_int_equal(cfg.tree_port_min, 47000);
	assert_int_equal(cfg.tree_port_max, 47999);
	assert_int_equal(cfg.tree_connect_timeout, 5);
	assert_int_equal(cfg.tree_stall_timeout, 30);
	assert_true(cfg.tree_enabled);
	assert_false(cfg.tree_store_and_forward);
	assert_int_equal(cfg.tree_prolog_alloc, PL_AUTO);
	assert_false(cfg.monitor_default);
	assert_true(cfg.monitor_sample_rate == 1.0);
	assert_string_equal(cfg.monitor_spool_dir, "/dev/shm/pylaunch-spool");
	assert_int_equal(cfg.monitor_epilog_timeout, 30);
	assert_int_equal(cfg.n_staff_groups, 0);
	assert_null(cfg.staff_groups);
	assert_int_equal(cfg.n_sinks, 0);
	assert_null(cfg.sinks);
	assert_int_equal(pl_config_validate(&cfg, err, sizeof(err)), 0);
	pl_config_free(&cfg);
}

static void test_free_zeroes_and_may_repeat(void **state)
{
	struct pl_config cfg, zero;
	char err[ERRLEN];

	(void)state;
	memset(&zero, 0, sizeof(zero));
	pl_config_init_defaults(&cfg);
	assert_int_equal(pl_config_set(&cfg, "monitor.staff_groups", "a,b", err, sizeof(err)), 0);
	pl_config_free(&cfg);
	assert_memory_equal(&cfg, &zero, sizeof(cfg));
	pl_config_free(&cfg);
	assert_memory_equal(&cfg, &zero, sizeof(cfg));
}

static void test_key_names_list_the_schema(void **state)
{
	size_t n = 0;

	(void)state;
	while (pl_config_key_name(n))
		n++;
	assert_int_equal(n, 29);
	assert_string_equal(pl_config_key_name(0), "debug");
	assert_string_equal(pl_config_key_name(n - 1), "cache.verify_digest");
	assert_string_equal(pl_sink_type_name(PL_SINK_FILE), "file");
	assert_string_equal(pl_sink_type_name(PL_SINK_SYSLOG), "syslog");
}

/* ------------------------------------------------------------------ reading files */

static void test_missing_file_keeps_defaults(void **state)
{
	struct pl_config cfg, defaults;
	char err[ERRLEN] = "";
	char path[PATH_MAX];

	(void)state;
	snprintf(path, sizeof(path), "%s/pylaunch-no-such-dir-%d/pylaunch.yaml", tmp_dir(),
		 (int)getpid());
	pl_config_init_defaults(&cfg);
	pl_config_init_defaults(&defaults);
	assert_int_equal(pl_config_load_file(&cfg, path, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_string_equal(cfg.source, "(defaults)");
	assert_settings_equal(&cfg, &defaults);
	pl_config_free(&cfg);
	pl_config_free(&defaults);
}

static void assert_loads_as_defaults(const char *text)
{
	struct pl_config cfg, defaults;
	char err[ERRLEN] = "";

	pl_config_init_defaults(&defaults);
	if (load_yaml(&cfg, text, err) != 0)
		fail_msg("%s", err);
	assert_string_equal(cfg.source, tmp_path);
	assert_settings_equal(&cfg, &defaults);
	pl_config_free(&cfg);
	pl_config_free(&defaults);
}

static void test_empty_documents_mean_defaults(void **state)
{
	(void)state;
	assert_loads_as_defaults("");
	assert_loads_as_defaults("\n\n");
	assert_loads_as_defaults("# only a comment\n# and another\n");
	assert_loads_as_defaults("---\n");
	assert_loads_as_defaults("--- ~\n");
	assert_loads_as_defaults("null\n");
	assert_loads_as_defaults("---\n...\n");
	assert_loads_as_defaults("{}\n");
	/* Sections whose keys are all commented out, as in the example file. */
	assert_loads_as_defaults("stage:\n  # dir: /x\ntree:\nmonitor: {}\n");
}

static const char full_file[] =
    "debug: on\n"
    "stage:\n"
    "  dir: /tmp//stage/\n"
    "  max_size: 2GiB\n"
    "  ld_library_path: no\n"
    "  timeout: 2m\n"
    "tree:\n"
    "  enabled: no\n"
    "  store_and_forward: yes\n"
    "  prolog_alloc: yes\n"
    "  fanout: 4\n"
    "  ports: 50000-50100\n"
    "  connect_timeout: 10\n"
    "  stall_timeout: 1h\n"
    "monitor:\n"
    "  default: yes\n"
    "  sample_rate: 25%\n"
    "  spool_dir: /var/spool/pylaunch\n"
    "  epilog_timeout: 45s\n"
    "  staff_groups: [staff, \"hpc admins\"]\n"
    "  sinks:\n"
    "    - type: file\n"
    "      path: /var/log/pylaunch/imports.jsonl\n"
    "    - type: syslog\n"
    "    - {type: syslog, address: \"udp://[::1]:514\", facility: local3,\n"
    "       max_message: 4K}\n";

static void test_every_key_is_read(void **state)
{
	struct pl_config cfg;
	char err[ERRLEN] = "";

	(void)state;
	if (load_yaml(&cfg, full_file, err) != 0)
		fail_msg("%s", err);
	assert_string_equal(cfg.source, tmp_path);
	assert_true(cfg.debug);
	assert_string_equal(cfg.stage_dir, "/tmp/stage");
	assert_true(cfg.stage_max_size == 2ULL << 30);
	assert_false(cfg.stage_ld_library_path);
	assert_int_equal(cfg.stage_timeout, 120);
	assert_int_equal(cfg.tree_fanout, 4);
	assert_int_equal(cfg.tree_port_min, 50000);
	assert_int_equal(cfg.tree_port_max, 50100);
	assert_int_equal(cfg.tree_connect_timeout, 10);
	assert_int_equal(cfg.tree_stall_timeout, 3600);
	assert_false(cfg.tree_enabled);
	assert_true(cfg.tree_store_and_forward);
	assert_int_equal(cfg.tree_prolog_alloc, PL_YES);
	assert_true(cfg.monitor_default);
	assert_true(cfg.monitor_sample_rate == 0.25);
	assert_string_equal(cfg.monitor_spool_dir, "/var/spool/pylaunch");
	assert_int_equal(cfg.monitor_epilog_timeout, 45);
	assert_int_equal(cfg.n_staff_groups, 2);
	assert_string_equal(cfg.staff_groups[0], "staff");
	assert_string_equal(cfg.staff_groups[1], "hpc admins");
	assert_int_equal(pl_config_validate(&cfg, err, sizeof(err)), 0);
	pl_config_free(&cfg);
}

static void test_sinks_get_their_defaults(void **state)
{
	struct pl_config cfg;
	char err[ERRLEN] = "";

	(void)state;
	if (load_yaml(&cfg, full_file, err) != 0)
		fail_msg("%s", err);
	assert_int_equal(cfg.n_sinks, 3);
	assert_int_equal(cfg.sinks[0].type, PL_SINK_FILE);
	assert_string_equal(cfg.sinks[0].path, "/var/log/pylaunch/imports.jsonl");
	assert_null(cfg.sinks[0].address);
	assert_int_equal(cfg.sinks[1].type, PL_SINK_SYSLOG);
	assert_null(cfg.sinks[1].path);
	assert_string_equal(cfg.sinks[1].address, "local");
	assert_string_equal(cfg.sinks[1].facility, "user");
	assert_int_equal(cfg.sinks[1].max_message, 8192);
	assert_string_equal(cfg.sinks[2].address, "udp://[::1]:514");
	assert_string_equal(cfg.sinks[2].facility, "local3");
	assert_int_equal(cfg.sinks[2].max_message, 4096);
	pl_config_free(&cfg);
}

static void test_yaml11_booleans_plain_and_quoted(void **state)
{
	struct pl_config cfg;
	char err[ERRLEN] = "";

	(void)state;
	assert_int_equal(load_yaml(&cfg, "monitor:\n  default: on\n", err), 0);
	assert_true(cfg.monitor_default);
	pl_config_free(&cfg);
	assert_int_equal(load_yaml(&cfg, "monitor:\n  default: \"on\"\ndebug: 'YES'\n", err), 0);
	assert_true(cfg.monitor_default);
	assert_true(cfg.debug);
	pl_config_free(&cfg);
	assert_int_equal(load_yaml(&cfg, "stage: {ld_library_path: Off}\n", err), 0);
	assert_false(cfg.stage_ld_library_path);
	pl_config_free(&cfg);
}

static void test_quoted_numbers_and_flow_style(void **state)
{
	struct pl_config cfg;
	char err[ERRLEN] = "";

	(void)state;
	if (load_yaml(&cfg, "{debug: 1, tree: {fanout: \"2\", ports: '48000'}}", err) != 0)
		fail_msg("%s", err);
	assert_true(cfg.debug);
	assert_int_equal(cfg.tree_fanout, 2);
	assert_int_equal(cfg.tree_port_min, 48000);
	assert_int_equal(cfg.tree_port_max, 48000);
	pl_config_free(&cfg);
}

/* The spelling of the plugstack line works in the file too, and counts as the same key. */
static void test_dotted_keys_at_the_top(void **state)
{
	struct pl_config cfg;
	char err[ERRLEN] = "";

	(void)state;
	assert_int_equal(load_yaml(&cfg, "tree.fanout: 3\n", err), 0);
	assert_int_equal(cfg.tree_fanout, 3);
	pl_config_free(&cfg);
	expect_error("tree.fanout: 3\ntree:\n  fanout: 4\n", "3: tree.fanout",
		     "duplicate key (first given on line 1)");
}

static void test_staff_groups_forms(void **state)
{
	struct pl_config cfg;
	char err[ERRLEN] = "";

	(void)state;
	assert_int_equal(load_yaml(&cfg, "monitor:\n  staff_groups: staff,admins\n", err), 0);
	assert_int_equal(cfg.n_staff_groups, 2);
	assert_string_equal(cfg.staff_groups[1], "admins");
	pl_config_free(&cfg);
	assert_int_equal(load_yaml(&cfg, "monitor:\n  staff_groups:\n    - wheel\n", err), 0);
	assert_int_equal(cfg.n_staff_groups, 1);
	assert_string_equal(cfg.staff_groups[0], "wheel");
	pl_config_free(&cfg);
	assert_int_equal(load_yaml(&cfg, "monitor:\n  staff_groups:\n  sinks:\n", err), 0);
	assert_int_equal(cfg.n_staff_groups, 0);
	assert_int_equal(cfg.n_sinks, 0);
	pl_config_free(&cfg);
}

/* A second file replaces the lists the first gave and keeps what it does not mention. */
static void test_second_file_replaces_lists(void **state)
{
	struct pl_config cfg;
	char err[ERRLEN] = "";
	const char *second = "monitor:\n  staff_groups: [ops]\n"
			     "  sinks:\n    - {type: file, path: /x.jsonl}\n";

	(void)state;
	if (load_yaml(&cfg, full_file, err) != 0)
		fail_msg("%s", err);
	write_tmp(second, strlen(second));
	assert_int_equal(pl_config_load_file(&cfg, tmp_path, err, sizeof(err)), 0);
	unlink(tmp_path);
	assert_string_equal(cfg.source, tmp_path);
	assert_int_equal(cfg.n_staff_groups, 1);
	assert_string_equal(cfg.staff_groups[0], "ops");
	assert_int_equal(cfg.n_sinks, 1);
	assert_string_equal(cfg.sinks[0].path, "/x.jsonl");
	assert_int_equal(cfg.tree_fanout, 4);
	pl_config_free(&cfg);
}

/* ------------------------------------------------------------------ the example file */

static void load_example(struct pl_config *cfg, char *path, size_t size)
{
	char err[ERRLEN] = "";

	snprintf(path, size, "%s/etc/pylaunch.yaml", src_dir());
	pl_config_init_defaults(cfg);
	if (pl_config_load_file(cfg, path, err, ERRLEN) != 0)
		fail_msg("%s", err);
	assert_string_equal(cfg->source, path);
	if (pl_config_validate(cfg, err, ERRLEN) != 0)
		fail_msg("%s", err);
}

static void test_example_file_holds_the_defaults(void **state)
{
	struct pl_config example, defaults;
	char path[PATH_MAX];

	(void)state;
	load_example(&example, path, sizeof(path));
	pl_config_init_defaults(&defaults);
	assert_settings_equal(&example, &defaults);
	pl_config_free(&example);
	pl_config_free(&defaults);
}

static char *read_whole(const char *path)
{
	FILE *f = fopen(path, "r");
	char *text = calloc(1, 65536);
	size_t n;

	assert_non_null(f);
	assert_non_null(text);
	n = fread(text, 1, 65535, f);
	assert_true(n > 0 && n < 65535);
	fclose(f);
	return text;
}

/* Every key of the schema is in the example, uncommented, indented as its section wants. */
static void test_example_file_names_every_key(void **state)
{
	struct pl_config example;
	char path[PATH_MAX], *text;

	(void)state;
	load_example(&example, path, sizeof(path));
	text = read_whole(path);
	for (size_t i = 0; pl_config_key_name(i); i++) {
		const char *name = pl_config_key_name(i), *leaf = strrchr(name, '.');
		char line[128];

		snprintf(line, sizeof(line), "\n%s%s:", leaf ? "  " : "", leaf ? leaf + 1 : name);
		/* Its default is the build's data directory: documented, commented out. */
		if (strcmp(name, "monitor.hook_dir") == 0)
			snprintf(line, sizeof(line), "\n  # hook_dir:");
		if (!strstr(text, line))
			fail_msg("%s: no line for %s", path, name);
	}
	free(text);
	pl_config_free(&example);
}

/* The commented-out sinks of the example, uncommented, must load as they are. */
static void test_example_sinks_load_uncommented(void **state)
{
	struct pl_config example, cfg;
	char path[PATH_MAX], err[ERRLEN] = "", *text, *sinks, *out;

	(void)state;
	load_example(&example, path, sizeof(path));
	text = read_whole(path);
	sinks = strstr(text, "  # sinks:\n");
	assert_non_null(sinks);
	out = calloc(1, strlen(sinks) + 16);
	assert_non_null(out);
	strcpy(out, "monitor:\n");
	for (const char *s = sinks; *s;) {
		const char *end = strchrnul(s, '\n');

		/* "  # X" becomes "  X" */
		strncat(out, s, 2);
		strncat(out, s + 4, (size_t)(end - s) - 4);
		strcat(out, "\n");
		s = *end ? end + 1 : end;
	}
	if (load_yaml(&cfg, out, err) != 0)
		fail_msg("%s\n%s", err, out);
	assert_int_equal(cfg.n_sinks, 2);
	assert_int_equal(cfg.sinks[0].type, PL_SINK_FILE);
	assert_int_equal(cfg.sinks[1].type, PL_SINK_SYSLOG);
	assert_int_equal(cfg.sinks[1].max_message, 8192);
	assert_int_equal(pl_config_validate(&cfg, err, sizeof(err)), 0);
	pl_config_free(&cfg);
	free(out);
	free(text);
	pl_config_free(&example);
}

/* ------------------------------------------------------------------ errors in the file */

static void test_error_message_has_the_documented_form(void **state)
{
	struct pl_config cfg;
	char err[ERRLEN] = "", want[ERRLEN];

	(void)state;
	assert_int_equal(load_yaml(&cfg,
				   "monitor:\n"
				   "  sinks:\n"
				   "    - type: file\n"
				   "      path: /var/log/pylaunch.jsonl\n"
				   "    - type: kafka\n",
				   err),
			 -1);
	snprintf(want, sizeof(want),
		 "%s:5: monitor.sinks[1].type: unknown sink type 'kafka' (expected file or syslog)",
		 tmp_path);
	assert_string_equal(err, want);
	pl_config_free(&cfg);
}

static void test_unknown_keys_at_every_level(void **state)
{
	(void)state;
	expect_error("debug: no\nfoo: 1\n", "2: foo",
		     "unknown key (expected one of: debug, stage, epilog, tree, monitor, bundles, "
		     "policy, cache)");
	expect_error(
	    "tree:\n  fanot: 4\n", "2: tree.fanot",
	    "unknown key (expected one of: enabled, fanout, ports, connect_timeout, stall_timeout, "
	    "store_and_forward, prolog_alloc)");
	expect_error("monitor:\n  sinks:\n    - type: file\n      colour: red\n",
		     "4: monitor.sinks[0].colour",
		     "unknown key (expected one of: type, path, address, facility, max_message)");
	expect_error("stage.dir.x: 1\n", "1: stage.dir.x", "unknown key (expected one of: dir, ");
	expect_error("Debug: true\n", "1: Debug", "unknown key");
}

static void test_unknown_key_is_shown_safely(void **state)
{
	char long_key[300], where[80] = "1: ";

	(void)state;
	memset(long_key, 'k', sizeof(long_key));
	memcpy(long_key + 280, ": 1\n", 5);
	/* cut to 64 characters and marked */
	memset(where + 3, 'k', 64);
	strcpy(where + 67, "...");
	expect_error(long_key, where,
		     "unknown key (expected one of: debug, stage, epilog, tree, monitor, bundles, "
		     "policy, cache)");
	expect_error("\"a\\nb\": 1\n", "1: a?b", "unknown key");
}

static void test_wrong_node_kinds(void **state)
{
	(void)state;
	expect_error("debug: {a: 1}\n", "1: debug", "expected a single value, found a mapping");
	expect_error("debug: [1]\n", "1: debug", "expected a single value, found a list");
	expect_error("tree: [1, 2]\n", "1: tree",
		     "expected a mapping of tree settings, found a list");
	expect_error("stage: yes\n", "1: stage",
		     "expected a mapping of stage settings, found a single value");
	expect_error("monitor:\n  sinks: {type: file}\n", "2: monitor.sinks",
		     "expected a list, found a mapping");
	expect_error("monitor:\n  sinks: file\n", "2: monitor.sinks", "expected a list");
	expect_error(
	    "monitor:\n  sinks:\n    - file\n", "3: monitor.sinks[0]",
	    "expected a mapping (type: file or syslog, and its keys), found a single value");
	expect_error("monitor:\n  sinks:\n    - type: [file]\n", "3: monitor.sinks[0].type",
		     "expected a single value, found a list");
	expect_error("monitor:\n  staff_groups: [[a]]\n", "2: monitor.staff_groups[0]",
		     "expected a group name, found a list");
	expect_error("monitor:\n  staff_groups: {a: b}\n", "2: monitor.staff_groups",
		     "expected a list, found a mapping");
	expect_error("? [a]\n: 1\n", "1", "expected a key, found a list");
}

static void test_top_level_must_be_a_mapping(void **state)
{
	(void)state;
	expect_error("- debug\n- tree\n", "1",
		     "expected a mapping of settings (KEY: VALUE), found a list");
	expect_error("hello world\n", "1", "found a single value");
	expect_error("#!/bin/sh\necho hello\n", "2", "found a single value");
}

static void test_not_yaml(void **state)
{
	(void)state;
	expect_error("tree: {fanout: 4\n", "2",
		     "invalid YAML: did not find expected ',' or '}' (while parsing a flow mapping "
		     "on line 1)");
	/* an INI file: its first line already is no mapping */
	expect_error("[main]\ndebug=1\n", "1",
		     "expected a mapping of settings (KEY: VALUE), found a list");
	expect_error("stage:\n  dir: /x\n\tfanout: 3\n", "3", "invalid YAML");
	expect_error("debug: \"unterminated\n", "2", "invalid YAML");
	/* binary: reader errors carry an offset, turned into a line */
	expect_error_len("debug: true\nstage:\n  dir: \x01\x02\n", 28, "3", "invalid YAML");
	expect_error_len("debug: true\n\xc3\x28: 1\n", 17, "2", "invalid YAML");
}

static void test_values_out_of_range_or_malformed(void **state)
{
	(void)state;
	expect_error("tree:\n  fanout: abc\n", "2: tree.fanout",
		     "expected an integer between 1 and 64 (got 'abc')");
	expect_error("tree:\n  fanout: 65\n", "2: tree.fanout", "between 1 and 64 (got '65')");
	expect_error("tree:\n  fanout: 0\n", "2: tree.fanout", "between 1 and 64");
	expect_error("tree:\n  fanout: -1\n", "2: tree.fanout", "between 1 and 64");
	expect_error("tree:\n  fanout: 4.0\n", "2: tree.fanout", "between 1 and 64");
	expect_error("tree:\n  ports: 2000-1000\n", "2: tree.ports",
		     "expected a port range LO-HI with 1024 <= LO <= HI <= 65535");
	expect_error("tree:\n  ports: 80-90\n", "2: tree.ports", "port range");
	expect_error("tree:\n  connect_timeout: 10m\n", "2: tree.connect_timeout",
		     "expected a duration between 1 and 300 seconds");
	expect_error("stage:\n  timeout: 0\n", "2: stage.timeout", "between 1 and 86400 seconds");
	expect_error("stage:\n  timeout: 1d\n", "2: stage.timeout", "(got '1d')");
	expect_error("stage:\n  max_size: 16\n", "2: stage.max_size",
		     "expected a size between 1M and 1024T");
	expect_error("stage:\n  max_size: 1.5G\n", "2: stage.max_size", "expected a size");
	expect_error("stage:\n  max_size: 2048T\n", "2: stage.max_size", "expected a size");
	expect_error("monitor:\n  sample_rate: 1.5\n", "2: monitor.sample_rate",
		     "expected a fraction between 0 and 1 (e.g. 0.25 or 25%)");
	expect_error("monitor:\n  sample_rate: nan\n", "2: monitor.sample_rate", "fraction");
	expect_error("debug: maybe\n", "1: debug",
		     "expected a boolean (yes/no, true/false, on/off, 1/0) (got 'maybe')");
	expect_error("monitor:\n  epilog_timeout: 2h\n", "2: monitor.epilog_timeout", "3600");
}

static void test_bad_paths(void **state)
{
	(void)state;
	expect_error("stage:\n  dir: tmp/stage\n", "2: stage.dir", "expected an absolute path");
	expect_error("stage:\n  dir: \"\"\n", "2: stage.dir", "expected an absolute path");
	expect_error("stage:\n  dir: /dev/shm/../etc\n", "2: stage.dir",
		     "must not contain . or .. components");
	expect_error("stage:\n  dir: /dev/./shm\n", "2: stage.dir", ". or ..");
	expect_error("stage:\n  dir: /\n", "2: stage.dir", "must not be / itself");
	expect_error("stage:\n  dir: //\n", "2: stage.dir", "must not be / itself");
	expect_error("monitor:\n  spool_dir: \"/x\\ty\"\n", "2: monitor.spool_dir",
		     "control character (got '/x?y')");
}

static void test_no_value(void **state)
{
	(void)state;
	expect_error("debug:\n", "1: debug", "no value (leave the key out to keep the default)");
	expect_error("tree:\n  fanout: ~\n", "2: tree.fanout", "no value");
	expect_error("stage:\n  dir: null\n", "2: stage.dir", "no value");
	expect_error("monitor:\n  sinks:\n    - type:\n", "3: monitor.sinks[0].type", "no value");
	expect_error("~: 1\n", "1", "expected a key, found no value");
}

static void test_duplicate_keys(void **state)
{
	(void)state;
	expect_error("debug: true\ndebug: false\n", "2: debug",
		     "duplicate key (first given on line 1)");
	expect_error("tree:\n  fanout: 2\n\ntree:\n  ports: 48000\n", "4: tree",
		     "duplicate key (first given on line 1)");
	expect_error("tree:\n  fanout: 2\n  fanout: 2\n", "3: tree.fanout",
		     "duplicate key (first given on line 2)");
	expect_error("monitor:\n  sinks:\n    - type: file\n      path: /a\n      path: /b\n",
		     "5: monitor.sinks[0].path", "duplicate key (first given on line 4)");
}

static void test_sink_errors(void **state)
{
	(void)state;
	expect_error("monitor:\n  sinks:\n    - path: /x.jsonl\n", "3: monitor.sinks[0]",
		     "missing type (file or syslog)");
	expect_error("monitor:\n  sinks:\n    - type: file\n", "3: monitor.sinks[0].path",
		     "missing");
	expect_error("monitor:\n  sinks:\n    - type: file\n      path: x.jsonl\n",
		     "4: monitor.sinks[0].path", "expected an absolute path (got 'x.jsonl')");
	expect_error("monitor:\n  sinks:\n    - type: file\n      path: /x\n      facility: user\n",
		     "5: monitor.sinks[0].facility",
		     "not a key of a file sink (it takes: type, path)");
	expect_error("monitor:\n  sinks:\n    - {type: syslog, path: /x}\n",
		     "3: monitor.sinks[0].path",
		     "not a key of a syslog sink (it takes: type, address, facility, max_message)");
	expect_error("monitor:\n  sinks:\n    - {type: syslog, facility: local8}\n",
		     "3: monitor.sinks[0].facility", "unknown syslog facility");
	expect_error("monitor:\n  sinks:\n    - {type: syslog, address: udp://loghost}\n",
		     "3: monitor.sinks[0].address", "syslog address without a valid HOST:PORT");
	expect_error("monitor:\n  sinks:\n    - {type: syslog, address: \"udp://h:0\"}\n",
		     "3: monitor.sinks[0].address", "valid port");
	expect_error("monitor:\n  sinks:\n    - {type: syslog, address: kafka://h:1}\n",
		     "3: monitor.sinks[0].address", "unknown syslog address");
	expect_error("monitor:\n  sinks:\n    - {type: syslog, address: \"tcp://[zz]:514\"}\n",
		     "3: monitor.sinks[0].address", "HOST:PORT");
	expect_error("monitor:\n  sinks:\n    - {type: syslog, max_message: 100}\n",
		     "3: monitor.sinks[0].max_message", "expected a size between 480 and 1M");
	expect_error("monitor:\n  sinks:\n    - type: syslog\n      address: udp://h:514\n"
		     "      max_message: 100K\n",
		     "3: monitor.sinks[0].max_message", "at most 65507 bytes over UDP");
	expect_error("monitor:\n  sinks:\n    - File: x\n", "3: monitor.sinks[0].File",
		     "unknown key");
	expect_error("monitor:\n  sinks:\n    - type: FILE\n", "3: monitor.sinks[0].type",
		     "unknown sink type 'FILE'");
}

static void test_tcp_syslog_may_send_long_messages(void **state)
{
	struct pl_config cfg;
	char err[ERRLEN] = "";

	(void)state;
	if (load_yaml(
		&cfg,
		"monitor:\n  sinks:\n    - {type: syslog, address: \"tcp://log-1.example:6514\","
		" max_message: 1M}\n",
		err) != 0)
		fail_msg("%s", err);
	assert_int_equal(cfg.sinks[0].max_message, 1024 * 1024);
	pl_config_free(&cfg);
}

static void test_list_limits(void **state)
{
	char text[4096] = "monitor:\n  sinks:\n";
	char groups[2048] = "monitor:\n  staff_groups: [g0";

	(void)state;
	for (int i = 0; i < 17; i++)
		strcat(text, "    - {type: file, path: /x}\n");
	expect_error(text, "19: monitor.sinks[16]", "more than 16 sinks");
	for (int i = 1; i < 65; i++)
		sprintf(groups + strlen(groups), ", g%d", i);
	strcat(groups, "]\n");
	expect_error(groups, "2: monitor.staff_groups[64]", "more than 64 groups");
}

static void test_bad_group_names(void **state)
{
	(void)state;
	expect_error("monitor:\n  staff_groups: [\"a:b\"]\n", "2: monitor.staff_groups[0]",
		     "group name with a comma, a colon or a control character");
	expect_error("monitor:\n  staff_groups: [\"\"]\n", "2: monitor.staff_groups[0]",
		     "empty group name");
	expect_error("monitor:\n  staff_groups: \"a,,b\"\n", "2: monitor.staff_groups",
		     "empty group name");
	expect_error("monitor:\n  staff_groups: [~]\n", "2: monitor.staff_groups[0]",
		     "expected a group name, found no value");
}

static void test_anchors_aliases_tags_refused(void **state)
{
	(void)state;
	expect_error("stage: &s\n  dir: /x\n", "1: stage",
		     "YAML anchors (&NAME) are not supported");
	expect_error("debug: *x\n", "1: debug", "YAML aliases (*NAME) are not supported");
	expect_error("debug: !!bool true\n", "1: debug", "YAML tags (!TAG) are not supported");
	expect_error("tree: !custom\n  fanout: 4\n", "1: tree", "YAML tags");
	expect_error("monitor:\n  staff_groups: !!seq [a]\n", "2: monitor.staff_groups", "tags");
	/* billion laughs: refused at the first anchor, nothing is expanded */
	expect_error("stage: &a [\"lol\",\"lol\"]\ntree: &b [*a,*a]\nmonitor: [*b,*b]\n",
		     "1: stage", "anchors");
}

static void test_nul_in_a_value_refused(void **state)
{
	(void)state;
	expect_error("stage:\n  dir: \"/x\\0y\"\n", "2: stage.dir", "a value with a NUL character");
	expect_error("\"debug\\0x\": true\n", "1", "a value with a NUL character");
}

static void test_second_document_refused(void **state)
{
	(void)state;
	expect_error("debug: true\n---\ndebug: false\n", "2",
		     "a second YAML document (the file must hold one)");
}

/* ------------------------------------------------------------------ hostile and odd files */

static void test_deep_nesting_does_not_crash(void **state)
{
	size_t depth = 200000;
	char *text = malloc(depth + 16);

	(void)state;
	assert_non_null(text);
	memcpy(text, "debug: ", 7);
	memset(text + 7, '[', depth);
	expect_error_len(text, depth + 7, "1: debug", "expected a single value, found a list");
	memset(text, '{', depth);
	expect_error_len(text, depth, "1", "expected a key, found a mapping");
	memset(text, '[', depth);
	expect_error_len(text, depth, "1", "found a list");
	free(text);
}

static void test_file_size_limit(void **state)
{
	size_t size = PL_CONFIG_MAX_FILE_SIZE;
	char *text = malloc(size + 1);
	struct pl_config cfg;
	char err[ERRLEN] = "", want[ERRLEN];

	(void)state;
	assert_non_null(text);
	/* Exactly the limit, comments and one key: read. */
	memset(text, '#', size);
	for (size_t i = 99; i < size; i += 100)
		text[i] = '\n';
	memcpy(text + size - 12, "\ndebug: on\n", 11);
	text[size - 1] = '\n';
	assert_int_equal(load_yaml_len(&cfg, text, size, err), 0);
	assert_true(cfg.debug);
	pl_config_free(&cfg);
	/* One byte more: refused without parsing. */
	text[size] = '\n';
	assert_int_equal(load_yaml_len(&cfg, text, size + 1, err), -1);
	snprintf(want, sizeof(want), "%s: larger than 1 MiB: not a pylaunch configuration",
		 tmp_path);
	assert_string_equal(err, want);
	pl_config_free(&cfg);
	free(text);
}

static void test_huge_scalar_is_quoted_briefly(void **state)
{
	size_t len = 100000;
	char *text = malloc(len + 16);
	struct pl_config cfg;
	char err[ERRLEN] = "";

	(void)state;
	assert_non_null(text);
	memcpy(text, "debug: ", 7);
	memset(text + 7, 'x', len);
	assert_int_equal(load_yaml_len(&cfg, text, len + 7, err), -1);
	assert_non_null(strstr(err, "(got 'xxxxxxxx"));
	assert_non_null(strstr(err, "...')"));
	assert_true(strlen(err) < 400);
	pl_config_free(&cfg);
	free(text);
}

static void assert_file_error(const char *path, const char *reason)
{
	struct pl_config cfg;
	char err[ERRLEN] = "", want[ERRLEN];

	pl_config_init_defaults(&cfg);
	assert_int_equal(pl_config_load_file(&cfg, path, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s: %s", path, reason);
	assert_string_equal(err, want);
	assert_string_equal(cfg.source, "(defaults)");
	pl_config_free(&cfg);
}

static void test_directory_refused(void **state)
{
	(void)state;
	assert_file_error(tmp_dir(), strerror(EISDIR));
}

static void test_not_a_directory(void **state)
{
	char path[PATH_MAX];

	(void)state;
	write_tmp("debug: on\n", 10);
	snprintf(path, sizeof(path), "%s/pylaunch.yaml", tmp_path);
	assert_file_error(path, strerror(ENOTDIR));
	unlink(tmp_path);
}

static void test_fifo_refused_without_hanging(void **state)
{
	char path[PATH_MAX];

	(void)state;
	snprintf(path, sizeof(path), "%s/pylaunch-fifo-%d", tmp_dir(), (int)getpid());
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_file_error(path, "not a regular file");
	unlink(path);
}

/* root reads any file: become nobody for the open, as far as the kernel is concerned. */
static void test_unreadable_file(void **state)
{
	bool was_root = geteuid() == 0;

	(void)state;
	write_tmp("debug: on\n", 10);
	assert_int_equal(chmod(tmp_path, 0), 0);
	if (was_root && seteuid(65534) != 0) {
		unlink(tmp_path);
		skip();
	}
	assert_file_error(tmp_path, strerror(EACCES));
	if (was_root)
		assert_int_equal(seteuid(0), 0);
	unlink(tmp_path);
}

static void test_failed_load_frees_cleanly(void **state)
{
	struct pl_config cfg;
	char err[ERRLEN] = "";

	(void)state;
	/* Lists half built when the error comes: nothing leaks (valgrind, ASan). */
	assert_int_equal(load_yaml(&cfg, "monitor:\n  staff_groups: [a, b, \"c:d\"]\n", err), -1);
	pl_config_free(&cfg);
	assert_int_equal(load_yaml(&cfg,
				   "monitor:\n  sinks:\n    - {type: syslog, facility: local1}\n"
				   "    - {type: syslog, facility: nope}\n",
				   err),
			 -1);
	pl_config_free(&cfg);
	assert_int_equal(
	    load_yaml(&cfg, "monitor:\n  sinks:\n    - {type: file, path: /a, path: /b}\n", err),
	    -1);
	pl_config_free(&cfg);
}

/* ------------------------------------------------------------------ plugstack overrides */

static void assert_set(struct pl_config *cfg, const char *key, const char *value)
{
	char err[ERRLEN] = "";

	if (pl_config_set(cfg, key, value, err, sizeof(err)) != 0)
		fail_msg("%s", err);
}

static void assert_set_fails(const char *key, const char *value, const char *want)
{
	struct pl_config cfg, before;
	char err[ERRLEN] = "";

	pl_config_init_defaults(&cfg);
	pl_config_init_defaults(&before);
	assert_set(&cfg, "monitor.staff_groups", "keep");
	assert_set(&before, "monitor.staff_groups", "keep");
	assert_int_equal(pl_config_set(&cfg, key, value, err, sizeof(err)), -1);
	assert_string_equal(err, want);
	/* a refused override changes nothing */
	assert_settings_equal(&cfg, &before);
	pl_config_free(&cfg);
	pl_config_free(&before);
}

static void test_set_every_kind_of_key(void **state)
{
	struct pl_config cfg;
	char err[ERRLEN] = "";

	(void)state;
	pl_config_init_defaults(&cfg);
	assert_set(&cfg, "debug", "yes");
	assert_set(&cfg, "stage.dir", "/tmp/x/");
	assert_set(&cfg, "stage.max_size", "1T");
	assert_set(&cfg, "stage.ld_library_path", "off");
	assert_set(&cfg, "stage.timeout", "20m");
	assert_set(&cfg, "tree.fanout", "4");
	assert_set(&cfg, "tree.ports", "48000-48100");
	assert_set(&cfg, "tree.connect_timeout", "1");
	assert_set(&cfg, "tree.stall_timeout", "1h");
	assert_set(&cfg, "monitor.default", "on");
	assert_set(&cfg, "monitor.sample_rate", "25%");
	assert_set(&cfg, "monitor.spool_dir", "/var/spool/pl");
	assert_set(&cfg, "monitor.epilog_timeout", "90");
	assert_set(&cfg, "monitor.staff_groups", "staff,admins");
	assert_true(cfg.debug);
	assert_string_equal(cfg.stage_dir, "/tmp/x");
	assert_true(cfg.stage_max_size == 1ULL << 40);
	assert_false(cfg.stage_ld_library_path);
	assert_int_equal(cfg.stage_timeout, 1200);
	assert_int_equal(cfg.tree_fanout, 4);
	assert_int_equal(cfg.tree_port_min, 48000);
	assert_int_equal(cfg.tree_port_max, 48100);
	assert_int_equal(cfg.tree_connect_timeout, 1);
	assert_int_equal(cfg.tree_stall_timeout, 3600);
	assert_true(cfg.monitor_default);
	assert_true(cfg.monitor_sample_rate == 0.25);
	assert_string_equal(cfg.monitor_spool_dir, "/var/spool/pl");
	assert_int_equal(cfg.monitor_epilog_timeout, 90);
	assert_int_equal(cfg.n_staff_groups, 2);
	assert_string_equal(cfg.staff_groups[0], "staff");
	assert_string_equal(cfg.staff_groups[1], "admins");
	assert_int_equal(pl_config_validate(&cfg, err, sizeof(err)), 0);
	assert_set(&cfg, "monitor.staff_groups", "");
	assert_int_equal(cfg.n_staff_groups, 0);
	assert_null(cfg.staff_groups);
	pl_config_free(&cfg);
}

static void test_set_overrides_the_file(void **state)
{
	struct pl_config cfg;
	char err[ERRLEN] = "";

	(void)state;
	if (load_yaml(&cfg, full_file, err) != 0)
		fail_msg("%s", err);
	assert_set(&cfg, "tree.fanout", "16");
	assert_set(&cfg, "monitor.staff_groups", "ops");
	assert_int_equal(cfg.tree_fanout, 16);
	assert_int_equal(cfg.n_staff_groups, 1);
	assert_string_equal(cfg.staff_groups[0], "ops");
	assert_int_equal(cfg.n_sinks, 3);
	pl_config_free(&cfg);
}

static void test_set_errors(void **state)
{
	(void)state;
	assert_set_fails(
	    "tree.fanout", "abc",
	    "plugstack argument 'tree.fanout=abc': expected an integer between 1 and 64");
	assert_set_fails("tree.fanout", "",
			 "plugstack argument 'tree.fanout=': expected an integer between 1 and 64");
	assert_set_fails("debug", "maybe",
			 "plugstack argument 'debug=maybe': expected a boolean (yes/no, "
			 "true/false, on/off, 1/0)");
	assert_set_fails("stage.dir", "tmp",
			 "plugstack argument 'stage.dir=tmp': expected an absolute path");
	assert_set_fails("tree.ports", "47999-47000",
			 "plugstack argument 'tree.ports=47999-47000': expected a port range LO-HI "
			 "with 1024 <= LO <= HI <= 65535 (e.g. 47000-47999)");
	assert_set_fails("monitor.staff_groups", "a,,b",
			 "plugstack argument 'monitor.staff_groups=a,,b': empty group name "
			 "(expected e.g. staff,admins)");
	assert_set_fails("monitor.sinks", "file:/x",
			 "plugstack argument 'monitor.sinks=file:/x': sinks can only be configured "
			 "in the YAML file");
}

/* tree.prolog_alloc: auto, or a boolean, in the file and on the plugstack line alike. */
static void test_prolog_alloc_is_auto_or_a_boolean(void **state)
{
	static const struct {
		const char *text;
		enum pl_auto_bool want;
	} cases[] = {{"auto", PL_AUTO}, {"yes", PL_YES}, {"on", PL_YES}, {"true", PL_YES},
		     {"1", PL_YES},	{"no", PL_NO},	 {"off", PL_NO}, {"false", PL_NO}};
	struct pl_config cfg;
	char yaml[64], err[ERRLEN] = "";

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(yaml, sizeof(yaml), "tree:\n  prolog_alloc: %s\n", cases[i].text);
		if (load_yaml(&cfg, yaml, err) != 0)
			fail_msg("%s: %s", cases[i].text, err);
		assert_int_equal(cfg.tree_prolog_alloc, cases[i].want);
		/* and back to auto from the plugstack line */
		assert_set(&cfg, "tree.prolog_alloc", "auto");
		assert_int_equal(cfg.tree_prolog_alloc, PL_AUTO);
		assert_set(&cfg, "tree.prolog_alloc", cases[i].text);
		assert_int_equal(cfg.tree_prolog_alloc, cases[i].want);
		pl_config_free(&cfg);
	}
	expect_error("tree:\n  prolog_alloc: maybe\n", "2: tree.prolog_alloc",
		     "expected auto or a boolean (yes/no, true/false, on/off, 1/0) (got 'maybe')");
	expect_error("tree:\n  prolog_alloc: Auto\n", "2: tree.prolog_alloc", "(got 'Auto')");
	assert_set_fails("tree.prolog_alloc", "",
			 "plugstack argument 'tree.prolog_alloc=': expected auto or a boolean "
			 "(yes/no, true/false, on/off, 1/0)");
}

static void test_set_unknown_keys(void **state)
{
	(void)state;
	assert_set_fails(
	    "tree.fanot", "4",
	    "plugstack argument 'tree.fanot=4': unknown key (expected one of: "
	    "tree.enabled, tree.fanout, tree.ports, tree.connect_timeout, tree.stall_timeout, "
	    "tree.store_and_forward, tree.prolog_alloc)");
	assert_set_fails("tree", "4",
			 "plugstack argument 'tree=4': unknown key (expected one of: tree.enabled, "
			 "tree.fanout, tree.ports, tree.connect_timeout, tree.stall_timeout, "
			 "tree.store_and_forward, tree.prolog_alloc)");
	assert_set_fails("fanout", "4",
			 "plugstack argument 'fanout=4': unknown key (expected one of: debug, "
			 "stage.*, epilog.*, tree.*, monitor.*, bundles, policy.*, cache.*)");
	assert_set_fails("", "4",
			 "plugstack argument '=4': unknown key (expected one of: debug, stage.*, "
			 "epilog.*, tree.*, monitor.*, bundles, policy.*, cache.*)");
	assert_set_fails("debug.x", "4",
			 "plugstack argument 'debug.x=4': unknown key (expected one of: debug, "
			 "stage.*, epilog.*, tree.*, monitor.*, bundles, policy.*, cache.*)");
}

static void test_set_shows_values_safely(void **state)
{
	struct pl_config cfg;
	char err[ERRLEN] = "";

	(void)state;
	pl_config_init_defaults(&cfg);
	assert_int_equal(pl_config_set(&cfg, "debug", "yes\nfake log line", err, sizeof(err)), -1);
	assert_null(strchr(err, '\n'));
	assert_non_null(strstr(err, "'debug=yes?fake log line'"));
	assert_int_equal(pl_config_set(&cfg, NULL, NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "unknown key"));
	/* A small buffer gets a cut message, never an overflow. */
	assert_int_equal(pl_config_set(&cfg, "tree.fanout", "x", err, 10), -1);
	assert_string_equal(err, "plugstack");
	pl_config_free(&cfg);
}

/* ------------------------------------------------------------------ validation */

static void assert_invalid(const struct pl_config *cfg, const char *want)
{
	char err[ERRLEN] = "";

	assert_int_equal(pl_config_validate(cfg, err, sizeof(err)), -1);
	assert_string_equal(err, want);
}

static void test_validate_port_order(void **state)
{
	struct pl_config cfg;

	(void)state;
	pl_config_init_defaults(&cfg);
	cfg.tree_port_min = 48000;
	cfg.tree_port_max = 47000;
	assert_invalid(&cfg, "(defaults): tree.ports: expected a port range LO-HI with 1024 <= LO "
			     "<= HI <= 65535 (e.g. 47000-47999)");
	cfg.tree_port_min = 80;
	cfg.tree_port_max = 80;
	assert_invalid(&cfg, "(defaults): tree.ports: expected a port range LO-HI with 1024 <= LO "
			     "<= HI <= 65535 (e.g. 47000-47999)");
	pl_config_free(&cfg);
}

static void test_validate_bounds_of_every_number(void **state)
{
	struct pl_config cfg;
	char err[ERRLEN];

	(void)state;
	pl_config_init_defaults(&cfg);
	cfg.tree_fanout = 0;
	assert_invalid(&cfg, "(defaults): tree.fanout: expected an integer between 1 and 64");
	cfg.tree_fanout = 8;
	cfg.stage_timeout = 0;
	assert_int_equal(pl_config_validate(&cfg, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "stage.timeout"));
	cfg.stage_timeout = 600;
	cfg.stage_max_size = 1;
	assert_int_equal(pl_config_validate(&cfg, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "stage.max_size"));
	cfg.stage_max_size = 1ULL << 30;
	cfg.monitor_sample_rate = NAN;
	assert_invalid(&cfg, "(defaults): monitor.sample_rate: expected a fraction between 0 and 1 "
			     "(e.g. 0.25 or 25%)");
	cfg.monitor_sample_rate = -0.5;
	assert_int_equal(pl_config_validate(&cfg, err, sizeof(err)), -1);
	cfg.monitor_sample_rate = 0.0;
	assert_int_equal(pl_config_validate(&cfg, err, sizeof(err)), 0);
	pl_config_free(&cfg);
}

static void test_validate_paths(void **state)
{
	struct pl_config cfg;

	(void)state;
	pl_config_init_defaults(&cfg);
	free(cfg.stage_dir);
	cfg.stage_dir = NULL;
	assert_invalid(&cfg, "(defaults): stage.dir: missing");
	cfg.stage_dir = strdup("relative");
	assert_invalid(&cfg, "(defaults): stage.dir: expected an absolute path");
	free(cfg.stage_dir);
	cfg.stage_dir = strdup("/a//b");
	assert_invalid(&cfg,
		       "(defaults): stage.dir: path must not contain repeated or trailing slashes");
	pl_config_free(&cfg);
}

static void test_validate_dirs_apart(void **state)
{
	struct pl_config cfg;
	char err[ERRLEN];

	(void)state;
	pl_config_init_defaults(&cfg);
	assert_set(&cfg, "stage.dir", "/dev/shm");
	assert_invalid(&cfg, "(defaults): monitor.spool_dir: must be apart from stage.dir "
			     "(/dev/shm): neither the same, inside nor around it");
	assert_set(&cfg, "stage.dir", "/dev/shm/pylaunch-spool/stage");
	assert_int_equal(pl_config_validate(&cfg, err, sizeof(err)), -1);
	assert_set(&cfg, "stage.dir", "/dev/shm/pylaunch-spool");
	assert_int_equal(pl_config_validate(&cfg, err, sizeof(err)), -1);
	/* a common prefix is not nesting */
	assert_set(&cfg, "stage.dir", "/dev/shm/pylaunch-spool2");
	assert_int_equal(pl_config_validate(&cfg, err, sizeof(err)), 0);
	pl_config_free(&cfg);
}

static void test_validate_sinks(void **state)
{
	struct pl_config cfg;
	char err[ERRLEN] = "", want[ERRLEN];

	(void)state;
	if (load_yaml(&cfg, full_file, err) != 0)
		fail_msg("%s", err);
	free(cfg.sinks[0].path);
	cfg.sinks[0].path = strdup("relative.jsonl");
	snprintf(want, sizeof(want), "%s: monitor.sinks[0].path: expected an absolute path",
		 tmp_path);
	assert_invalid(&cfg, want);
	free(cfg.sinks[0].path);
	cfg.sinks[0].path = NULL;
	snprintf(want, sizeof(want), "%s: monitor.sinks[0].path: missing", tmp_path);
	assert_invalid(&cfg, want);
	cfg.sinks[0].path = strdup("/ok.jsonl");
	cfg.sinks[2].max_message = 70000;
	snprintf(want, sizeof(want),
		 "%s: monitor.sinks[2].max_message: at most 65507 bytes over UDP (one datagram)",
		 tmp_path);
	assert_invalid(&cfg, want);
	cfg.sinks[2].max_message = 100;
	assert_int_equal(pl_config_validate(&cfg, err, sizeof(err)), -1);
	assert_non_null(
	    strstr(err, "monitor.sinks[2].max_message: expected a size between 480 and 1M"));
	cfg.sinks[2].max_message = 512;
	cfg.sinks[1].type = (enum pl_sink_type)7;
	snprintf(want, sizeof(want), "%s: monitor.sinks[1].type: unknown sink type 7", tmp_path);
	assert_invalid(&cfg, want);
	cfg.sinks[1].type = PL_SINK_SYSLOG;
	assert_int_equal(pl_config_validate(&cfg, err, sizeof(err)), 0);
	pl_config_free(&cfg);
}

static void test_validate_groups(void **state)
{
	struct pl_config cfg;

	(void)state;
	pl_config_init_defaults(&cfg);
	assert_set(&cfg, "monitor.staff_groups", "a,b");
	cfg.staff_groups[1][0] = '\n';
	assert_invalid(&cfg, "(defaults): monitor.staff_groups: group name with a comma, a colon "
			     "or a control character");
	pl_config_free(&cfg);
}

/* ------------------------------------------------------------------ site bundles */

static void test_site_bundles_and_policy_load(void **state)
{
	struct pl_config cfg;
	char err[ERRLEN] = "";

	(void)state;
	if (load_yaml(&cfg,
		      "bundles:\n  anaconda-2026: /sw//b/ana.tar.zst\n  torch_2.5: /sw/t\n"
		      "policy:\n  default_bundle: anaconda-2026\n  min_nodes: 4\n",
		      err) != 0)
		fail_msg("%s", err);
	assert_int_equal(pl_config_validate(&cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.n_bundles, 2);
	assert_string_equal(pl_config_bundle(&cfg, "anaconda-2026"), "/sw/b/ana.tar.zst");
	assert_string_equal(pl_config_bundle(&cfg, "torch_2.5"), "/sw/t");
	assert_null(pl_config_bundle(&cfg, "anaconda"));
	assert_string_equal(cfg.policy_default_bundle, "anaconda-2026");
	assert_int_equal(cfg.policy_min_nodes, 4);
	pl_config_free(&cfg);
}

static void test_site_bundle_errors(void **state)
{
	struct pl_config cfg;
	char err[ERRLEN] = "";

	(void)state;
	expect_error("bundles:\n  a: relative/x\n", "2: bundles.a", "bundle 'a': ");
	expect_error("bundles:\n  a b: /x\n", "2: bundles.a b", "bundle name with a character");
	expect_error("bundles:\n  a: /x\n  a: /y\n", "3: bundles.a", "bundle 'a' named twice");
	expect_error("bundles: [/x]\n", "1: bundles", "expected a mapping NAME: /PATH");
	assert_int_equal(load_yaml(&cfg, "policy:\n  default_bundle: nope\n", err), 0);
	assert_int_equal(pl_config_validate(&cfg, err, sizeof(err)), -1);
	assert_non_null(
	    strstr(err, "policy.default_bundle: 'nope' is not one of the site's bundles"));
	pl_config_free(&cfg);
}

static void test_site_bundles_on_the_plugstack_line(void **state)
{
	struct pl_config cfg;
	char err[ERRLEN] = "";

	(void)state;
	pl_config_init_defaults(&cfg);
	assert_int_equal(pl_config_set(&cfg, "bundles", "a=/x,b=/y/z", err, sizeof(err)), 0);
	assert_string_equal(pl_config_bundle(&cfg, "b"), "/y/z");
	assert_int_equal(pl_config_set(&cfg, "bundles", "a", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "expected a mapping NAME: /PATH"));
	assert_string_equal(pl_config_bundle(&cfg, "a"), "/x");
	assert_int_equal(pl_config_set(&cfg, "bundles", "", err, sizeof(err)), 0);
	assert_int_equal(cfg.n_bundles, 0);
	pl_config_free(&cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults_are_the_documented_ones),
	    cmocka_unit_test(test_free_zeroes_and_may_repeat),
	    cmocka_unit_test(test_key_names_list_the_schema),
	    cmocka_unit_test(test_missing_file_keeps_defaults),
	    cmocka_unit_test(test_empty_documents_mean_defaults),
	    cmocka_unit_test(test_every_key_is_read),
	    cmocka_unit_test(test_sinks_get_their_defaults),
	    cmocka_unit_test(test_yaml11_booleans_plain_and_quoted),
	    cmocka_unit_test(test_quoted_numbers_and_flow_style),
	    cmocka_unit_test(test_dotted_keys_at_the_top),
	    cmocka_unit_test(test_staff_groups_forms),
	    cmocka_unit_test(test_second_file_replaces_lists),
	    cmocka_unit_test(test_example_file_holds_the_defaults),
	    cmocka_unit_test(test_example_file_names_every_key),
	    cmocka_unit_test(test_example_sinks_load_uncommented),
	    cmocka_unit_test(test_error_message_has_the_documented_form),
	    cmocka_unit_test(test_unknown_keys_at_every_level),
	    cmocka_unit_test(test_unknown_key_is_shown_safely),
	    cmocka_unit_test(test_wrong_node_kinds),
	    cmocka_unit_test(test_top_level_must_be_a_mapping),
	    cmocka_unit_test(test_not_yaml),
	    cmocka_unit_test(test_values_out_of_range_or_malformed),
	    cmocka_unit_test(test_bad_paths),
	    cmocka_unit_test(test_no_value),
	    cmocka_unit_test(test_duplicate_keys),
	    cmocka_unit_test(test_sink_errors),
	    cmocka_unit_test(test_tcp_syslog_may_send_long_messages),
	    cmocka_unit_test(test_list_limits),
	    cmocka_unit_test(test_bad_group_names),
	    cmocka_unit_test(test_anchors_aliases_tags_refused),
	    cmocka_unit_test(test_nul_in_a_value_refused),
	    cmocka_unit_test(test_second_document_refused),
	    cmocka_unit_test(test_deep_nesting_does_not_crash),
	    cmocka_unit_test(test_file_size_limit),
	    cmocka_unit_test(test_huge_scalar_is_quoted_briefly),
	    cmocka_unit_test(test_directory_refused),
	    cmocka_unit_test(test_not_a_directory),
	    cmocka_unit_test(test_fifo_refused_without_hanging),
	    cmocka_unit_test(test_unreadable_file),
	    cmocka_unit_test(test_failed_load_frees_cleanly),
	    cmocka_unit_test(test_set_every_kind_of_key),
	    cmocka_unit_test(test_set_overrides_the_file),
	    cmocka_unit_test(test_set_errors),
	    cmocka_unit_test(test_set_unknown_keys),
	    cmocka_unit_test(test_prolog_alloc_is_auto_or_a_boolean),
	    cmocka_unit_test(test_site_bundles_and_policy_load),
	    cmocka_unit_test(test_site_bundle_errors),
	    cmocka_unit_test(test_site_bundles_on_the_plugstack_line),
	    cmocka_unit_test(test_set_shows_values_safely),
	    cmocka_unit_test(test_validate_port_order),
	    cmocka_unit_test(test_validate_bounds_of_every_number),
	    cmocka_unit_test(test_validate_paths),
	    cmocka_unit_test(test_validate_dirs_apart),
	    cmocka_unit_test(test_validate_sinks),
	    cmocka_unit_test(test_validate_groups),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
