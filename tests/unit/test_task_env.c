/* Unit tests of src/stage/task_env.c: what a task started from a staged tree sees. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above first. */
#include <cmocka.h>

#include <string.h>

#include "task_env.h"

static const struct pl_env_change *find(const struct pl_task_env *env, const char *name)
{
	for (size_t i = 0; i < env->n; i++)
		if (strcmp(env->change[i].name, name) == 0)
			return &env->change[i];
	return NULL;
}

static struct pl_env_layout layout(enum pl_env_kind kind, const char *home, bool bin)
{
	struct pl_env_layout l = {.kind = kind, .home_bin = bin};

	strcpy(l.home, home);
	return l;
}

/* The full prefix of today: the tree is the environment. */
static int for_root(const char *root, const char *old_path, const char *old_ld, bool ld_prefix,
		    struct pl_task_env *env)
{
	struct pl_env_layout l = layout(PL_KIND_PREFIX, root, true);

	return pl_task_env_for_tree(root, &l, old_path, old_ld, ld_prefix, env);
}

static void test_paths_prefixed_and_python_relocated(void **state)
{
	struct pl_task_env env;

	(void)state;
	assert_int_equal(
	    for_root("/dev/shm/pylaunch/7/abc", "/usr/bin:/bin", "/opt/lib", true, &env), 0);
	assert_string_equal(find(&env, "PATH")->value, "/dev/shm/pylaunch/7/abc/bin:/usr/bin:/bin");
	assert_string_equal(find(&env, "LD_LIBRARY_PATH")->value,
			    "/dev/shm/pylaunch/7/abc/lib:/opt/lib");
	assert_string_equal(find(&env, "PYTHONHOME")->value, "/dev/shm/pylaunch/7/abc");
	assert_string_equal(find(&env, "PYLAUNCH_ROOT")->value, "/dev/shm/pylaunch/7/abc");
	assert_string_equal(find(&env, "PYTHONNOUSERSITE")->value, "1");
	pl_task_env_free(&env);
}

static void test_shared_search_paths_are_purged(void **state)
{
	struct pl_task_env env;

	(void)state;
	assert_int_equal(for_root("/r", "/bin", NULL, true, &env), 0);
	assert_non_null(find(&env, "PYTHONPATH"));
	assert_null(find(&env, "PYTHONPATH")->value);
	assert_non_null(find(&env, "PYTHONUSERBASE"));
	assert_null(find(&env, "PYTHONUSERBASE")->value);
	pl_task_env_free(&env);
}

static void test_unset_values_get_no_stray_colon(void **state)
{
	struct pl_task_env env;

	(void)state;
	assert_int_equal(for_root("/r", NULL, "", true, &env), 0);
	assert_string_equal(find(&env, "PATH")->value, "/r/bin:/usr/local/bin:/usr/bin:/bin");
	assert_string_equal(find(&env, "LD_LIBRARY_PATH")->value, "/r/lib");
	pl_task_env_free(&env);
}

static void test_ld_library_path_left_alone_when_disabled(void **state)
{
	struct pl_task_env env;

	(void)state;
	assert_int_equal(for_root("/r", "/bin", "/opt/lib", false, &env), 0);
	assert_null(find(&env, "LD_LIBRARY_PATH"));
	pl_task_env_free(&env);
}

static void test_prefix_kind_is_exported(void **state)
{
	struct pl_task_env env;

	(void)state;
	assert_int_equal(for_root("/r", "/bin", NULL, false, &env), 0);
	assert_string_equal(find(&env, "PYLAUNCH_KIND")->value, "prefix");
	assert_null(find(&env, "VIRTUAL_ENV"));
	pl_task_env_free(&env);
}

static void test_venv_has_no_pythonhome_and_its_bin_first(void **state)
{
	struct pl_env_layout l = layout(PL_KIND_VENV, "/t/venv", true);
	struct pl_task_env env;

	(void)state;
	assert_int_equal(pl_task_env_for_tree("/t", &l, "/usr/bin", "/opt/lib", true, &env), 0);
	assert_null(find(&env, "PYTHONHOME")->value);
	assert_string_equal(find(&env, "PATH")->value, "/t/venv/bin:/usr/bin");
	assert_string_equal(find(&env, "VIRTUAL_ENV")->value, "/t/venv");
	assert_string_equal(find(&env, "PYLAUNCH_ROOT")->value, "/t");
	assert_string_equal(find(&env, "PYLAUNCH_KIND")->value, "venv");
	assert_null(find(&env, "LD_LIBRARY_PATH"));
	assert_null(find(&env, "PYTHONPATH")->value);
	pl_task_env_free(&env);
}

static void test_packages_go_on_pythonpath_in_order(void **state)
{
	struct pl_env_layout l = layout(PL_KIND_PACKAGES, "/t", false);
	struct pl_task_env env;

	(void)state;
	l.npaths = 2;
	strcpy(l.paths[0], "/t");
	strcpy(l.paths[1], "/t/lib/python3.11/site-packages");
	assert_int_equal(pl_task_env_for_tree("/t", &l, "/usr/bin", NULL, true, &env), 0);
	assert_string_equal(find(&env, "PYTHONPATH")->value, "/t:/t/lib/python3.11/site-packages");
	assert_string_equal(find(&env, "PATH")->value, "/usr/bin");
	assert_null(find(&env, "PYTHONHOME")->value);
	assert_string_equal(find(&env, "PYLAUNCH_KIND")->value, "packages");
	pl_task_env_free(&env);
}

static void test_code_root_on_pythonpath_system_interpreter(void **state)
{
	struct pl_env_layout l = layout(PL_KIND_CODE, "/t", true);
	struct pl_task_env env;

	(void)state;
	l.npaths = 1;
	strcpy(l.paths[0], "/t");
	assert_int_equal(pl_task_env_for_tree("/t", &l, NULL, NULL, true, &env), 0);
	assert_string_equal(find(&env, "PYTHONPATH")->value, "/t");
	assert_string_equal(find(&env, "PATH")->value, "/t/bin:/usr/local/bin:/usr/bin:/bin");
	assert_null(find(&env, "PYTHONHOME")->value);
	assert_string_equal(find(&env, "PYLAUNCH_KIND")->value, "code");
	pl_task_env_free(&env);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_paths_prefixed_and_python_relocated),
	    cmocka_unit_test(test_shared_search_paths_are_purged),
	    cmocka_unit_test(test_unset_values_get_no_stray_colon),
	    cmocka_unit_test(test_ld_library_path_left_alone_when_disabled),
	    cmocka_unit_test(test_prefix_kind_is_exported),
	    cmocka_unit_test(test_venv_has_no_pythonhome_and_its_bin_first),
	    cmocka_unit_test(test_packages_go_on_pythonpath_in_order),
	    cmocka_unit_test(test_code_root_on_pythonpath_system_interpreter),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
