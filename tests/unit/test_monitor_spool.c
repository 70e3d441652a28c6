/* Unit tests of src/monitor/monitor_spool.c: the job's spool made in the prolog and removed in
 * the epilog, whatever its user put into it. Run as root (CI) they also check ownership
 * and refusals that only root can set up; as another user those parts are skipped. */
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

#include "monitor_spool.h"
#include "slurm_log_stub.h"

#define OTHER_UID 12345
#define OTHER_GID 12346

struct fixture {
	char top[64];	   /* a private directory for the test */
	char spool[96];	   /* top/spool: monitor.spool_dir */
	char hook_src[96]; /* top/share: the installed hook */
	char outside[96];  /* top/outside: what links point at */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	FILE *hook;
	char path[160];

	strcpy(f->top, "/tmp/pl-spool-XXXXXX");
	if (!mkdtemp(f->top))
		return -1;
	snprintf(f->spool, sizeof(f->spool), "%s/spool", f->top);
	snprintf(f->hook_src, sizeof(f->hook_src), "%s/share", f->top);
	snprintf(f->outside, sizeof(f->outside), "%s/outside", f->top);
	mkdir(f->hook_src, 0755);
	mkdir(f->outside, 0755);
	/* as make install lays it out: one shim, no usercustomize.py */
	for (int i = 0; i < 2; i++) {
		static const char *const files[][2] = {{"sitecustomize.py", "# the shim\n"},
						       {"pylaunch_monitor.py", "# the core\n"}};

		snprintf(path, sizeof(path), "%s/%s", f->hook_src, files[i][0]);
		hook = fopen(path, "w");
		fputs(files[i][1], hook);
		fclose(hook);
	}
	snprintf(path, sizeof(path), "%s/precious", f->outside);
	hook = fopen(path, "w");
	fputs("keep me\n", hook);
	fclose(hook);
	*state = f;
	pl_test_log_clear();
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[sizeof(f->top) + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->top);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static void path_of(const struct fixture *f, const char *rel, char *out, size_t len)
{
	snprintf(out, len, "%s/%s", f->spool, rel);
}

static void assert_mode_owner(const char *path, mode_t mode, uid_t uid)
{
	struct stat st;

	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, mode);
	assert_int_equal(st.st_uid, uid);
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static void write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

static void assert_file_text(const char *path, const char *want)
{
	char got[64] = "";
	FILE *file = fopen(path, "r");

	assert_non_null(file);
	assert_non_null(fgets(got, sizeof(got), file));
	fclose(file);
	assert_string_equal(got, want);
}

static uid_t job_uid(void)
{
	return geteuid() == 0 ? OTHER_UID : getuid();
}

static gid_t job_gid(void)
{
	return geteuid() == 0 ? OTHER_GID : getgid();
}

/* ------------------------------------------------------------------ prepare */

static void test_prepare_layout(void **state)
{
	struct fixture *f = *state;
	char path[256];

	umask(077);
	assert_int_equal(pl_monitor_spool_prepare(f->spool, 77, job_uid(), job_gid(), f->hook_src),
			 0);
	umask(022);
	assert_mode_owner(f->spool, 0755, geteuid());
	path_of(f, "77", path, sizeof(path));
	assert_mode_owner(path, 0700, job_uid());
	path_of(f, "77/.hook", path, sizeof(path));
	assert_mode_owner(path, 0700, job_uid());
	path_of(f, "77/.hook/sitecustomize.py", path, sizeof(path));
	assert_mode_owner(path, 0644, job_uid());
	path_of(f, "77/.hook/usercustomize.py", path, sizeof(path));
	assert_mode_owner(path, 0644, job_uid());
	assert_file_text(path, "# the shim\n");
	path_of(f, "77/.hook/pylaunch_monitor.py", path, sizeof(path));
	assert_mode_owner(path, 0644, job_uid());
	assert_int_equal(pl_test_log_count(), 0);

	/* A second job next to it; a stale spool of the same id is replaced. */
	assert_int_equal(pl_monitor_spool_prepare(f->spool, 78, job_uid(), job_gid(), f->hook_src),
			 0);
	path_of(f, "77/1-old.log", path, sizeof(path));
	write_file(path, "stale");
	assert_int_equal(pl_monitor_spool_prepare(f->spool, 77, job_uid(), job_gid(), f->hook_src),
			 0);
	assert_false(exists(path));
	path_of(f, "78", path, sizeof(path));
	assert_true(exists(path));
}

static void test_prepare_fixes_mode_of_own_base(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(mkdir(f->spool, 0777), 0);
	assert_int_equal(chmod(f->spool, 0777), 0);
	assert_int_equal(pl_monitor_spool_prepare(f->spool, 1, job_uid(), job_gid(), f->hook_src),
			 0);
	assert_mode_owner(f->spool, 0755, geteuid());
}

/* A link planted at the base is swapped out, never followed (issue 13). */
static void test_prepare_reclaims_symlinked_base(void **state)
{
	struct fixture *f = *state;
	char path[256];
	int fd;

	assert_int_equal(symlink(f->outside, f->spool), 0);
	assert_int_equal(pl_monitor_spool_open(f->spool, 77), -1);
	assert_true(pl_test_log_contains("not a directory of root's"));
	assert_int_equal(pl_monitor_spool_prepare(f->spool, 77, job_uid(), job_gid(), f->hook_src),
			 0);
	assert_true(pl_test_log_contains("was a symbolic link"));
	assert_mode_owner(f->spool, 0755, geteuid());
	snprintf(path, sizeof(path), "%s/77", f->outside);
	assert_false(exists(path));
	fd = pl_monitor_spool_open(f->spool, 77);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(pl_monitor_spool_remove(f->spool, 77, 1000), 0);
}

static void test_prepare_reclaims_base_of_another_user(void **state)
{
	struct fixture *f = *state;
	char path[256];

	if (geteuid() != 0)
		skip();
	assert_int_equal(mkdir(f->spool, 0755), 0);
	assert_int_equal(chown(f->spool, OTHER_UID, OTHER_GID), 0);
	assert_int_equal(pl_monitor_spool_remove(f->spool, 77, 1000), -1);
	assert_int_equal(pl_monitor_spool_prepare(f->spool, 77, OTHER_UID, OTHER_GID, f->hook_src),
			 0);
	assert_true(pl_test_log_contains("owned by uid 12345"));
	assert_mode_owner(f->spool, 0755, geteuid());
	path_of(f, "77", path, sizeof(path));
	assert_mode_owner(path, 0700, OTHER_UID);
}

static void test_prepare_without_hook(void **state)
{
	struct fixture *f = *state;
	char path[256];

	assert_int_equal(pl_monitor_spool_prepare(f->spool, 9, job_uid(), job_gid(), f->outside),
			 0);
	assert_true(pl_test_log_contains("is missing"));
	path_of(f, "9", path, sizeof(path));
	assert_mode_owner(path, 0700, job_uid());
	path_of(f, "9/.hook/sitecustomize.py", path, sizeof(path));
	assert_false(exists(path));
}

/* ------------------------------------------------------------------ open, remove */

static void test_open(void **state)
{
	struct fixture *f = *state;
	int fd;

	errno = 0;
	assert_int_equal(pl_monitor_spool_open(f->spool, 5), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(pl_monitor_spool_prepare(f->spool, 5, job_uid(), job_gid(), f->hook_src),
			 0);
	errno = 0;
	assert_int_equal(pl_monitor_spool_open(f->spool, 6), -1);
	assert_int_equal(errno, ENOENT);
	fd = pl_monitor_spool_open(f->spool, 5);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(pl_test_log_count(), 0);
}

/* What a user could leave in the spool: links out, a FIFO, a deep tree, many files. */
static void fill_hostile(const struct fixture *f, int depth, int files)
{
	char path[256], target[256];
	int job;

	path_of(f, "77", path, sizeof(path));
	job = open(path, O_RDONLY | O_DIRECTORY);
	assert_true(job >= 0);
	snprintf(target, sizeof(target), "%s/precious", f->outside);
	assert_int_equal(symlinkat(target, job, "link-to-file"), 0);
	assert_int_equal(symlinkat(f->outside, job, "link-to-dir"), 0);
	assert_int_equal(symlinkat("/", job, "root.log"), 0);
	assert_int_equal(mkfifoat(job, "fifo.log", 0600), 0);
	assert_int_equal(mkdirat(job, "deep", 0700), 0);
	{
		int d = openat(job, "deep", O_RDONLY | O_DIRECTORY);

		for (int i = 0; i < depth; i++) {
			int next;

			assert_int_equal(mkdirat(d, "d", 0700), 0);
			assert_int_equal(symlinkat(f->outside, d, "out"), 0);
			next = openat(d, "d", O_RDONLY | O_DIRECTORY);
			close(d);
			d = next;
		}
		close(d);
	}
	for (int i = 0; i < files; i++) {
		int fd;

		snprintf(path, sizeof(path), "%d-x.log", i);
		fd = openat(job, path, O_WRONLY | O_CREAT, 0600);
		close(fd);
	}
	close(job);
}

static void test_remove_hostile_spool(void **state)
{
	struct fixture *f = *state;
	char path[256];

	assert_int_equal(pl_monitor_spool_prepare(f->spool, 77, job_uid(), job_gid(), f->hook_src),
			 0);
	fill_hostile(f, 2000, 500);
	assert_int_equal(pl_monitor_spool_remove(f->spool, 77, 0), 0);
	path_of(f, "77", path, sizeof(path));
	assert_false(exists(path));
	/* Nothing a link pointed to is touched. */
	snprintf(path, sizeof(path), "%s/precious", f->outside);
	assert_true(exists(path));
	assert_true(exists(f->spool));
	assert_int_equal(pl_test_log_count(), 0);
	/* Already gone, or never there: nothing to do. */
	assert_int_equal(pl_monitor_spool_remove(f->spool, 77, 0), 0);
	assert_int_equal(pl_monitor_spool_remove(f->spool, 999, 0), 0);
}

static void test_remove_unreadable_tree_as_root(void **state)
{
	struct fixture *f = *state;
	char path[256];

	if (geteuid() != 0)
		skip();
	assert_int_equal(pl_monitor_spool_prepare(f->spool, 77, OTHER_UID, OTHER_GID, f->hook_src),
			 0);
	path_of(f, "77/locked", path, sizeof(path));
	assert_int_equal(mkdir(path, 0700), 0);
	path_of(f, "77/locked/inner", path, sizeof(path));
	assert_int_equal(mkdir(path, 0700), 0);
	path_of(f, "77/locked", path, sizeof(path));
	assert_int_equal(chmod(path, 0), 0);
	path_of(f, "77", path, sizeof(path));
	assert_int_equal(chmod(path, 0), 0);
	assert_int_equal(pl_monitor_spool_remove(f->spool, 77, 0), 0);
	assert_false(exists(path));
}

static void test_remove_keeps_its_deadline(void **state)
{
	struct fixture *f = *state;
	char path[256];

	assert_int_equal(pl_monitor_spool_prepare(f->spool, 77, job_uid(), job_gid(), f->hook_src),
			 0);
	fill_hostile(f, 3000, 0);
	assert_int_equal(pl_monitor_spool_remove(f->spool, 77, 1), -1);
	assert_true(pl_test_log_contains("could not be removed completely in time"));
	assert_int_equal(pl_monitor_spool_remove(f->spool, 77, 0), 0);
	path_of(f, "77", path, sizeof(path));
	assert_false(exists(path));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_prepare_layout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_prepare_fixes_mode_of_own_base, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_prepare_reclaims_symlinked_base, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_prepare_reclaims_base_of_another_user, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_prepare_without_hook, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_open, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_remove_hostile_spool, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_remove_unreadable_tree_as_root, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_remove_keeps_its_deadline, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
