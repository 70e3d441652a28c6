/* Unit tests of src/stage/site_bundles.c: @NAME in --pybundle values, and the default-bundle
 * policy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above first. */
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "site_bundles.h"

static struct pl_config cfg;

static int setup(void **state)
{
	char err[512];

	(void)state;
	pl_config_init_defaults(&cfg);
	return pl_config_set(&cfg, "bundles", "ana-2026=/sw/b/anaconda-2026.tar.zst,t=/sw/t", err,
			     sizeof(err));
}

static int teardown(void **state)
{
	(void)state;
	pl_config_free(&cfg);
	return 0;
}

static void test_names_replaced_in_place(void **state)
{
	char err[512];
	char *out;

	(void)state;
	assert_int_equal(pl_site_bundles_expand(&cfg, "@ana-2026,./src,@t", &out, err, sizeof(err)),
			 0);
	assert_string_equal(out, "/sw/b/anaconda-2026.tar.zst,./src,/sw/t");
	free(out);
	assert_int_equal(pl_site_bundles_expand(&cfg, "env.tar.gz", &out, err, sizeof(err)), 0);
	assert_string_equal(out, "env.tar.gz");
	free(out);
}

static void test_unknown_name_lists_the_sites(void **state)
{
	char err[512];
	char *out = (char *)"x";

	(void)state;
	assert_int_equal(pl_site_bundles_expand(&cfg, "./a,@nope", &out, err, sizeof(err)), -1);
	assert_null(out);
	assert_string_equal(err,
			    "--pybundle: @nope: not one of the site's bundles (@ana-2026, @t)");
}

static void test_no_means_none(void **state)
{
	(void)state;
	assert_true(pl_pybundle_is_no("no"));
	assert_false(pl_pybundle_is_no("no.tar.gz"));
	assert_false(pl_pybundle_is_no(NULL));
}

static void test_policy_applies_to_big_python_steps(void **state)
{
	char err[512];

	(void)state;
	assert_null(pl_site_default_bundle(&cfg, 8, "python3"));
	assert_int_equal(pl_config_set(&cfg, "policy.default_bundle", "t", err, sizeof(err)), 0);
	assert_int_equal(pl_config_set(&cfg, "policy.min_nodes", "4", err, sizeof(err)), 0);
	assert_string_equal(pl_site_default_bundle(&cfg, 4, "python3"), "/sw/t");
	assert_string_equal(pl_site_default_bundle(&cfg, 9, "/usr/bin/python3.11"), "/sw/t");
	assert_string_equal(pl_site_default_bundle(&cfg, 9, "python"), "/sw/t");
	assert_null(pl_site_default_bundle(&cfg, 3, "python3"));
	assert_null(pl_site_default_bundle(&cfg, 9, "hostname"));
	assert_null(pl_site_default_bundle(&cfg, 9, "python3-config"));
	assert_null(pl_site_default_bundle(&cfg, 9, NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_names_replaced_in_place, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unknown_name_lists_the_sites, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_means_none, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_policy_applies_to_big_python_steps, setup,
					    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
