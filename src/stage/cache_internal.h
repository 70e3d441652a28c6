/* Internal to the node cache (cache.c, cache_index.c): its file names. The rest uses cache.h. */
#ifndef PL_CACHE_INTERNAL_H
#define PL_CACHE_INTERNAL_H

#define BOOT_ID_FILE "boot_id"
#define LOCK_FILE "lock"
#define META_FILE "meta"
#define MARKER_PREFIX "use."
/* In an entry the site purged while a job used it: no later job reuses it, the last epilog
 * that releases it removes it. */
#define PURGE_FILE "purge"
#define VIEW_MOUNT "t"

#include <stddef.h>

struct pl_cache;
/* Removes every entry, in use or not: after a reboot no job holds one, whatever its markers say
 * (a stage.dir on disk keeps the stage directories of jobs that ended with the boot). */
size_t pl_cache_purge_after_reboot(struct pl_cache *c);

#endif
