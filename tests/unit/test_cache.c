/* Unit tests of src/stage/cache*.c: the identity of a bundle list, the entry names, and the index
 * (markers, least-recently-used eviction that never takes an entry in use, purge by user). The
 * read-only view (a mount) is tested on the cluster (tests/integration/test_cache.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above first. */
#include <cmocka.h>

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"
#include "scratch_dir.h"
#include "small_file.h"

static char tmp[PATH_MAX];

static int setup(void **state)
{
	(void)state;
	make_temp_dir(tmp, "pylaunch-test", "cache");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	remove_tree(tmp);
	return 0;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void identity(const char *a, const char *b, bool digest, char *out)
{
	struct pl_bundle_list list = {.n = b ? 2 : 1, .paths = {(char *)a, (char *)b}};
	char err[256] = "";
	uint64_t read = 0;

	if (pl_cache_identity(&list, digest, out, PL_SHA256_HEX_LEN + 1, &read, err, sizeof(err)) <
	    0)
		fail_msg("%s", err);
	assert_int_equal(strlen(out), PL_SHA256_HEX_LEN);
	assert_true(digest ? read > 0 : read == 0);
}

static void test_identity_follows_content_changes(void **state)
{
	char a[PATH_MAX], b[PATH_MAX], k1[65], k2[65], k3[65], k4[65];
	struct timespec later[2] = {{.tv_sec = 1000000000}, {.tv_sec = 1000000000}};

	(void)state;
	write_file(join(a, tmp, "a.tar"), "one");
	write_file(join(b, tmp, "b.tar"), "two");
	identity(a, b, false, k1);
	identity(a, b, false, k2);
	assert_string_equal(k1, k2);
	/* The layering is part of the key. */
	identity(b, a, false, k3);
	assert_string_not_equal(k1, k3);
	/* A rewrite changes mtime and ctime even when the times are set back. */
	write_file(a, "ONE");
	utimensat(AT_FDCWD, a, later, 0);
	identity(a, b, false, k4);
	assert_string_not_equal(k1, k4);
}

static void test_digest_identity_is_the_content(void **state)
{
	char a[PATH_MAX], copy[PATH_MAX], k1[65], k2[65], k3[65], k4[65];

	(void)state;
	write_file(join(a, tmp, "a.tar"), "same bytes");
	write_file(join(copy, tmp, "copy.tar"), "same bytes");
	identity(a, NULL, true, k1);
	identity(copy, NULL, true, k2);
	assert_string_equal(k1, k2);
	identity(a, NULL, false, k3);
	identity(copy, NULL, false, k4);
	assert_string_not_equal(k3, k4);
	write_file(copy, "other bytes");
	identity(copy, NULL, true, k2);
	assert_string_not_equal(k1, k2);
}

static void test_directories_and_missing_files_are_not_cached(void **state)
{
	struct pl_bundle_list list = {.n = 1, .paths = {tmp}};
	char out[65], err[256] = "", missing[PATH_MAX];
	uint64_t read;

	(void)state;
	assert_int_equal(pl_cache_identity(&list, false, out, sizeof(out), &read, err, sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "a directory is never cached"));
	list.paths[0] = join(missing, tmp, "missing.tar");
	assert_int_equal(pl_cache_identity(&list, true, out, sizeof(out), &read, err, sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "No such file or directory"));
}

static void test_names_differ_by_user(void **state)
{
	char n1[65], n2[65], n3[65];

	(void)state;
	pl_cache_name(1000, "abc", n1);
	pl_cache_name(1001, "abc", n2);
	pl_cache_name(1000, "abc", n3);
	assert_string_not_equal(n1, n2);
	assert_string_equal(n1, n3);
}

/* ------------------------------------------------------------ the index */

/* An entry as adoption leaves it (without the tree: the index does not look into it), used at
 * the given second. */
static void add_entry(struct pl_cache *c, const char *name, uid_t uid, uint64_t bytes, time_t used)
{
	struct timespec t[2] = {{.tv_sec = used}, {.tv_sec = used}};

	assert_int_equal(mkdirat(c->fd, name, 0700), 0);
	assert_int_equal(pl_cache_meta_write(c, name, uid, bytes, 10, "kind=prefix; test"), 0);
	assert_int_equal(utimensat(c->fd, name, t, AT_SYMLINK_NOFOLLOW), 0);
}

static void open_cache(struct pl_cache *c, int *basefd)
{
	char err[256] = "";

	*basefd = open(tmp, O_RDONLY | O_DIRECTORY);
	assert_true(*basefd >= 0);
	if (pl_cache_open(*basefd, c, err, sizeof(err)) < 0)
		fail_msg("%s", err);
}

static bool exists(struct pl_cache *c, const char *name)
{
	struct stat st;

	return fstatat(c->fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static char names[4][65];

static void four_entries(struct pl_cache *c)
{
	for (int i = 0; i < 4; i++) {
		pl_cache_name(1000 + (i % 2),
			      i == 0   ? "a"
			      : i == 1 ? "b"
			      : i == 2 ? "c"
				       : "d",
			      names[i]);
		/* names[0] the least recently used, names[3] the most. */
		add_entry(c, names[i], 1000 + (uid_t)(i % 2), 100, 1000000 + i);
	}
}

static void test_scan_lists_oldest_first_with_totals(void **state)
{
	struct pl_cache_list l;
	struct pl_cache c;
	uint64_t bytes;
	size_t n;
	int basefd;

	(void)state;
	open_cache(&c, &basefd);
	four_entries(&c);
	/* Half-made: no meta, not listed. */
	assert_int_equal(
	    mkdirat(c.fd, "0000000000000000000000000000000000000000000000000000000000000000", 0700),
	    0);
	assert_int_equal(pl_cache_scan(&c, &l), 0);
	pl_cache_totals(&l, &bytes, &n);
	assert_int_equal(n, 4);
	assert_int_equal(bytes, 400);
	for (int i = 0; i < 4; i++)
		assert_string_equal(l.e[i].name, names[i]);
	assert_int_equal(l.e[1].uid, 1001);
	pl_cache_list_free(&l);
	pl_cache_close(&c);
	close(basefd);
}

static void test_eviction_is_lru_and_spares_entries_in_use(void **state)
{
	struct pl_cache c;
	bool fits;
	int basefd;

	(void)state;
	open_cache(&c, &basefd);
	four_entries(&c);
	/* Job 42 runs (its stage directory exists) and uses the oldest entry. */
	assert_int_equal(mkdirat(basefd, "42", 0700), 0);
	assert_int_equal(pl_cache_mark(&c, names[0], 42), 0);
	/* Marking made names[0] the most recent: set it back to check that use alone spares it. */
	struct timespec old[2] = {{.tv_sec = 999}, {.tv_sec = 999}};
	assert_int_equal(utimensat(c.fd, names[0], old, AT_SYMLINK_NOFOLLOW), 0);
	assert_int_equal(pl_cache_make_room(&c, 1000, 3, 0, 1, &fits), 2);
	assert_true(fits);
	assert_true(exists(&c, names[0]));
	assert_false(exists(&c, names[1]));
	assert_false(exists(&c, names[2]));
	assert_true(exists(&c, names[3]));
	/* Bounds that only the removal of the entry in use could meet are not met. */
	assert_int_equal(pl_cache_make_room(&c, 150, 0, 0, 0, &fits), 1);
	assert_false(fits);
	assert_true(exists(&c, names[0]));
	assert_false(exists(&c, names[3]));
	/* The job ends: its marker goes, and so may the entry. */
	assert_int_equal(pl_cache_release(&c, 42), 1);
	assert_int_equal(pl_cache_make_room(&c, 150, 0, 0, 0, &fits), 1);
	assert_true(fits);
	assert_false(exists(&c, names[0]));
	unlinkat(basefd, "42", AT_REMOVEDIR);
	pl_cache_close(&c);
	close(basefd);
}

static void test_a_marker_of_an_ended_job_is_stale(void **state)
{
	struct pl_cache c;
	bool fits;
	int basefd;

	(void)state;
	open_cache(&c, &basefd);
	four_entries(&c);
	/* Job 7's stage directory is gone (purged, or swept): its marker does not hold. */
	assert_int_equal(pl_cache_mark(&c, names[2], 7), 0);
	assert_int_equal(pl_cache_make_room(&c, 1000, 0, 0, 0, &fits), 4);
	assert_true(fits);
	assert_false(exists(&c, names[2]));
	pl_cache_close(&c);
	close(basefd);
}

static void test_purge_by_user_and_all(void **state)
{
	struct pl_cache c;
	size_t kept;
	int basefd;

	(void)state;
	open_cache(&c, &basefd);
	four_entries(&c);
	assert_int_equal(pl_cache_purge(&c, 1001, &kept), 2);
	assert_int_equal(kept, 0);
	assert_true(exists(&c, names[0]) && exists(&c, names[2]));
	assert_false(exists(&c, names[1]) || exists(&c, names[3]));
	assert_int_equal(pl_cache_purge(&c, (uid_t)-1, &kept), 2);
	assert_false(exists(&c, names[0]) || exists(&c, names[2]));
	pl_cache_close(&c);
	close(basefd);
}

static void test_purge_keeps_a_tree_in_use_until_its_job_ends(void **state)
{
	struct pl_cache_list l;
	struct pl_cache c;
	size_t kept;
	int basefd;

	(void)state;
	open_cache(&c, &basefd);
	four_entries(&c);
	assert_int_equal(mkdirat(basefd, "42", 0700), 0);
	assert_int_equal(pl_cache_mark(&c, names[1], 42), 0);
	assert_int_equal(pl_cache_purge(&c, 1001, &kept), 1);
	assert_int_equal(kept, 1);
	assert_true(exists(&c, names[1]));
	assert_false(exists(&c, names[3]));
	assert_true(pl_cache_purging(&c, names[1]));
	assert_false(pl_cache_purging(&c, names[0]));
	assert_int_equal(pl_cache_scan(&c, &l), 0);
	assert_int_equal(l.n, 3);
	for (size_t i = 0; i < l.n; i++)
		assert_int_equal(l.e[i].purging, strcmp(l.e[i].name, names[1]) == 0);
	pl_cache_list_free(&l);
	/* Still used: the epilog of another job leaves it. */
	assert_int_equal(pl_cache_purge_released(&c), 0);
	assert_true(exists(&c, names[1]));
	/* Its job's epilog releases it: now it goes, and only it. */
	assert_int_equal(pl_cache_release(&c, 42), 1);
	assert_int_equal(pl_cache_purge_released(&c), 1);
	assert_false(exists(&c, names[1]));
	assert_true(exists(&c, names[0]) && exists(&c, names[2]));
	unlinkat(basefd, "42", AT_REMOVEDIR);
	pl_cache_purge(&c, (uid_t)-1, &kept);
	pl_cache_close(&c);
	close(basefd);
}

static void test_a_new_boot_empties_the_cache_even_of_trees_marked_in_use(void **state)
{
	struct pl_cache c;
	int basefd;

	(void)state;
	open_cache(&c, &basefd);
	four_entries(&c);
	/* On a stage.dir on disk, job 42's stage directory outlives the boot that ran it. */
	assert_int_equal(mkdirat(basefd, "42", 0700), 0);
	assert_int_equal(pl_cache_mark(&c, names[0], 42), 0);
	pl_cache_close(&c);
	close(basefd);
	open_cache(&c, &basefd);
	assert_true(exists(&c, names[0]) && exists(&c, names[3]));
	assert_int_equal(pl_write_small(c.fd, "boot_id", "an-earlier-boot"), 0);
	pl_cache_close(&c);
	close(basefd);
	open_cache(&c, &basefd);
	for (int i = 0; i < 4; i++)
		assert_false(exists(&c, names[i]));
	unlinkat(basefd, "42", AT_REMOVEDIR);
	pl_cache_close(&c);
	close(basefd);
}

static void test_meta_round_trip_and_layout_modes(void **state)
{
	struct pl_cache c;
	char summary[128];
	uint64_t bytes, entries;
	size_t kept;
	struct stat st;
	uid_t uid;
	int basefd;

	(void)state;
	open_cache(&c, &basefd);
	four_entries(&c);
	assert_int_equal(
	    pl_cache_meta_read(&c, names[1], &uid, &bytes, &entries, summary, sizeof(summary)), 0);
	assert_int_equal(uid, 1001);
	assert_int_equal(bytes, 100);
	assert_int_equal(entries, 10);
	assert_string_equal(summary, "kind=prefix; test");
	assert_int_equal(fstat(c.fd, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(fstat(c.viewfd, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755);
	pl_cache_purge(&c, (uid_t)-1, &kept);
	pl_cache_close(&c);
	close(basefd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_identity_follows_content_changes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_digest_identity_is_the_content, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_directories_and_missing_files_are_not_cached,
					    setup, teardown),
	    cmocka_unit_test(test_names_differ_by_user),
	    cmocka_unit_test_setup_teardown(test_scan_lists_oldest_first_with_totals, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_eviction_is_lru_and_spares_entries_in_use, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_a_marker_of_an_ended_job_is_stale, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_purge_by_user_and_all, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_purge_keeps_a_tree_in_use_until_its_job_ends,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_a_new_boot_empties_the_cache_even_of_trees_marked_in_use, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_meta_round_trip_and_layout_modes, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
