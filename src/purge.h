/* Removing a staged tree. Runs as the tree's owner (never as root), so a link
 * the user planted can only ever point at what the user may delete anyway. */
#ifndef PL_PURGE_H
#define PL_PURGE_H

#include <stddef.h>

/* Removes path and everything below it, without following symlinks or crossing
 * mount points; directories the owner made unreadable are opened up first.
 * A missing path is success. */
int pl_remove_tree(const char *path, char *err, size_t errlen);
/* The same for everything below path, keeping path itself. */
int pl_empty_tree(const char *path, char *err, size_t errlen);

#endif
