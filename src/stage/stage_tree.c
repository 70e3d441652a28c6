/* Making one staged tree, as the user: the tree made anew, filled (from the bundles on the shared
 * file system, or from a fan-out session: tree_extract.c), finished and prepared for its kind.
 * Below both the orchestration (stage.c) and the tree (tree/), which use it and nothing else of
 * each other's. */
#include "stage_tree.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "bundle.h"
#include "env_kind.h"
#include "env_prepare.h"
#include "purge.h"

/* The end of a summary, written by the user side and read by root for the budget. */
#define USAGE_TAG "; took %" PRIu64 " bytes, %" PRIu64 " entries"

/* Each bundle looked up once (pl_bundle_lookup): the free-space check and the extraction use
 * that lookup, so the shared file system sees one path walk per bundle and node. */
struct looked_up {
	int fd; /* O_PATH, -1 if the lookup failed (errno in err) */
	int err;
	struct stat st;
};

static struct looked_up *look_up_all(const struct pl_bundle_list *bundles)
{
	struct looked_up *l = calloc(bundles->n ? bundles->n : 1, sizeof(*l));

	for (size_t i = 0; l && i < bundles->n; i++) {
		l[i].fd = pl_bundle_lookup(bundles->paths[i], &l[i].st);
		l[i].err = l[i].fd < 0 ? errno : 0;
	}
	return l;
}

static void close_all(struct looked_up *l, size_t n)
{
	for (size_t i = 0; l && i < n; i++)
		if (l[i].fd >= 0)
			close(l[i].fd);
	free(l);
}

static int check_free_space(int dirfd, const struct pl_bundle_list *bundles,
			    const struct looked_up *l, char *msg, size_t len)
{
	struct statvfs vfs;
	uint64_t need = 0;
	uint64_t avail;

	for (size_t i = 0; i < bundles->n; i++)
		if (l[i].fd >= 0 && S_ISREG(l[i].st.st_mode))
			need += (uint64_t)l[i].st.st_size;
	if (fstatvfs(dirfd, &vfs) < 0)
		return 0;
	avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	if (avail >= need)
		return 0;
	snprintf(msg, len,
		 "%s: not enough space on the stage file system: %" PRIu64
		 " bytes free, the archives alone are %" PRIu64 " bytes",
		 bundles->paths[0], avail, need);
	return -1;
}

/* bytes_read: what the bundle cost the shared file system. */
static int extract_one(const char *path, const struct looked_up *l, int dirfd,
		       const struct pl_extract_limits *lim, struct pl_extract_stats *stats,
		       uint64_t *bytes_read, char *msg, size_t len)
{
	uint64_t written_before = stats->bytes;
	char why[PL_ERRLEN];
	int rc;

	if (l->fd < 0) {
		snprintf(msg, len, "%s: %s", path, strerror(l->err));
		return -1;
	}
	if (S_ISDIR(l->st.st_mode)) {
		rc = pl_extract_directory(path, dirfd, lim, stats, why, sizeof(why));
		*bytes_read += stats->bytes - written_before;
	} else {
		rc = pl_extract_archive_looked_up(l->fd, &l->st, dirfd, lim, stats, why,
						  sizeof(why));
		*bytes_read += (uint64_t)l->st.st_size;
	}
	if (rc < 0)
		snprintf(msg, len, "%s: %s", path, why);
	return rc;
}

static double mib(uint64_t bytes)
{
	return (double)bytes / (1024.0 * 1024.0);
}

/* Starts "kind=NAME;": the root side reads it back for its log (pl_env_kind_of_summary). */
static void summarise(const struct pl_extract_stats *s, uint64_t bytes_read, size_t bundles,
		      enum pl_env_kind kind, char *msg, size_t len)
{
	snprintf(msg, len,
		 "kind=%s; %zu bundle(s), read %.1f MiB, wrote %.1f MiB in %" PRIu64
		 " files, %" PRIu64 " dirs, %" PRIu64 " symlinks, %" PRIu64 " hard links; %" PRIu64
		 " set-id bits stripped",
		 pl_env_kind_name(kind), bundles, mib(bytes_read), mib(s->bytes), s->files, s->dirs,
		 s->symlinks, s->hardlinks, s->setid_stripped);
	snprintf(msg + strlen(msg), len - strlen(msg), USAGE_TAG, s->bytes, pl_extract_entries(s));
}

int pl_stage_fill_direct(void *ctx, int dirfd, const struct pl_extract_limits *lim,
			 struct pl_extract_stats *stats, uint64_t *bytes_read, char *msg,
			 size_t len)
{
	const struct pl_bundle_list *bundles = ctx;
	struct looked_up *l = look_up_all(bundles);
	int rc = 0;

	if (!l) {
		snprintf(msg, len, "out of memory");
		return -1;
	}
	if (check_free_space(dirfd, bundles, l, msg, len) < 0)
		rc = -1;
	for (size_t i = 0; rc == 0 && i < bundles->n; i++)
		rc = extract_one(bundles->paths[i], &l[i], dirfd, lim, stats, bytes_read, msg, len);
	close_all(l, bundles->n);
	return rc;
}

static int fill_tree(const struct pl_stage_fill *fill, const char *tree, int dirfd,
		     uint64_t *counted, char *msg, size_t len)
{
	struct pl_extract_limits lim = {.max_bytes = fill->max_bytes,
					.max_entries = fill->max_entries};
	struct pl_extract_stats stats = {0};
	struct pl_env_layout env;
	uint64_t bytes_read = 0;
	char why[PL_ERRLEN];
	int rc = fill->fn(fill->ctx, dirfd, &lim, &stats, &bytes_read, msg, len);

	if (counted)
		*counted = bytes_read;
	if (rc < 0)
		return -1;
	if (pl_extract_finish(dirfd, why, sizeof(why)) < 0) {
		snprintf(msg, len, "%s: %s", tree, why);
		return -1;
	}
	/* After the last tier: the kind is the merged tree's. */
	if (pl_env_detect(tree, &env) < 0) {
		snprintf(msg, len, "%s: %s", tree, strerror(errno));
		return -1;
	}
	if (pl_env_prepare(&env, msg, len) < 0)
		return -1;
	summarise(&stats, bytes_read, fill->nbundles, env.kind, msg, len);
	return 0;
}

/* A tree left by a staging that was killed is replaced. */
int pl_stage_make_tree(const char *tree, const struct pl_stage_fill *fill, uint64_t *bytes_read,
		       char *msg, size_t len)
{
	char why[PL_ERRLEN];
	int dirfd;
	int rc;

	umask(077);
	if (pl_remove_tree(tree, why, sizeof(why)) < 0 || mkdir(tree, 0700) < 0) {
		snprintf(msg, len, "%s: %s", tree, why[0] ? why : strerror(errno));
		return -1;
	}
	dirfd = open(tree, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dirfd < 0) {
		snprintf(msg, len, "%s: %s", tree, strerror(errno));
		return -1;
	}
	rc = fill_tree(fill, tree, dirfd, bytes_read, msg, len);
	close(dirfd);
	if (rc < 0)
		pl_remove_tree(tree, why, sizeof(why));
	return rc;
}
