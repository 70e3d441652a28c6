#include "purge.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* nftw() has no user pointer. */
static struct {
	const char *top;
	int keep_top;
	int failed_errno;
	int unreadable;
} purge;

static int open_up_dir(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (type == FTW_D || type == FTW_DNR) {
		if (chmod(path, 0700) < 0 && errno != ENOENT)
			purge.failed_errno = errno;
		if (type == FTW_DNR)
			purge.unreadable++;
	}
	return 0;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	if (purge.keep_top && ftw->level == 0)
		return 0;
	if (type == FTW_DP ? rmdir(path) : unlink(path))
		if (errno != ENOENT)
			purge.failed_errno = errno;
	return 0;
}

/* A pass can reveal directories below one it just opened up: repeat while
 * it finds new unreadable ones (bounded: each pass opens at least one). */
static void open_up_all(const char *path)
{
	for (int pass = 0; pass < 64; pass++) {
		purge.unreadable = 0;
		nftw(path, open_up_dir, 16, FTW_PHYS | FTW_MOUNT);
		if (!purge.unreadable)
			return;
	}
}

static int purge_tree(const char *path, int keep_top, char *err, size_t errlen)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT
			   ? 0
			   : (snprintf(err, errlen, "%s: %s", path, strerror(errno)), -1);
	if (!S_ISDIR(st.st_mode)) {
		if (keep_top || unlink(path) == 0)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	memset(&purge, 0, sizeof(purge));
	purge.top = path;
	purge.keep_top = keep_top;
	open_up_all(path);
	nftw(path, remove_entry, 16, FTW_PHYS | FTW_MOUNT | FTW_DEPTH);
	if (purge.failed_errno) {
		snprintf(err, errlen, "%s: not everything could be removed: %s", path,
			 strerror(purge.failed_errno));
		return -1;
	}
	return 0;
}

int pl_remove_tree(const char *path, char *err, size_t errlen)
{
	return purge_tree(path, 0, err, errlen);
}

int pl_empty_tree(const char *path, char *err, size_t errlen)
{
	return purge_tree(path, 1, err, errlen);
}
