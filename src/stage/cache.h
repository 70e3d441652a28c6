/* The node cache: trees staged by one job kept on the node for the next job of the same user that
 * names the same bundles (job arrays, ensembles, resubmits). pylaunch(8), "Node cache".
 *
 * Key. An entry is named by SHA-256("uid=<uid>" + what the user's side reports), computed by root
 * (a user cannot reach another user's entries whatever their side reports). The user's side
 * (pl_run_as_user: no user path is ever opened or stat'ed as root) reports, per tier in order (the
 * layering), the identity stat(2) gives it: path, device, inode, size, mtime and ctime in
 * nanoseconds. Those prove the content unchanged without reading it, on the assumption that a
 * file whose content changes gets a new mtime or ctime: true of every write through the file
 * system (ctime cannot be set by a user), false when the shared file system's server is changed
 * behind its clients' backs or reports coarse or stale times (a rewrite within the time
 * granularity). The site rule cache.verify: digest removes that risk: the user's side then reads
 * every tier and reports the SHA-256 of their contents instead (one read of each bundle per job
 * and node, the cost of the check, but no extraction), so byte-identical bundles under other
 * paths share an entry too. The kind is a function of the content, so it needs no part of its
 * own. A directory tier (mirrored on the fly) has no identity that proves its files unchanged:
 * such a list is never cached.
 *
 * Layout, under stage.dir (every level opened relative to a descriptor, no symbolic link followed):
 *   .cache/                 root 0700: nothing below is reachable by a user by path
 *   .cache/lock             the index lock (flock), held for lookups, adoption and eviction
 *   .cache/boot_id          the boot the entries belong to: another boot empties the cache
 *   .cache/<name>/          root 0700, one entry
 *   .cache/<name>/meta      "uid bytes entries\n<staging summary>"
 *   .cache/<name>/tree/     the user's tree (0700, the user's files)
 *   .cache/<name>/use.<id>  a job using it (in-use marker; live while stage.dir/<id> exists)
 *   .cache/<name>.lock      held while the entry is staged, so the same user's concurrent jobs
 *                           with the same bundles stage once
 *   .view/                  root 0755
 *   .view/<name>/           the user, 0700 (no other user gets in)
 *   .view/<name>/t          PYLAUNCH_ROOT of every job using the entry: a read-only, nosuid,
 *                           nodev bind mount of .cache/<name>/tree
 *
 * Isolation. A job must not change a tree a later job trusts. Chosen: the tree is staged by the
 * user at its final path (.view/<name>/t: paths that conda-unpack or a venv wrote into files stay
 * right), then root moves it under .cache (out of every user's reach) and mounts it back
 * read-only. A write by a job fails with EROFS instead of silently reaching the next job; the
 * user cannot remount it, and the only writable path to the files is under root's .cache. The
 * alternatives were weaker or dearer: a manifest checked at reuse walks every entry of the tree
 * per job and is blind to a change that keeps size and times; a private copy-on-write view
 * (overlayfs) per job costs a mount per job and a writable upper layer in memory. The price:
 * the tree is read-only for the job's tasks (Python cannot write __pycache__ there: bundles should
 * carry their bytecode, as conda-pack and pip-installed trees do).
 *
 * Bounds. cache.max_size bytes (what the extractions wrote) and cache.max_entries trees per
 * node, evicted least recently used first (an entry's mtime: set at each use). An entry with a
 * live in-use marker is never evicted, so the cache may exceed its bounds while jobs use it; the
 * prolog makes room before it stages, and every epilog, once it has dropped its job's markers,
 * brings the cache back within bounds. Markers of jobs whose stage directory is gone (the
 * epilog's purge or the sweep removed it) are stale and dropped by any scan.
 *
 * Scope. Only the direct path (one node reads its own bundles) looks the cache up: a job that
 * stages over the fan-out tree stages as before, so a hit on some nodes never makes the others
 * read the shared file system again (pylaunch(8), "Node cache"). */
#ifndef PL_CACHE_H
#define PL_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

#include "config.h"
#include "optparse.h"
#include "runas.h"
#include "sha256.h"

#define PL_CACHE_DIR ".cache"
#define PL_CACHE_VIEW ".view"

/* One entry, as a scan of the index finds it. */
struct pl_cache_entry {
	char name[PL_SHA256_HEX_LEN + 1];
	uid_t uid;
	uint64_t bytes, entries;
	struct timespec used; /* last use */
	unsigned in_use;      /* live markers */
	bool purging;	      /* the site purged it while in use (pl_cache_purge) */
};

struct pl_cache_list {
	struct pl_cache_entry *e;
	size_t n;
};

/* The cache of a stage base (an fd from pl_stage_base_open). */
struct pl_cache {
	int basefd;
	int fd;	    /* .cache */
	int viewfd; /* .view */
	int lockfd; /* -1 when not locked */
};

/* Opens (making them) .cache and .view under basefd, and empties the cache when it belongs to
 * another boot. -1 with the reason in err. */
int pl_cache_open(int basefd, struct pl_cache *c, char *err, size_t errlen);
void pl_cache_close(struct pl_cache *c);
int pl_cache_lock(struct pl_cache *c);
void pl_cache_unlock(struct pl_cache *c);

/* The entry name of user's identity report. */
void pl_cache_name(uid_t uid, const char *identity, char name[PL_SHA256_HEX_LEN + 1]);

/* As the user: the identity of the bundle list (hex, into out) and the bytes it read (digest
 * mode). -1 with the reason when the list cannot be cached (a directory tier, a missing file). */
int pl_cache_identity(const struct pl_bundle_list *list, bool digest, char *out, size_t outlen,
		      uint64_t *bytes_read, char *err, size_t errlen);

/* Scans the index (stale markers dropped), oldest use first. Free with pl_cache_list_free. */
int pl_cache_scan(struct pl_cache *c, struct pl_cache_list *l);
void pl_cache_list_free(struct pl_cache_list *l);
/* Totals of a scan. */
void pl_cache_totals(const struct pl_cache_list *l, uint64_t *bytes, size_t *n);

/* Whether name holds a tree of uid: 0 and its meta, or -1. */
int pl_cache_meta_read(struct pl_cache *c, const char *name, uid_t *uid, uint64_t *bytes,
		       uint64_t *entries, char *summary, size_t len);
int pl_cache_meta_write(struct pl_cache *c, const char *name, uid_t uid, uint64_t bytes,
			uint64_t entries, const char *summary);
/* Marks name in use by job_id and makes it the most recently used. */
int pl_cache_mark(struct pl_cache *c, const char *name, uint32_t job_id);
/* Whether the entry (an fd of its directory) has a live marker; stale ones are dropped. */
bool pl_cache_entry_in_use(struct pl_cache *c, int entryfd);
/* Drops job_id's markers everywhere: how many. */
size_t pl_cache_release(struct pl_cache *c, uint32_t job_id);

/* Removes one entry (its view unmounted first). */
int pl_cache_remove(struct pl_cache *c, const char *name, char *err, size_t errlen);
/* Evicts unused entries, least recently used first, until the cache plus need_bytes and
 * need_entries fits max_bytes and max_entries. Returns how many it evicted; *fits tells
 * whether the bounds now hold. */
size_t pl_cache_make_room(struct pl_cache *c, uint64_t max_bytes, uint64_t max_entries,
			  uint64_t need_bytes, uint64_t need_entries, bool *fits);
/* The site's order: removes every entry of uid (of all users with (uid_t)-1) that no job uses,
 * and flags those in use (*kept of them) so that no later job reuses them and the epilog that
 * releases the last of them removes them (pl_cache_purge_released). Returns how many it removed. */
size_t pl_cache_purge(struct pl_cache *c, uid_t uid, size_t *kept);
/* Removes the flagged entries no job uses any more. Returns how many. */
size_t pl_cache_purge_released(struct pl_cache *c);
/* Whether the site purged name while a job used it. */
bool pl_cache_purging(struct pl_cache *c, const char *name);

/* Removes every entry no job uses (cache.enabled turned off). Returns how many. */
size_t pl_cache_purge_unused(struct pl_cache *c);

/* The root of a cached tree, as jobs see it. */
void pl_cache_view_path(const char *stage_dir, const char *name, char *buf, size_t len);

#endif
