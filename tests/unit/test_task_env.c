/* Unit tests of src/task_env.c: what a task started from a staged tree sees. */
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

static void test_paths_prefixed_and_python_relocated(void **state)
{
	struct pl_task_env env;

	(void)state;
	assert_int_equal(pl_task_env_for_root("/dev/shm/pylaunch/7/abc", "/usr/bin:/bin",
					      "/opt/lib", true, &env),
			 0);
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
	assert_int_equal(pl_task_env_for_root("/r", "/bin", NULL, true, &env), 0);
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
	assert_int_equal(pl_task_env_for_root("/r", NULL, "", true, &env), 0);
	assert_string_equal(find(&env, "PATH")->value, "/r/bin:/usr/local/bin:/usr/bin:/bin");
	assert_string_equal(find(&env, "LD_LIBRARY_PATH")->value, "/r/lib");
	pl_task_env_free(&env);
}

static void test_ld_library_path_left_alone_when_disabled(void **state)
{
	struct pl_task_env env;

	(void)state;
	assert_int_equal(pl_task_env_for_root("/r", "/bin", "/opt/lib", false, &env), 0);
	assert_null(find(&env, "LD_LIBRARY_PATH"));
	pl_task_env_free(&env);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_paths_prefixed_and_python_relocated),
	    cmocka_unit_test(test_shared_search_paths_are_purged),
	    cmocka_unit_test(test_unset_values_get_no_stray_colon),
	    cmocka_unit_test(test_ld_library_path_left_alone_when_disabled),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
