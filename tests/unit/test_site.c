/* Unit tests of src/common/site.c: the plugstack.conf arguments select and amend the
 * site configuration. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above first. */
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "site.h"

#define ERRLEN 512

static char *write_temp_config(const char *text)
{
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char *path;
	int fd;

	assert_true(asprintf(&path, "%s/pl-site-XXXXXX", tmp) > 0);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static void test_missing_default_file_means_defaults(void **state)
{
	struct pl_config cfg, defaults;
	char err[ERRLEN] = "";

	(void)state;
	pl_config_init_defaults(&defaults);
	assert_int_equal(
	    pl_site_load(0, NULL, "/nonexistent/pylaunch.yaml", &cfg, err, sizeof(err)), 0);
	assert_string_equal(cfg.stage_dir, defaults.stage_dir);
	assert_int_equal(cfg.tree_fanout, defaults.tree_fanout);
	pl_config_free(&cfg);
	pl_config_free(&defaults);
}

static void test_config_argument_selects_file_and_overrides_apply_after(void **state)
{
	char *path = write_temp_config("tree:\n  fanout: 4\nstage:\n  dir: /tmp/from-file\n");
	char *config_arg;
	struct pl_config cfg;
	char err[ERRLEN] = "";

	(void)state;
	assert_true(asprintf(&config_arg, "config=%s", path) > 0);
	/* The override comes first on the line but still wins over the file. */
	char *av[] = {"tree.fanout=2", config_arg, "debug=yes"};
	assert_int_equal(pl_site_load(3, av, "/nonexistent", &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.tree_fanout, 2);
	assert_string_equal(cfg.stage_dir, "/tmp/from-file");
	assert_true(cfg.debug);
	pl_config_free(&cfg);
	unlink(path);
	free(path);
	free(config_arg);
}

static void assert_site_error(int ac, char **av, const char *want)
{
	struct pl_config cfg, defaults;
	char err[ERRLEN] = "";

	pl_config_init_defaults(&defaults);
	assert_int_equal(pl_site_load(ac, av, "/nonexistent", &cfg, err, sizeof(err)), -1);
	assert_non_null(strstr(err, want));
	/* A failed load leaves the built-in defaults, never a half-applied mix. */
	assert_string_equal(cfg.stage_dir, defaults.stage_dir);
	assert_int_equal(cfg.tree_fanout, defaults.tree_fanout);
	assert_false(cfg.debug);
	pl_config_free(&cfg);
	pl_config_free(&defaults);
}

static void test_argument_without_equals_is_refused(void **state)
{
	char *av[] = {"debug"};

	(void)state;
	assert_site_error(1, av, "plugstack argument 'debug': expected KEY=VALUE");
}

static void test_relative_config_path_is_refused(void **state)
{
	char *av[] = {"config=pylaunch.yaml"};

	(void)state;
	assert_site_error(1, av, "expected an absolute path");
}

static void test_config_given_twice_is_refused(void **state)
{
	char *av[] = {"config=/a.yaml", "config=/b.yaml"};

	(void)state;
	assert_site_error(2, av, "config= given twice");
}

static void test_bad_override_restores_defaults(void **state)
{
	char *av[] = {"debug=yes", "stage.dir=/tmp/x", "tree.fanout=abc"};

	(void)state;
	assert_site_error(3, av, "tree.fanout=abc");
}

static void test_broken_file_is_reported_with_its_path(void **state)
{
	char *path = write_temp_config("stage:\n  colour: blue\n");
	char *config_arg;

	(void)state;
	assert_true(asprintf(&config_arg, "config=%s", path) > 0);
	char *av[] = {config_arg};
	assert_site_error(1, av, path);
	unlink(path);
	free(path);
	free(config_arg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_missing_default_file_means_defaults),
	    cmocka_unit_test(test_config_argument_selects_file_and_overrides_apply_after),
	    cmocka_unit_test(test_argument_without_equals_is_refused),
	    cmocka_unit_test(test_relative_config_path_is_refused),
	    cmocka_unit_test(test_config_given_twice_is_refused),
	    cmocka_unit_test(test_bad_override_restores_defaults),
	    cmocka_unit_test(test_broken_file_is_reported_with_its_path),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
