/* The site's named bundles (bundles: in the configuration) in a --pybundle value, and its
 * policy of a default bundle. Pure: no Slurm, no file system. */
#ifndef PL_SITE_BUNDLES_H
#define PL_SITE_BUNDLES_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/* --pybundle=no: no bundle, and no site default either. */
bool pl_pybundle_is_no(const char *value);

/* raw with every "@NAME" element replaced by the site's path for NAME; *out is a new string
 * (NULL and -1 with a message naming the element when NAME is not the site's). */
int pl_site_bundles_expand(const struct pl_config *cfg, const char *raw, char **out, char *err,
			   size_t errlen);

/* The policy's bundle path for a step of nnodes nodes running argv0 that names no bundle, or
 * NULL when the policy does not apply (no default, too few nodes, not Python). */
const char *pl_site_default_bundle(const struct pl_config *cfg, unsigned nnodes, const char *argv0);

#endif
