/* The bundles of a request as files: submit-time checks and their content key. */
#ifndef PL_BUNDLE_H
#define PL_BUNDLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "optparse.h"

/* 16 hex digits: names the staged tree of one set of bundles on a node, so a
 * step naming the same bundles (same content) as the job or an earlier step
 * reuses that tree, and one naming others gets its own. */
#define PL_KEY_LEN 16

struct pl_bundle_summary {
	uint64_t bytes; /* archive sizes plus the file sizes of directory bundles */
	char key[PL_KEY_LEN + 1];
};

/* Run where the user's rights apply (srun, sbatch, salloc): every element must
 * exist and be readable; a file must be an archive libarchive reads; the total
 * must fit max_bytes. The key covers paths, identities, sizes and mtimes. */
int pl_bundles_check(const struct pl_bundle_list *list, uint64_t max_bytes,
		     struct pl_bundle_summary *sum, char *err, size_t errlen);

/* A key that crossed the environment is a path component: check it. */
bool pl_key_valid(const char *key);

/* Key of the list text alone, for a job whose submit host gave none. */
void pl_key_of_text(const char *text, char key[PL_KEY_LEN + 1]);

#endif
