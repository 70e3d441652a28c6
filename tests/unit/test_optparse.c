/* Unit tests of src/common/optparse.c: the option values every context must agree on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above first. */
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "optparse.h"

static void assert_abs(const char *path, const char *base, const char *want)
{
	char *got = pl_path_absolute(path, base);

	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

static void test_path_absolute_relative_against_base(void **state)
{
	(void)state;
	assert_abs("env.tar.zst", "/home/u/run", "/home/u/run/env.tar.zst");
	assert_abs("./a/./b", "/home/u", "/home/u/a/b");
	assert_abs("../shared/env.tar", "/home/u/run", "/home/u/shared/env.tar");
	assert_abs("a//b///c", "/x", "/x/a/b/c");
	assert_abs("src/", "/x", "/x/src");
}

static void test_path_absolute_keeps_absolute(void **state)
{
	(void)state;
	assert_abs("/opt/env.tar", "/home/u", "/opt/env.tar");
	assert_abs("/../../etc", "/home/u", "/etc");
	assert_abs("/", "/home/u", "/");
	assert_abs("..", "/", "/");
}

static void test_path_absolute_refuses_bad_input(void **state)
{
	(void)state;
	errno = 0;
	assert_null(pl_path_absolute("", "/x"));
	assert_int_equal(errno, EINVAL);
	assert_null(pl_path_absolute("a", "relative/base"));
	assert_null(pl_path_absolute(NULL, "/x"));
}

static void test_path_absolute_too_long(void **state)
{
	char *longname = malloc(PATH_MAX + 10);

	(void)state;
	memset(longname, 'a', PATH_MAX + 9);
	longname[PATH_MAX + 9] = '\0';
	errno = 0;
	assert_null(pl_path_absolute(longname, "/x"));
	assert_int_equal(errno, ENAMETOOLONG);
	free(longname);
}

static void test_bundle_list_single_and_many(void **state)
{
	struct pl_bundle_list list;
	char err[PL_ERRLEN] = "";
	char *joined;

	(void)state;
	assert_int_equal(pl_bundle_list_parse("base.tar.zst,/opt/tools.tar.gz,./src", "/home/u",
					      &list, err, sizeof(err)),
			 0);
	assert_int_equal(list.n, 3);
	assert_string_equal(list.paths[0], "/home/u/base.tar.zst");
	assert_string_equal(list.paths[1], "/opt/tools.tar.gz");
	assert_string_equal(list.paths[2], "/home/u/src");
	joined = pl_bundle_list_join(&list);
	assert_string_equal(joined, "/home/u/base.tar.zst,/opt/tools.tar.gz,/home/u/src");
	free(joined);
	pl_bundle_list_free(&list);
	assert_int_equal(list.n, 0);
}

static void test_bundle_list_parse_is_idempotent_on_its_output(void **state)
{
	struct pl_bundle_list a, b;
	char err[PL_ERRLEN];
	char *ja, *jb;

	(void)state;
	assert_int_equal(pl_bundle_list_parse("x/../y.tar,z", "/w", &a, err, sizeof(err)), 0);
	ja = pl_bundle_list_join(&a);
	assert_int_equal(pl_bundle_list_parse(ja, "/elsewhere", &b, err, sizeof(err)), 0);
	jb = pl_bundle_list_join(&b);
	assert_string_equal(ja, jb);
	free(ja);
	free(jb);
	pl_bundle_list_free(&a);
	pl_bundle_list_free(&b);
}

static void assert_bundle_error(const char *arg, const char *want)
{
	struct pl_bundle_list list;
	char err[PL_ERRLEN] = "";

	assert_int_equal(pl_bundle_list_parse(arg, "/home/u", &list, err, sizeof(err)), -1);
	assert_non_null(strstr(err, want));
	assert_int_equal(list.n, 0);
}

static void test_bundle_list_refuses_empty(void **state)
{
	(void)state;
	assert_bundle_error("", "--pybundle: no file given");
	assert_bundle_error(NULL, "--pybundle: no file given");
	assert_bundle_error("a.tar,,b.tar", "file name 2 of the list is empty");
	assert_bundle_error("a.tar,", "file name 2 of the list is empty");
	assert_bundle_error(",a.tar", "file name 1 of the list is empty");
}

static void test_bundle_list_refuses_control_chars(void **state)
{
	(void)state;
	assert_bundle_error("a.tar,b\nc", "file name 2 contains a control character");
}

static void test_bundle_list_refuses_too_many(void **state)
{
	char arg[4 * (PL_MAX_BUNDLES + 1) + 1] = "";

	(void)state;
	for (int i = 0; i <= PL_MAX_BUNDLES; i++)
		strcat(arg, i ? ",a.t" : "a.t");
	assert_bundle_error(arg, "more than 32 bundles");
}

static void test_bundle_list_refuses_relative_base(void **state)
{
	struct pl_bundle_list list;
	char err[PL_ERRLEN] = "";

	(void)state;
	assert_int_equal(pl_bundle_list_parse("a", "rel", &list, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "absolute base directory"));
}

static void test_monitor_values(void **state)
{
	char err[PL_ERRLEN] = "";
	bool on = false;

	(void)state;
	assert_int_equal(pl_monitor_parse(NULL, &on, err, sizeof(err)), 0);
	assert_true(on);
	assert_int_equal(pl_monitor_parse("no", &on, err, sizeof(err)), 0);
	assert_false(on);
	assert_int_equal(pl_monitor_parse("YES", &on, err, sizeof(err)), 0);
	assert_true(on);
	assert_int_equal(pl_monitor_parse("maybe", &on, err, sizeof(err)), -1);
	assert_string_equal(err,
			    "--pymonitor=maybe: expected yes or no (or --pymonitor alone for yes)");
	assert_int_equal(pl_monitor_parse("", &on, err, sizeof(err)), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_path_absolute_relative_against_base),
	    cmocka_unit_test(test_path_absolute_keeps_absolute),
	    cmocka_unit_test(test_path_absolute_refuses_bad_input),
	    cmocka_unit_test(test_path_absolute_too_long),
	    cmocka_unit_test(test_bundle_list_single_and_many),
	    cmocka_unit_test(test_bundle_list_parse_is_idempotent_on_its_output),
	    cmocka_unit_test(test_bundle_list_refuses_empty),
	    cmocka_unit_test(test_bundle_list_refuses_control_chars),
	    cmocka_unit_test(test_bundle_list_refuses_too_many),
	    cmocka_unit_test(test_bundle_list_refuses_relative_base),
	    cmocka_unit_test(test_monitor_values),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
