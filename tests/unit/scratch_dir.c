#include "scratch_dir.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above first. */
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

char *join(char *buf, const char *dir, const char *name)
{
	int n = snprintf(buf, PATH_MAX, "%s/%s", dir, name);

	assert_true(n > 0 && n < PATH_MAX);
	return buf;
}

void make_temp_dir(char *buf, const char *prefix, const char *what)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(buf, PATH_MAX, "%s/%s-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", prefix, what);
	assert_non_null(mkdtemp(buf));
}

/* Directories an extraction made read-only must be opened up before they can be emptied. */
static int open_up(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (type == FTW_D || type == FTW_DNR)
		chmod(path, 0700);
	return 0;
}

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

void remove_tree(const char *path)
{
	nftw(path, open_up, 32, FTW_PHYS);
	assert_int_equal(nftw(path, remove_one, 32, FTW_PHYS | FTW_DEPTH), 0);
}
