/* The root of the tree reads the bundles from the shared file system, as the job's user, and
 * turns them into a fan-out session (tree_frame.h) written to a pipe: the only place where the
 * tree touches the shared file system. */
#ifndef PL_TREE_SOURCE_H
#define PL_TREE_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "optparse.h"
#include "runas.h"

struct pl_tree_source {
	const struct pl_bundle_list *bundles; /* absolute paths */
	const struct pl_user *user;
	uint32_t job_id;
	const char *key;
	uint64_t max_bytes; /* stage.max_size: bounds a directory's tar stream */
	int out_fd;	    /* blocking pipe to the tree process */
};

/* pl_user_work_fn: runs in a child that took the user's identity; writes the whole session
 * (HEADER, DATA frames, END) to out_fd. Zip archives are refused: a zip read as a stream loses
 * its modes and symlinks, so the caller stages zips the direct way. msg: bytes read. */
int pl_tree_source_work(void *arg, char *msg, size_t msglen);

#endif
