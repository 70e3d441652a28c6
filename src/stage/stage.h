/* Staging: the bundles of a job (or of one step) extracted into the node's
 * stage directory as the job's user, reused by every step that names the same
 * bundles, and purged by the epilog. */
#ifndef PL_STAGE_H
#define PL_STAGE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "extract.h"
#include "optparse.h"
#include "runas.h"

/* Who stages together: the nodes of the job (the prolog) or of a step (slurmstepd), among which
 * the bundles are fanned out over a tree; a NULL nodelist stages this node alone. */
struct pl_stage_peers {
	const char *context;  /* "prolog" or "step", for the log */
	const char *nodelist; /* hostlist expression (SLURM_NODELIST, the step's) or NULL */
	const char *self;     /* this node's name in it, or NULL: */
	size_t self_index;    /* ... its index there */
	const char *no_tree;  /* why the tree must not be used (NULL: it may) */
	uid_t slurm_uid;      /* SlurmUser: its credentials are accepted besides root's */
};

struct pl_stage_result {
	bool ok;
	bool reused;		 /* staged earlier by the prolog or another step */
	char root[PATH_MAX];	 /* the staged tree (PYLAUNCH_ROOT) when ok */
	char message[PL_ERRLEN]; /* "FILE: reason" when not ok; a summary when staged now */
	double seconds;
};

/* Makes sure the bundles (comma list, absolute) under key are staged for the
 * job on this node, staging them now if no one has. Every staging of the job on the node
 * (the prolog's, each step's other bundles) draws on one budget of stage.max_size bytes
 * and stage.max_entries entries, kept by root in .state/<jobid>/usage; the stagings of a
 * job on a node take turns. Returns -1 only for a
 * fault of the node itself (the stage base cannot be made); a user's bad
 * bundle returns 0 with res->ok false and the reason recorded for task_init. */
int pl_stage_ensure(const struct pl_config *cfg, uint32_t job_id, const struct pl_user *user,
		    const char *bundles, const char *key, const struct pl_stage_peers *peers,
		    struct pl_stage_result *res);
/* Removes everything the job staged on this node by deadline_ms (CLOCK_MONOTONIC ms,
 * pl_purge_now_ms); logs what it could not, which a later epilog's sweep removes. */
void pl_stage_purge(const struct pl_config *cfg, uint32_t job_id, const struct pl_user *user,
		    long long deadline_ms);

#endif
