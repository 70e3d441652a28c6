/* Staging over the fan-out tree: this node's part in broadcasting a job's bundles from the first
 * node of the job (or of a step), which alone reads the shared file system, to every other, each
 * extracting the stream as it passes it on to its children. See pylaunch(8), "Fan-out".
 *
 * Runs in a child process of its own (the tree process, root) so that nothing there can take the
 * prolog down with it: a crash or a kill of that process (the integration tests kill it) is a
 * fall-back to the direct path, never a failed prolog. */
#ifndef PL_TREE_STAGE_H
#define PL_TREE_STAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "optparse.h"
#include "runas.h"
#include "tree_topology.h"

struct pl_tree_plan {
	const struct pl_config *cfg;
	const char *context; /* "prolog" or "step": for the log */
	uint32_t job_id;
	const char *key;
	const struct pl_hostlist *nodes; /* of the job (prolog) or of the step */
	size_t self;			 /* this node's index in nodes */
	const struct pl_user *user;
	const struct pl_bundle_list *bundles;
	const char *tree; /* the staged tree to make */
	uid_t slurm_uid;
	bool relay_only; /* the node cache has the tree: pass the stream on, extract nothing */
};

enum pl_tree_result {
	PL_TREE_STAGED, /* the tree holds the verified session */
	PL_TREE_FAILED, /* the session was verified but would not extract: the user's bundle */
	PL_TREE_DIRECT, /* no verified session: read the shared file system directly */
};

struct pl_tree_outcome {
	enum pl_tree_result result;
	const char *role;		   /* root, interior, leaf */
	char parent[PL_NODE_NAME_MAX + 1]; /* who served the session, "-" for the root or none */
	bool reattached;		   /* served by another than the first parent, or twice */
	uint64_t bytes_in, bytes_out, shared_bytes;
	double seconds;
	char message[PL_ERRLEN]; /* the extraction's summary, or the reason */
};

/* The tree process of this node. */
struct pl_tree_run {
	pid_t pid;
	int fd; /* its outcome arrives here */
};

/* Starts this node's part: -1 (and the reason) if the process cannot be made. */
int pl_tree_start(const struct pl_tree_plan *plan, struct pl_tree_run *run, char *err,
		  size_t errlen);
/* Waits (up to timeout s) until this node is staged or has given up on the tree. A tree process
 * that dies or overruns is a PL_TREE_DIRECT with the reason. */
void pl_tree_outcome(struct pl_tree_run *run, unsigned timeout, struct pl_tree_outcome *out);
/* Waits (up to timeout s) while the tree process still serves nodes below this one, which may
 * outlast this node's own staging; then it is gone. */
void pl_tree_finish(struct pl_tree_run *run, unsigned timeout);

#endif
