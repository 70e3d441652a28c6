/* Internal to the node cache (cache.c, cache_index.c): its file names. The rest uses cache.h. */
#ifndef PL_CACHE_INTERNAL_H
#define PL_CACHE_INTERNAL_H

#define BOOT_ID_FILE "boot_id"
#define LOCK_FILE "lock"
#define META_FILE "meta"
#define MARKER_PREFIX "use."
#define VIEW_MOUNT "t"

#endif
