/* Internal to the session's framing (tree_frame.c, tree_frame_decode.c): the rules both ends
 * apply. The rest of the tree uses tree_frame.h. */
#ifndef PL_TREE_FRAME_INTERNAL_H
#define PL_TREE_FRAME_INTERNAL_H

#include "tree_frame.h"

#define TYPE_DATA 'D'
#define TYPE_END 'E'

/* Room for a rule's message before the decoder adds where it happened. */
#define PL_FRAME_ERRLEN 256

/* tree_frame.c */
const char *fr_kind_name(enum pl_frame_kind kind);
int fr_check_header(const struct pl_frame_header *h, uint64_t max_total, char *err, size_t errlen);
bool fr_bundle_short(const struct pl_frame_header *h, const struct pl_frame_digests *d, unsigned i);
int fr_bundle_short_fail(const struct pl_frame_header *h, const struct pl_frame_digests *d,
			 unsigned i, char *err, size_t errlen);
int fr_check_data(const struct pl_frame_header *h, const struct pl_frame_digests *d, int current,
		  unsigned bundle, uint64_t n, uint64_t max_total, char *err, size_t errlen);
void fr_close_bundle(struct pl_sha256 *bundle_sha, struct pl_frame_digests *d, unsigned i);
void fr_session_digest(struct pl_sha256 *session_sha, const struct pl_frame_header *h,
		       struct pl_frame_digests *d);

#endif
