/* Unit tests of src/common/purge.c: removal of trees a user shaped to resist it. Run as an ordinary
 * user, as the epilog's purge is (as root the process drops to nobody first: root would not
 * notice a directory of mode 000). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above first. */
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "purge.h"

#define DEEP 10000

static char tmp[256];
static int tmpfd = -1;

static int setup(void **state)
{
	(void)state;
	snprintf(tmp, sizeof(tmp), "/tmp/pl-purge-XXXXXX");
	if (!mkdtemp(tmp))
		return -1;
	tmpfd = open(tmp, O_RDONLY | O_DIRECTORY);
	return tmpfd < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	char err[256];

	(void)state;
	close(tmpfd);
	return pl_remove_tree(tmp, err, sizeof(err));
}

static void make_file(int at, const char *name)
{
	int fd = openat(at, name, O_CREAT | O_WRONLY | O_EXCL, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
}

static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	assert_non_null(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* A chain of DEEP directories, far deeper than PATH_MAX allows to name, a file at the end. */
static void test_chain_deeper_than_path_max_goes(void **state)
{
	struct pl_purge_stats stats = {0};
	char err[256] = "";
	int fd, next;
	int fds_before;

	(void)state;
	assert_int_equal(mkdirat(tmpfd, "deep", 0700), 0);
	fd = openat(tmpfd, "deep", O_RDONLY | O_DIRECTORY);
	for (int i = 0; i < DEEP; i++) {
		assert_int_equal(mkdirat(fd, "dddddddddd", 0700), 0);
		next = openat(fd, "dddddddddd", O_RDONLY | O_DIRECTORY);
		assert_true(next >= 0);
		close(fd);
		fd = next;
	}
	make_file(fd, "bottom");
	close(fd);
	assert_true(DEEP * 11 > PATH_MAX);
	fds_before = open_fds();
	assert_int_equal(pl_purge_at(tmpfd, "deep", false, 0, &stats, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_int_equal(stats.removed, DEEP + 2);
	assert_false(stats.timed_out);
	assert_int_equal(faccessat(tmpfd, "deep", F_OK, AT_SYMLINK_NOFOLLOW), -1);
	assert_int_equal(open_fds(), fds_before);
}

/* Mode 000 inside mode 000, a read-only directory with files, a link out of the tree. */
static void test_locked_dirs_open_up_and_links_are_not_followed(void **state)
{
	struct pl_purge_stats stats = {0};
	char err[256] = "";
	int top, a, b, ro;

	(void)state;
	assert_int_equal(mkdirat(tmpfd, "outside", 0700), 0);
	a = openat(tmpfd, "outside", O_RDONLY | O_DIRECTORY);
	make_file(a, "precious");
	close(a);
	assert_int_equal(mkdirat(tmpfd, "t", 0700), 0);
	top = openat(tmpfd, "t", O_RDONLY | O_DIRECTORY);
	assert_int_equal(symlinkat("../outside", top, "link"), 0);
	assert_int_equal(mkdirat(top, "a", 0700), 0);
	a = openat(top, "a", O_RDONLY | O_DIRECTORY);
	assert_int_equal(mkdirat(a, "b", 0700), 0);
	b = openat(a, "b", O_RDONLY | O_DIRECTORY);
	make_file(b, "f");
	assert_int_equal(fchmod(b, 0), 0);
	assert_int_equal(fchmod(a, 0), 0);
	close(a);
	close(b);
	assert_int_equal(mkdirat(top, "ro", 0700), 0);
	ro = openat(top, "ro", O_RDONLY | O_DIRECTORY);
	make_file(ro, "1");
	make_file(ro, "2");
	assert_int_equal(fchmod(ro, 0500), 0);
	close(ro);
	assert_int_equal(fchmod(top, 0), 0);
	close(top);
	assert_int_equal(pl_purge_at(tmpfd, "t", false, 0, &stats, err, sizeof(err)), 0);
	/* link, a, b, f, ro, 1, 2, t */
	assert_int_equal(stats.removed, 8);
	assert_int_equal(faccessat(tmpfd, "t", F_OK, AT_SYMLINK_NOFOLLOW), -1);
	assert_int_equal(faccessat(tmpfd, "outside/precious", F_OK, 0), 0);
}

static void test_deadline_stops_and_a_later_purge_finishes(void **state)
{
	struct pl_purge_stats stats = {0};
	char err[256] = "";
	int top;

	(void)state;
	assert_int_equal(mkdirat(tmpfd, "late", 0700), 0);
	top = openat(tmpfd, "late", O_RDONLY | O_DIRECTORY);
	make_file(top, "f1");
	make_file(top, "f2");
	close(top);
	assert_int_equal(pl_purge_at(tmpfd, "late", false, 1, &stats, err, sizeof(err)), -1);
	assert_true(stats.timed_out);
	assert_non_null(strstr(err, "deadline reached"));
	assert_int_equal(faccessat(tmpfd, "late/f1", F_OK, 0), 0);
	memset(&stats, 0, sizeof(stats));
	assert_int_equal(
	    pl_purge_at(tmpfd, "late", false, pl_purge_now_ms() + 60000, &stats, err, sizeof(err)),
	    0);
	assert_int_equal(stats.removed, 3);
}

/* Many non-empty subdirectories (mode 000) among files: the walk goes down into each and
 * carries on after it, and everything goes, counted once. */
static void test_many_subdirectories_among_files(void **state)
{
	struct pl_purge_stats stats = {0};
	char err[256] = "";
	char name[32];
	int top;

	(void)state;
	assert_int_equal(mkdirat(tmpfd, "many", 0700), 0);
	top = openat(tmpfd, "many", O_RDONLY | O_DIRECTORY);
	for (int i = 0; i < 6000; i++) {
		snprintf(name, sizeof(name), "%05d", i);
		if (i % 2) {
			make_file(top, name);
			continue;
		}
		assert_int_equal(mkdirat(top, name, 0700), 0);
		int sub = openat(top, name, O_RDONLY | O_DIRECTORY);

		make_file(sub, "f");
		assert_int_equal(fchmod(sub, 0), 0);
		close(sub);
	}
	close(top);
	assert_int_equal(pl_purge_at(tmpfd, "many", false, 0, &stats, err, sizeof(err)), 0);
	assert_int_equal(stats.removed, 3000 * 2 + 3000 + 1);
	assert_int_equal(faccessat(tmpfd, "many", F_OK, 0), -1);
}

static void test_keep_top_and_plain_entries(void **state)
{
	struct pl_purge_stats stats = {0};
	char err[256] = "";
	struct stat st;
	int top;

	(void)state;
	assert_int_equal(mkdirat(tmpfd, "kept", 0700), 0);
	top = openat(tmpfd, "kept", O_RDONLY | O_DIRECTORY);
	make_file(top, "f");
	assert_int_equal(mkdirat(top, "d", 0700), 0);
	close(top);
	assert_int_equal(pl_purge_at(tmpfd, "kept", true, 0, &stats, err, sizeof(err)), 0);
	assert_int_equal(stats.removed, 2);
	assert_int_equal(fstatat(tmpfd, "kept", &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_true(S_ISDIR(st.st_mode));
	/* A link at the top is removed itself; a missing name is success. */
	assert_int_equal(symlinkat("kept", tmpfd, "toplink"), 0);
	assert_int_equal(pl_purge_at(tmpfd, "toplink", false, 0, NULL, err, sizeof(err)), 0);
	assert_int_equal(fstatat(tmpfd, "kept", &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_int_equal(pl_purge_at(tmpfd, "missing", false, 0, NULL, err, sizeof(err)), 0);
}

/* Root ignores modes: the tests are only meaningful as an ordinary user. */
static int drop_root(void)
{
	struct passwd *pw;

	if (geteuid() != 0)
		return 0;
	pw = getpwnam("nobody");
	if (!pw || setgroups(0, NULL) < 0 || setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) < 0 ||
	    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) < 0)
		return -1;
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_chain_deeper_than_path_max_goes),
	    cmocka_unit_test(test_locked_dirs_open_up_and_links_are_not_followed),
	    cmocka_unit_test(test_deadline_stops_and_a_later_purge_finishes),
	    cmocka_unit_test(test_keep_top_and_plain_entries),
	    cmocka_unit_test(test_many_subdirectories_among_files),
	};

	if (drop_root() < 0) {
		perror("test_purge: cannot drop root");
		return 1;
	}
	return cmocka_run_group_tests(tests, setup, teardown);
}
