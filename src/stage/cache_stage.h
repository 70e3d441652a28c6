/* The node cache's part in a staging on the direct path (cache.h has the design):
 *
 *   pl_cache_begin   the bundles' identity as the user; a hit marks the entry in use and the job
 *                    runs from its read-only view; a miss reserves the entry (its lock held until
 *                    pl_cache_end) and names the path the user stages into;
 *   pl_cache_end     after the staging: adopts the tree into the cache (moved out of the user's
 *                    reach, mounted back read-only), or drops the reservation;
 *   pl_cache_job_end in the epilog: drops the job's markers, removes what no job holds and is
 *                    not complete, evicts to the bounds, and says what the cache holds. */
#ifndef PL_CACHE_STAGE_H
#define PL_CACHE_STAGE_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "cache.h"

struct pl_cache_ticket {
	struct pl_cache c;
	char name[PL_SHA256_HEX_LEN + 1];
	uint32_t job_id;
	struct pl_user user;
	int name_lock;		 /* held from a miss until pl_cache_end */
	bool hit;		 /* the tree is cached: root names its view */
	char root[PATH_MAX];	 /* where the job's tree is (hit) or is to be staged (miss) */
	char summary[PL_ERRLEN]; /* hit: the staging's summary, kept with the entry */
	uint64_t shared_bytes;	 /* what the identity read of the shared file system */
};

/* 0: the ticket is a hit or a reserved miss; -1 with the reason (in why) when the cache is not
 * used for this staging, which then goes on as without the cache. */
int pl_cache_begin(const struct pl_config *cfg, int basefd, uint32_t job_id,
		   const struct pl_user *user, const struct pl_bundle_list *list,
		   struct pl_cache_ticket *t, char *why, size_t whylen);
/* After a miss's staging (ok: it worked, summary its summary with "took B bytes, E entries").
 * Logs what it could not do; the job's tree stays usable either way. */
void pl_cache_end(const struct pl_config *cfg, struct pl_cache_ticket *t, bool ok,
		  const char *summary);
/* Releases a hit's ticket. */
void pl_cache_done(struct pl_cache_ticket *t);
/* The epilog's part. */
void pl_cache_job_end(const struct pl_config *cfg, int basefd, uint32_t job_id);

#endif
