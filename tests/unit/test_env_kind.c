/* Unit tests of src/stage/env_kind.c and src/stage/env_prepare.c: trees made on disk, recognised by
 * kind; a venv's home checked and its console scripts pointed at the staged copy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above first. */
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "env_kind.h"
#include "env_prepare.h"
#include "scratch_dir.h"

static char root[PATH_MAX];

static int setup(void **state)
{
	(void)state;
	make_temp_dir(root, "pl-envkind", "tree");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	remove_tree(root);
	return 0;
}

/* Makes root/rel with its parents; a trailing '/' makes a directory. */
static void put(const char *rel, const char *text, mode_t mode)
{
	char path[PATH_MAX];
	FILE *f;

	join(path, root, rel);
	for (char *p = path + strlen(root) + 1; (p = strchr(p, '/')); p++) {
		*p = '\0';
		mkdir(path, 0700);
		*p = '/';
	}
	if (path[strlen(path) - 1] == '/')
		return;
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	chmod(path, mode);
}

static void link_to(const char *rel, const char *target)
{
	char path[PATH_MAX];

	assert_int_equal(symlink(target, join(path, root, rel)), 0);
}

static struct pl_env_layout detect(void)
{
	struct pl_env_layout l;

	assert_int_equal(pl_env_detect(root, &l), 0);
	return l;
}

static void test_full_prefix(void **state)
{
	struct pl_env_layout l;

	(void)state;
	put("bin/", "", 0);
	link_to("bin/python3", "python3.11");
	put("lib/python3.11/os.py", "", 0644);
	put("main.py", "", 0644);
	l = detect();
	assert_int_equal(l.kind, PL_KIND_PREFIX);
	assert_string_equal(l.home, root);
	assert_true(l.home_bin);
	assert_int_equal(l.npaths, 0);
}

static void test_interpreter_without_stdlib_is_not_a_prefix(void **state)
{
	(void)state;
	put("bin/python3", "", 0755);
	assert_int_equal(detect().kind, PL_KIND_CODE);
}

static void test_arcroot_prefix_found_below(void **state)
{
	char home[PATH_MAX];
	struct pl_env_layout l;

	(void)state;
	put("myenv/bin/python3", "", 0755);
	put("myenv/lib/python3.12/os.py", "", 0644);
	l = detect();
	assert_int_equal(l.kind, PL_KIND_PREFIX);
	assert_string_equal(l.home, join(home, root, "myenv"));
}

static void test_venv(void **state)
{
	(void)state;
	put("pyvenv.cfg", "home = /usr/bin\n", 0644);
	link_to("pyvenv.cfg.bak", "pyvenv.cfg");
	put("lib/python3.11/site-packages/", "", 0);
	assert_int_equal(detect().kind, PL_KIND_VENV);
	assert_int_equal(detect().npaths, 0);
}

static void test_target_dir_over_prefix_goes_on_pythonpath(void **state)
{
	struct pl_env_layout l;

	(void)state;
	put("bin/python3", "", 0755);
	put("lib/python3.11/os.py", "", 0644);
	put("tgtpkg/__init__.py", "", 0644);
	put("tgtpkg-1.0.dist-info/", "", 0);
	l = detect();
	assert_int_equal(l.kind, PL_KIND_PREFIX);
	assert_int_equal(l.npaths, 1);
	assert_string_equal(l.paths[0], root);
}

static void test_site_packages_tree(void **state)
{
	char sp[PATH_MAX];
	struct pl_env_layout l;

	(void)state;
	put("lib/python3.11/site-packages/pkg/__init__.py", "", 0644);
	l = detect();
	assert_int_equal(l.kind, PL_KIND_PACKAGES);
	assert_int_equal(l.npaths, 1);
	assert_string_equal(l.paths[0], join(sp, root, "lib/python3.11/site-packages"));
	assert_false(l.home_bin);
}

static void test_code(void **state)
{
	struct pl_env_layout l;

	(void)state;
	put("app/main.py", "", 0644);
	put("README", "", 0644);
	l = detect();
	assert_int_equal(l.kind, PL_KIND_CODE);
	assert_int_equal(l.npaths, 1);
	assert_string_equal(l.paths[0], root);
	assert_string_equal(pl_env_kind_name(l.kind), "code");
}

static void test_kind_read_back_from_the_summary(void **state)
{
	char kind[16];

	(void)state;
	pl_env_kind_of_summary("kind=venv; 1 bundle(s), read 1.0 MiB", kind, sizeof(kind));
	assert_string_equal(kind, "venv");
	pl_env_kind_of_summary("1 bundle(s)", kind, sizeof(kind));
	assert_string_equal(kind, "-");
}

static void test_venv_home_missing_is_named(void **state)
{
	char msg[512] = "";
	char path[PATH_MAX];

	(void)state;
	put("pyvenv.cfg", "include-system-site-packages = false\nhome = /nonexistent/py/bin\n",
	    0644);
	assert_int_equal(pl_venv_check_home(root, msg, sizeof(msg)), -1);
	assert_non_null(strstr(msg, "/nonexistent/py/bin (pyvenv.cfg 'home'), is not on this node: "
				    "No such file or directory"));
	put("pyvenv.cfg", "home = /usr/bin\n", 0644);
	assert_int_equal(mkdir(join(path, root, "bin"), 0755), 0);
	assert_int_equal(symlink("/usr/bin/python3.99", join(path, root, "bin/python3")), 0);
	assert_int_equal(pl_venv_check_home(root, msg, sizeof(msg)), -1);
	assert_non_null(strstr(msg, "its interpreter /usr/bin/python3.99 (in /usr/bin"));
	assert_int_equal(unlink(path), 0);
	assert_int_equal(symlink("/bin/sh", path), 0);
	assert_int_equal(pl_venv_check_home(root, msg, sizeof(msg)), 0);
}

static char *slurp(const char *rel)
{
	static char buf[4096];
	char path[PATH_MAX];
	FILE *f = fopen(join(path, root, rel), "r");
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void test_venv_scripts_pointed_at_the_staged_copy(void **state)
{
	char want[PATH_MAX + 64];
	char path[PATH_MAX];
	struct stat st;
	unsigned count;
	char msg[256];

	(void)state;
	put("bin/activate", "VIRTUAL_ENV=\"/home/u/proj/venv\"\nexport VIRTUAL_ENV\n", 0644);
	put("bin/tool", "#!/home/u/proj/venv/bin/python3\nimport sys\n# /home/u/proj/venv/x\n",
	    0750);
	put("bin/long",
	    "#!/bin/sh\n'''exec' /home/u/proj/venv/bin/python \"$0\" \"$@\"\n' '''\nimport x\n",
	    0755);
	put("bin/other", "#!/usr/bin/python3\nprint()\n", 0755);
	put("bin/near", "#!/home/u/proj/venv2/bin/python3\n", 0755);
	assert_int_equal(pl_venv_rewrite_scripts(root, &count, msg, sizeof(msg)), 0);
	assert_int_equal(count, 2);
	snprintf(want, sizeof(want), "#!%s/bin/python3\nimport sys\n# /home/u/proj/venv/x\n", root);
	assert_string_equal(slurp("bin/tool"), want);
	snprintf(want, sizeof(want),
		 "#!/bin/sh\n'''exec' %s/bin/python \"$0\" \"$@\"\n' '''\nimport x\n", root);
	assert_string_equal(slurp("bin/long"), want);
	assert_string_equal(slurp("bin/other"), "#!/usr/bin/python3\nprint()\n");
	assert_string_equal(slurp("bin/near"), "#!/home/u/proj/venv2/bin/python3\n");
	assert_int_equal(stat(join(path, root, "bin/tool"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0750);
	assert_int_equal(access(join(path, root, "bin/.tool.pylaunch"), F_OK), -1);
}

static void test_venv_bare_activate_debian(void **state)
{
	unsigned count;
	char msg[256];

	(void)state;
	put("bin/activate",
	    "deactivate nondestructive\nVIRTUAL_ENV_PROMPT=x\nVIRTUAL_ENV=/tmp/k/venv\nexport "
	    "VIRTUAL_ENV\n",
	    0644);
	put("bin/t", "#!/tmp/k/venv/bin/python3\n", 0755);
	assert_int_equal(pl_venv_rewrite_scripts(root, &count, msg, sizeof(msg)), 0);
	assert_int_equal(count, 1);
}

static void test_venv_bin_symlink_not_followed(void **state)
{
	char outside[PATH_MAX];
	char script[PATH_MAX];
	unsigned count;
	char msg[256];
	FILE *f;

	(void)state;
	make_temp_dir(outside, "pl-envkind", "outside");
	f = fopen(join(script, outside, "t"), "w");
	assert_non_null(f);
	fputs("#!/old/v/bin/python\n", f);
	fclose(f);
	f = fopen(join(script, outside, "activate"), "w");
	assert_non_null(f);
	fputs("VIRTUAL_ENV='/old/v'\n", f);
	fclose(f);
	link_to("bin", outside);
	assert_int_equal(pl_venv_rewrite_scripts(root, &count, msg, sizeof(msg)), 0);
	assert_int_equal(count, 0);
	f = fopen(join(script, outside, "t"), "r");
	assert_non_null(f);
	assert_non_null(fgets(msg, sizeof(msg), f));
	fclose(f);
	assert_string_equal(msg, "#!/old/v/bin/python\n");
	remove_tree(outside);
}

static void test_venv_uv_activate_single_quotes(void **state)
{
	char want[PATH_MAX + 64];
	unsigned count;
	char msg[256];

	(void)state;
	put("bin/activate",
	    "if [ \"$OSTYPE\" = cygwin ]; then\n  VIRTUAL_ENV=$(cygpath '/old/v')\nelse\n"
	    "  VIRTUAL_ENV='/old/v'\nfi\n",
	    0644);
	put("bin/t", "#!/old/v/bin/python\n", 0755);
	assert_int_equal(pl_venv_rewrite_scripts(root, &count, msg, sizeof(msg)), 0);
	assert_int_equal(count, 1);
	snprintf(want, sizeof(want), "#!%s/bin/python\n", root);
	assert_string_equal(slurp("bin/t"), want);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_full_prefix),
	    T(test_interpreter_without_stdlib_is_not_a_prefix),
	    T(test_arcroot_prefix_found_below),
	    T(test_venv),
	    T(test_target_dir_over_prefix_goes_on_pythonpath),
	    T(test_site_packages_tree),
	    T(test_code),
	    T(test_kind_read_back_from_the_summary),
	    T(test_venv_home_missing_is_named),
	    T(test_venv_scripts_pointed_at_the_staged_copy),
	    T(test_venv_bare_activate_debian),
	    T(test_venv_bin_symlink_not_followed),
	    T(test_venv_uv_activate_single_quotes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
