/* A node's own extraction of a fan-out session: a child that took the job's user's identity reads
 * the session (tree_frame.h) from a pipe, as the tree process passes it on, and extracts each
 * bundle into the staged tree as its bytes arrive. The archive is never stored, in memory or on
 * disk. The child verifies every size and digest at the END frame; the tree process decides
 * afterwards, from the seal credential, whether the node is staged. */
#ifndef PL_TREE_EXTRACT_H
#define PL_TREE_EXTRACT_H

#include <stddef.h>
#include <stdint.h>

#include "optparse.h"
#include "tree_frame.h"

struct pl_tree_extract {
	const char *tree; /* the staged tree to make (<stage.dir>/<job>/<key>) */
	uint32_t job_id;
	const char *key;
	uint64_t max_bytes;		      /* stage.max_size */
	uint64_t max_entries;		      /* stage.max_entries */
	const struct pl_bundle_list *bundles; /* their names, for messages */
	int in_fd;			      /* the session, from its first byte */
};

/* pl_user_work_fn: stages the tree from the stream (pl_stage_make_tree). */
int pl_tree_extract_work(void *arg, char *msg, size_t msglen);

#endif
