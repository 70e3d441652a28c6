/* The small files root keeps beside its trees (the stage's status, the cache's index and boot
 * id): read whole in one go, written whole, never through a link. */
#ifndef PL_SMALL_FILE_H
#define PL_SMALL_FILE_H

#include <stddef.h>

/* Reads up to len - 1 bytes of dirfd/name into buf, NUL-terminated: 0, or -1 with errno. */
int pl_read_small(int dirfd, const char *name, char *buf, size_t len);
/* Writes text into dirfd/name whole: a temporary file (.NAME.tmp) renamed over it, so that a
 * reader never sees half. 0, or -1 with errno. */
int pl_write_small(int dirfd, const char *name, const char *text);

#endif
