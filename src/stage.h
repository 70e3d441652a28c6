/* Staging: the bundles of a job (or of one step) extracted into the node's
 * stage directory as the job's user, reused by every step that names the same
 * bundles, and purged by the epilog. */
#ifndef PL_STAGE_H
#define PL_STAGE_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "optparse.h"
#include "runas.h"

struct pl_stage_result {
	bool ok;
	bool reused;		 /* staged earlier by the prolog or another step */
	char root[PATH_MAX];	 /* the staged tree (PYLAUNCH_ROOT) when ok */
	char message[PL_ERRLEN]; /* "FILE: reason" when not ok; a summary when staged now */
	double seconds;
};

/* Makes sure the bundles (comma list, absolute) under key are staged for the
 * job on this node, staging them now if no one has. Returns -1 only for a
 * fault of the node itself (the stage base cannot be made); a user's bad
 * bundle returns 0 with res->ok false and the reason recorded for task_init. */
int pl_stage_ensure(const struct pl_config *cfg, uint32_t job_id, const struct pl_user *user,
		    const char *bundles, const char *key, struct pl_stage_result *res);
/* Removes everything the job staged on this node; logs what it could not. */
void pl_stage_purge(const struct pl_config *cfg, uint32_t job_id, const struct pl_user *user);

#endif
