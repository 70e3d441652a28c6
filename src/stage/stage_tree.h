/* Making one staged tree, as the user (stage_tree.c): what the direct path (stage.c) and the
 * fan-out tree's extraction (tree_extract.c) share. */
#ifndef PL_STAGE_TREE_H
#define PL_STAGE_TREE_H

#include <stddef.h>
#include <stdint.h>

#include "extract.h"

/* How a staged tree is filled, as the user: fn extracts the bundles beneath dirfd (within lim,
 * adding to stats and to *bytes_read what the shared file system gave), or fails with "WHAT:
 * reason" in msg. */
typedef int (*pl_stage_fill_fn)(void *ctx, int dirfd, const struct pl_extract_limits *lim,
				struct pl_extract_stats *stats, uint64_t *bytes_read, char *msg,
				size_t len);
struct pl_stage_fill {
	pl_stage_fill_fn fn;
	void *ctx;
	uint64_t max_bytes;
	uint64_t max_entries;
	size_t nbundles;
};

/* As the user: makes tree anew (replacing what a killed staging left), fills it, applies the
 * directory modes, runs a conda-pack bundle's bin/conda-unpack, and leaves a summary in msg;
 * on failure removes the tree and leaves the reason. *bytes_read (if not NULL): what fill
 * counted. */
int pl_stage_make_tree(const char *tree, const struct pl_stage_fill *fill, uint64_t *bytes_read,
		       char *msg, size_t len);

/* pl_stage_fill_fn of the direct path: ctx is the struct pl_bundle_list, read from the shared
 * file system (one lookup per bundle: the free-space check and the extraction share it). */
int pl_stage_fill_direct(void *ctx, int dirfd, const struct pl_extract_limits *lim,
			 struct pl_extract_stats *stats, uint64_t *bytes_read, char *msg,
			 size_t len);

#endif
