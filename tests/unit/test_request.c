/* Unit tests of src/common/request.c: how each context resolves what a job asked for. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above first. */
#include <cmocka.h>

#include <string.h>

#include "optparse.h"
#include "request.h"

static void test_normalized_value_wins_over_raw(void **state)
{
	struct pl_request req = {.pybundle = "env.tar"};
	struct pl_resolved r;
	char err[PL_ERRLEN];

	(void)state;
	assert_int_equal(pl_request_resolve(&req, "/submit/dir/env.tar", "/work/dir", false, &r,
					    err, sizeof(err)),
			 0);
	assert_string_equal(r.pybundle, "/submit/dir/env.tar");
	pl_resolved_free(&r);
}

static void test_raw_value_resolved_against_base_without_normalized(void **state)
{
	struct pl_request req = {.pybundle = "env.tar,../lib"};
	struct pl_resolved r;
	char err[PL_ERRLEN];

	(void)state;
	assert_int_equal(pl_request_resolve(&req, NULL, "/work/dir", false, &r, err, sizeof(err)),
			 0);
	assert_string_equal(r.pybundle, "/work/dir/env.tar,/work/lib");
	pl_resolved_free(&r);
}

static void test_normalized_value_is_rechecked(void **state)
{
	struct pl_request req = {.pybundle = "env.tar"};
	struct pl_resolved r;
	char err[PL_ERRLEN] = "";

	(void)state;
	assert_int_equal(pl_request_resolve(&req, "/a,,/b", "/w", false, &r, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "file name 2 of the list is empty"));
}

static void test_no_bundle_means_null(void **state)
{
	struct pl_request req = {0};
	struct pl_resolved r;
	char err[PL_ERRLEN];

	(void)state;
	assert_int_equal(pl_request_resolve(&req, "/ignored", "/w", false, &r, err, sizeof(err)),
			 0);
	assert_null(r.pybundle);
}

static void test_monitor_option_overrides_site_default(void **state)
{
	struct pl_request given_no = {.pymonitor_given = true, .pymonitor = false};
	struct pl_request not_given = {0};
	struct pl_resolved r;
	char err[PL_ERRLEN];

	(void)state;
	assert_int_equal(pl_request_resolve(&given_no, NULL, "/", true, &r, err, sizeof(err)), 0);
	assert_false(r.pymonitor);
	assert_string_equal(r.pymonitor_from, "option");
	assert_int_equal(pl_request_resolve(&not_given, NULL, "/", true, &r, err, sizeof(err)), 0);
	assert_true(r.pymonitor);
	assert_string_equal(r.pymonitor_from, "site default");
	assert_int_equal(pl_request_resolve(&not_given, NULL, "/", false, &r, err, sizeof(err)), 0);
	assert_false(r.pymonitor);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_normalized_value_wins_over_raw),
	    cmocka_unit_test(test_raw_value_resolved_against_base_without_normalized),
	    cmocka_unit_test(test_normalized_value_is_rechecked),
	    cmocka_unit_test(test_no_bundle_means_null),
	    cmocka_unit_test(test_monitor_option_overrides_site_default),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
