#include "bundle.h"

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "extract.h"

#define FNV_OFFSET 1469598103934665603ULL
#define FNV_PRIME 1099511628211ULL

static void fnv_mix(uint64_t *h, const void *data, size_t len)
{
	const unsigned char *p = data;

	for (size_t i = 0; i < len; i++) {
		*h ^= p[i];
		*h *= FNV_PRIME;
	}
}

static void mix_stat(uint64_t *h, const char *name, const struct stat *st)
{
	uint64_t fields[] = {(uint64_t)st->st_dev,	   (uint64_t)st->st_ino,
			     (uint64_t)st->st_size,	   (uint64_t)st->st_mode,
			     (uint64_t)st->st_mtim.tv_sec, (uint64_t)st->st_mtim.tv_nsec};

	fnv_mix(h, name, strlen(name) + 1);
	fnv_mix(h, fields, sizeof(fields));
}

static void format_key(uint64_t h, char key[PL_KEY_LEN + 1])
{
	snprintf(key, PL_KEY_LEN + 1, "%016" PRIx64, h);
}

void pl_key_of_text(const char *text, char key[PL_KEY_LEN + 1])
{
	uint64_t h = FNV_OFFSET;

	fnv_mix(&h, text, strlen(text));
	format_key(h, key);
}

bool pl_key_valid(const char *key)
{
	if (!key || strlen(key) != PL_KEY_LEN)
		return false;
	return strspn(key, "0123456789abcdef") == PL_KEY_LEN;
}

/* nftw() has no user pointer: the directory walk's state lives here. */
static struct {
	uint64_t *hash;
	uint64_t bytes;
	uint64_t max_bytes;
} walk;

static int walk_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)ftw;
	if (type == FTW_DNR || type == FTW_NS) {
		errno = EACCES;
		return -1;
	}
	mix_stat(walk.hash, path, st);
	if (S_ISREG(st->st_mode))
		walk.bytes += (uint64_t)st->st_size;
	/* Stop walking a huge tree once it is known to be too big. */
	return walk.bytes > walk.max_bytes ? 1 : 0;
}

static int check_directory(const char *path, uint64_t *hash, uint64_t budget, uint64_t *bytes,
			   char *err, size_t errlen)
{
	int rc;

	if (access(path, R_OK | X_OK) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	walk.hash = hash;
	walk.bytes = 0;
	walk.max_bytes = budget;
	rc = nftw(path, walk_entry, 32, FTW_PHYS | FTW_MOUNT);
	if (rc < 0) {
		snprintf(err, errlen, "%s: cannot read the whole directory: %s", path,
			 strerror(errno));
		return -1;
	}
	*bytes = walk.bytes;
	return 0;
}

static int check_archive(const char *path, int pathfd, const struct stat *st, char *err,
			 size_t errlen)
{
	char why[512];

	if (pl_archive_probe_looked_up(pathfd, st, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "%s: %s", path, why);
		return -1;
	}
	return 0;
}

/* One path walk for an archive (pl_bundle_lookup): srun's check is part of every job's cost to
 * the shared file system. */
static int check_one(const char *path, uint64_t *hash, uint64_t budget, uint64_t *bytes, char *err,
		     size_t errlen)
{
	struct stat st;
	int pathfd = pl_bundle_lookup(path, &st);
	int rc;

	if (pathfd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	mix_stat(hash, path, &st);
	if (S_ISDIR(st.st_mode))
		rc = check_directory(path, hash, budget, bytes, err, errlen);
	else if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: neither a regular file nor a directory", path);
		rc = -1;
	} else {
		*bytes = (uint64_t)st.st_size;
		rc = check_archive(path, pathfd, &st, err, errlen);
	}
	close(pathfd);
	return rc;
}

int pl_bundles_check(const struct pl_bundle_list *list, uint64_t max_bytes,
		     struct pl_bundle_summary *sum, char *err, size_t errlen)
{
	uint64_t hash = FNV_OFFSET;

	sum->bytes = 0;
	for (size_t i = 0; i < list->n; i++) {
		uint64_t bytes = 0;
		uint64_t budget = max_bytes > sum->bytes ? max_bytes - sum->bytes : 0;

		if (check_one(list->paths[i], &hash, budget, &bytes, err, errlen) < 0)
			return -1;
		sum->bytes += bytes;
		if (sum->bytes > max_bytes) {
			snprintf(err, errlen,
				 "%s: the bundles come to more than stage.max_size (%" PRIu64
				 " bytes) before extraction",
				 list->paths[i], max_bytes);
			return -1;
		}
	}
	format_key(hash, sum->key);
	return 0;
}
