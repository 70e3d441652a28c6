/* Unit tests of src/stage/bundle.c: submit-time checks of the bundles as files, and
 * the key that names their staged tree. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above first. */
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundle.h"

static char tmp[256];

static int setup(void **state)
{
	(void)state;
	snprintf(tmp, sizeof(tmp), "%s/pl-bundle-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	return mkdtemp(tmp) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[300];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	return system(cmd);
}

static void make_tar(const char *path, size_t size)
{
	struct archive *a = archive_write_new();
	struct archive_entry *e = archive_entry_new();
	char *data = calloc(1, size + 1);

	archive_write_set_format_pax_restricted(a);
	archive_write_add_filter_gzip(a);
	assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
	archive_entry_set_pathname(e, "f");
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_size(e, (la_int64_t)size);
	archive_write_header(a, e);
	archive_write_data(a, data, size);
	archive_entry_free(e);
	archive_write_close(a);
	archive_write_free(a);
	free(data);
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static struct pl_bundle_list list_of(const char *a, const char *b)
{
	struct pl_bundle_list list = {0};

	list.paths[list.n++] = strdup(a);
	if (b)
		list.paths[list.n++] = strdup(b);
	return list;
}

static void test_archive_and_directory_accepted_with_a_key(void **state)
{
	char tar[300], dir[300], file[400], err[512] = "";
	struct pl_bundle_summary sum;
	struct pl_bundle_list list;

	(void)state;
	snprintf(tar, sizeof(tar), "%s/env.tar.gz", tmp);
	snprintf(dir, sizeof(dir), "%s/app", tmp);
	make_tar(tar, 1000);
	assert_int_equal(mkdir(dir, 0755), 0);
	snprintf(file, sizeof(file), "%s/main.py", dir);
	write_text(file, "print('hi')\n");
	list = list_of(tar, dir);
	assert_int_equal(pl_bundles_check(&list, 1 << 20, &sum, err, sizeof(err)), 0);
	assert_true(pl_key_valid(sum.key));
	assert_true(sum.bytes > 12);
	pl_bundle_list_free(&list);
}

static void test_key_changes_with_content_not_with_nothing(void **state)
{
	char dir[300], file[400], err[512];
	struct pl_bundle_summary a, b, c;
	struct pl_bundle_list list;
	struct timespec later[2] = {{0, UTIME_OMIT}, {2000000000, 0}};

	(void)state;
	snprintf(dir, sizeof(dir), "%s/src", tmp);
	assert_int_equal(mkdir(dir, 0755), 0);
	snprintf(file, sizeof(file), "%s/mod.py", dir);
	write_text(file, "x = 1\n");
	list = list_of(dir, NULL);
	assert_int_equal(pl_bundles_check(&list, 1 << 20, &a, err, sizeof(err)), 0);
	assert_int_equal(pl_bundles_check(&list, 1 << 20, &b, err, sizeof(err)), 0);
	assert_string_equal(a.key, b.key);
	/* A file inside the directory changes: the directory's own mtime does not. */
	assert_int_equal(utimensat(AT_FDCWD, file, later, 0), 0);
	assert_int_equal(pl_bundles_check(&list, 1 << 20, &c, err, sizeof(err)), 0);
	assert_string_not_equal(a.key, c.key);
	pl_bundle_list_free(&list);
}

static void assert_check_error(const char *path, uint64_t cap, const char *want)
{
	struct pl_bundle_list list = list_of(path, NULL);
	struct pl_bundle_summary sum;
	char err[512] = "";

	assert_int_equal(pl_bundles_check(&list, cap, &sum, err, sizeof(err)), -1);
	assert_non_null(strstr(err, want));
	assert_non_null(strstr(err, path));
	pl_bundle_list_free(&list);
}

static void test_missing_text_special_and_oversized_refused(void **state)
{
	char path[300];

	(void)state;
	snprintf(path, sizeof(path), "%s/missing.tar", tmp);
	assert_check_error(path, 1 << 20, "No such file or directory");
	snprintf(path, sizeof(path), "%s/notes.txt", tmp);
	write_text(path, "hello, not an archive\n");
	assert_check_error(path, 1 << 20, "Unrecognized archive format");
	assert_check_error("/dev/null", 1 << 20, "neither a regular file nor a directory");
	snprintf(path, sizeof(path), "%s/big.tar.gz", tmp);
	make_tar(path, 10);
	assert_check_error(path, 10, "more than stage.max_size");
}

static void test_key_validation(void **state)
{
	char key[PL_KEY_LEN + 1];

	(void)state;
	assert_true(pl_key_valid("0123456789abcdef"));
	assert_false(pl_key_valid("0123456789ABCDEF"));
	assert_false(pl_key_valid("../../etc/passwd"));
	assert_false(pl_key_valid("0123456789abcde"));
	assert_false(pl_key_valid(NULL));
	pl_key_of_text("/a.tar,/b.tar", key);
	assert_true(pl_key_valid(key));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_archive_and_directory_accepted_with_a_key),
	    cmocka_unit_test(test_key_changes_with_content_not_with_nothing),
	    cmocka_unit_test(test_missing_text_special_and_oversized_refused),
	    cmocka_unit_test(test_key_validation),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
