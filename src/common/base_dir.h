/* The root-owned base directories of a node: stage.dir and monitor.spool_dir.
 *
 * They live in a directory every user may write (/dev/shm, sticky): after a reboot anyone can
 * `mkdir /dev/shm/pylaunch` or plant a symbolic link there before root does, and the sticky bit
 * keeps root from simply removing it... by name. A base that is not a real directory owned by
 * this process's user (root in slurmd) and writable by it alone is reclaimed instead of refused
 * (a refusal would drain the node at every prolog, or turn monitoring off): a fresh directory is
 * made beside it and swapped in atomically with renameat2(RENAME_EXCHANGE), so the path is never
 * missing nor the planted one for an instant, and the planted entry is then removed without
 * following links (a directory as its owner, with the purge of purge.h). Only the last component
 * is ours; its parents (/dev/shm) are the site's. */
#ifndef PL_BASE_DIR_H
#define PL_BASE_DIR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

/* Opens the base path (what: "stage.dir", for messages), creating it 0755 when missing and
 * reclaiming whatever was planted there. Returns 0 and a directory fd, or -1 with one line in
 * err: only a fault of the node itself (the parent is missing, out of memory or inodes). */
int pl_base_dir_open(const char *path, const char *what, int *fd, char *err, size_t errlen);

/* Opens an existing base without changing anything (for a side that is not root, or that must
 * not create it): -1 with errno ENOENT when missing, EPERM when it is not ours to trust. */
int pl_base_dir_open_existing(const char *path);

/* The checks every root-owned directory of ours shares (the bases, the spool's and the stage's
 * directories below them). Opens the directory name under at without following a link: -1 if it
 * is anything else. */
int pl_dir_open_nofollow(int at, const char *name);
/* Whether fd is a directory owned by uid that no one else may write; *st is what fstat said (its
 * mode is 0, and errno set, when fstat failed). */
bool pl_dir_owned_by(int fd, uid_t uid, struct stat *st);

#endif
