/* The small files root keeps beside its trees (the stage's status, the cache's index and boot
 * id): read whole in one go, never through a link. */
#ifndef PL_SMALL_FILE_H
#define PL_SMALL_FILE_H

#include <stddef.h>

/* Reads up to len - 1 bytes of dirfd/name into buf, NUL-terminated: 0, or -1 with errno. */
int pl_read_small(int dirfd, const char *name, char *buf, size_t len);

#endif
