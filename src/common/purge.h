/* Removing a tree a user could have shaped: any depth (deeper than PATH_MAX), any number of
 * entries, directories of mode 000, symbolic links anywhere.
 *
 * Every step is relative to a directory descriptor: no full path is ever built, no symbolic
 * link is followed (a link is removed, never what it points to), no mount point is crossed.
 * One descriptor is held at a time whatever the depth: the walk goes down by name and back up
 * through "..", checking on the way up that ".." is the directory it came from (device and
 * inode), so a directory moved during the walk stops it instead of leading it elsewhere.
 * Directories the owner made unreadable or unwritable are opened up with fchmod first, which
 * only their owner (or root) may do: run it as the tree's owner, so that whatever the user
 * planted can only lead to what the user may delete anyway. */
#ifndef PL_PURGE_H
#define PL_PURGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a purge removed, and whether it stopped early. */
struct pl_purge_stats {
	uint64_t removed; /* entries unlinked, directories included */
	bool timed_out;	  /* the deadline came first: what is left is left */
};

/* Removes parentfd/name and everything below it (keep_top: everything below it only).
 * deadline_ms: CLOCK_MONOTONIC milliseconds (pl_purge_now_ms) past which it stops, 0 for
 * none. A missing entry is success. Returns 0 when everything went, -1 with one line in err
 * ("NAME: not everything could be removed: REASON", or "... deadline reached"). */
int pl_purge_at(int parentfd, const char *name, bool keep_top, long long deadline_ms,
		struct pl_purge_stats *stats, char *err, size_t errlen);

/* The same for an absolute or relative path (its parent is opened normally: only the last
 * component is the user's). */
int pl_remove_tree(const char *path, char *err, size_t errlen);
int pl_empty_tree_until(const char *path, long long deadline_ms, char *err, size_t errlen);

/* CLOCK_MONOTONIC in milliseconds, the clock of every deadline here. */
long long pl_purge_now_ms(void);

#endif
