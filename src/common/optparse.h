/* Parsing and normalisation of the values of --pybundle and --pymonitor.
 * Pure: no Slurm, no file system access; the same code runs at submit time,
 * in slurmstepd and in the prolog, so every context agrees on what a value means. */
#ifndef PL_OPTPARSE_H
#define PL_OPTPARSE_H

#include <stdbool.h>
#include <stddef.h>

/* Tiers are few in practice (base, tools, application); a long list is a mistake. */
#define PL_MAX_BUNDLES 32
#define PL_ERRLEN 512

struct pl_bundle_list {
	size_t n;
	char *paths[PL_MAX_BUNDLES];
};

/* Splits "A[,B...]" and makes every element absolute against base_dir
 * (lexically: "." and ".." segments and repeated slashes are folded, as
 * os.path.abspath does). base_dir must be absolute. */
int pl_bundle_list_parse(const char *arg, const char *base_dir, struct pl_bundle_list *out,
			 char *err, size_t errlen);
/* Comma-joined form handed between contexts; NULL on allocation failure. */
char *pl_bundle_list_join(const struct pl_bundle_list *list);
void pl_bundle_list_free(struct pl_bundle_list *list);

/* NULL (bare --pymonitor) means yes. */
int pl_monitor_parse(const char *arg, bool *on, char *err, size_t errlen);

/* Lexically normalised absolute form of path, relative ones against base_dir;
 * NULL with errno set on failure (ENAMETOOLONG, EINVAL, ENOMEM). */
char *pl_path_absolute(const char *path, const char *base_dir);

#endif
