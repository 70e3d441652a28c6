#include "cache_stage.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "purge.h"

#define VIEW_MOUNT "t"
#define TREE "tree"
#define META "meta"

/* ------------------------------------------------------------ identity, as the user */

struct identity_work {
	const struct pl_bundle_list *list;
	bool digest;
};

static int identity_as_user(void *arg, char *msg, size_t len)
{
	struct identity_work *w = arg;
	char hex[PL_SHA256_HEX_LEN + 1];
	uint64_t bytes = 0;

	if (pl_cache_identity(w->list, w->digest, hex, sizeof(hex), &bytes, msg, len) < 0)
		return -1;
	snprintf(msg, len, "%s %" PRIu64, hex, bytes);
	return 0;
}

static int identify(const struct pl_config *cfg, const struct pl_user *user,
		    const struct pl_bundle_list *list, struct pl_cache_ticket *t, char *why,
		    size_t whylen)
{
	struct identity_work w = {.list = list, .digest = cfg->cache_verify_digest};
	char msg[PL_ERRLEN];
	char hex[PL_SHA256_HEX_LEN + 1];

	if (pl_run_as_user(user, identity_as_user, &w, cfg->stage_timeout, msg, sizeof(msg)) < 0 ||
	    sscanf(msg, "%64[0-9a-f] %" SCNu64, hex, &t->shared_bytes) != 2 ||
	    strlen(hex) != PL_SHA256_HEX_LEN) {
		snprintf(why, whylen, "not cached: %s", msg);
		return -1;
	}
	pl_cache_name(user->uid, hex, t->name);
	return 0;
}

/* ------------------------------------------------------------ entries */

static int open_dir(int dirfd, const char *name, int flags)
{
	return openat(dirfd, name, flags | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* The view is mounted when its t is the root of a mount (a bind mount of the same file system
 * keeps the device number: only the kernel's mount flag tells). */
static bool view_mounted(struct pl_cache *c, const char *name)
{
	struct statx stx;
	int vfd = open_dir(c->viewfd, name, O_RDONLY);
	bool mounted;

	if (vfd < 0)
		return false;
	mounted = statx(vfd, VIEW_MOUNT, AT_SYMLINK_NOFOLLOW, STATX_TYPE, &stx) == 0 &&
		  (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
		  (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT) && S_ISDIR(stx.stx_mode);
	close(vfd);
	return mounted;
}

static bool try_hit(struct pl_cache_ticket *t)
{
	uid_t uid;
	uint64_t bytes, entries;

	if (pl_cache_meta_read(&t->c, t->name, &uid, &bytes, &entries, t->summary,
			       sizeof(t->summary)) < 0)
		return false;
	if (pl_cache_purging(&t->c, t->name))
		return false;
	if (uid != t->user.uid || !view_mounted(&t->c, t->name)) {
		char err[256];

		pl_cache_remove(&t->c, t->name, err, sizeof(err));
		return false;
	}
	return pl_cache_mark(&t->c, t->name, t->job_id) == 0;
}

/* The user's view directory, where the user stages. One left by an adoption that failed may
 * still hold a running job's tree: then this staging goes on without the cache, and the epilog
 * that finds it unused removes it (remove_incomplete). */
static int make_view(struct pl_cache_ticket *t)
{
	if (mkdirat(t->c.viewfd, t->name, 0700) < 0 ||
	    fchownat(t->c.viewfd, t->name, t->user.uid, t->user.gid, AT_SYMLINK_NOFOLLOW) < 0)
		return -1;
	return 0;
}

/* A miss: the entry made (without meta: not complete), marked for the job, the view ready. */
static int reserve(struct pl_cache_ticket *t)
{
	char lock[PL_SHA256_HEX_LEN + 8];

	snprintf(lock, sizeof(lock), "%s.lock", t->name);
	t->name_lock = openat(t->c.fd, lock, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (t->name_lock < 0 || flock(t->name_lock, LOCK_EX) < 0)
		return -1;
	/* Another job of the user may have staged it while this one waited for the lock. */
	if (pl_cache_lock(&t->c) < 0)
		return -1;
	t->hit = try_hit(t);
	if (!t->hit && ((mkdirat(t->c.fd, t->name, 0700) < 0 && errno != EEXIST) ||
			pl_cache_mark(&t->c, t->name, t->job_id) < 0 || make_view(t) < 0)) {
		pl_cache_unlock(&t->c);
		return -1;
	}
	pl_cache_unlock(&t->c);
	return 0;
}

int pl_cache_begin(const struct pl_config *cfg, int basefd, uint32_t job_id,
		   const struct pl_user *user, const struct pl_bundle_list *list,
		   struct pl_cache_ticket *t, char *why, size_t whylen)
{
	bool fits;

	memset(t, 0, sizeof(*t));
	t->name_lock = -1;
	t->job_id = job_id;
	t->user = *user;
	if (identify(cfg, user, list, t, why, whylen) < 0)
		return -1;
	if (pl_cache_open(basefd, &t->c, why, whylen) < 0)
		return -1;
	pl_cache_view_path(cfg->stage_dir, t->name, t->root, sizeof(t->root));
	if (pl_cache_purging(&t->c, t->name)) {
		snprintf(why, whylen,
			 "not cached: the site purged the cached tree %s, which a running job "
			 "still uses",
			 t->name);
		pl_cache_done(t);
		return -1;
	}
	if (pl_cache_lock(&t->c) == 0) {
		t->hit = try_hit(t);
		if (!t->hit)
			pl_cache_make_room(&t->c, cfg->cache_max_size, cfg->cache_max_entries, 0, 1,
					   &fits);
		pl_cache_unlock(&t->c);
	}
	if (t->hit || reserve(t) == 0)
		return 0;
	snprintf(why, whylen, "not cached: %s: %s", t->name, strerror(errno));
	pl_cache_done(t);
	return -1;
}

void pl_cache_done(struct pl_cache_ticket *t)
{
	if (t->name_lock >= 0)
		close(t->name_lock);
	t->name_lock = -1;
	pl_cache_close(&t->c);
}

/* ------------------------------------------------------------ adoption */

/* Mounts entry/tree read-only, nosuid, nodev on the directory targetfd. */
static int bind_read_only(int entryfd, int targetfd)
{
	struct mount_attr attr = {.attr_set =
				      MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV};
	int tfd =
	    open_tree(entryfd, TREE, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_SYMLINK_NOFOLLOW);
	int rc = -1;

	if (tfd < 0)
		return -1;
	if (mount_setattr(tfd, "", AT_EMPTY_PATH, &attr, sizeof(attr)) == 0)
		rc = move_mount(tfd, "", targetfd, "",
				MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
	close(tfd);
	return rc;
}

/* A new t where the tree was, the user's, and the tree mounted on it. */
static int mount_view(struct pl_cache_ticket *t, int vfd, int entryfd)
{
	struct stat st;
	int target;
	int rc = -1;

	if (mkdirat(vfd, VIEW_MOUNT, 0700) < 0 ||
	    fchownat(vfd, VIEW_MOUNT, t->user.uid, t->user.gid, AT_SYMLINK_NOFOLLOW) < 0)
		return -1;
	target = openat(vfd, VIEW_MOUNT, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (target < 0)
		return -1;
	if (fstat(target, &st) == 0 && st.st_uid == t->user.uid)
		rc = bind_read_only(entryfd, target);
	close(target);
	return rc;
}

/* Moves the staged tree under the entry (out of the user's reach) and mounts it back. */
static int adopt(struct pl_cache_ticket *t, int entryfd)
{
	struct stat st;
	int vfd = open_dir(t->c.viewfd, t->name, O_RDONLY);
	int rc = -1;

	if (vfd < 0)
		return -1;
	if (renameat(vfd, VIEW_MOUNT, entryfd, TREE) == 0) {
		if (fstatat(entryfd, TREE, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode) &&
		    st.st_uid == t->user.uid && mount_view(t, vfd, entryfd) == 0)
			rc = 0;
		else {
			int e = errno;

			/* Back where the job expects it, writable as without the cache. */
			unlinkat(vfd, VIEW_MOUNT, AT_REMOVEDIR);
			renameat(entryfd, TREE, vfd, VIEW_MOUNT);
			errno = e;
		}
	}
	close(vfd);
	return rc;
}

static void took(const char *summary, uint64_t *bytes, uint64_t *entries)
{
	const char *tag = strstr(summary, "; took ");

	*bytes = *entries = 0;
	if (tag)
		sscanf(tag, "; took %" SCNu64 " bytes, %" SCNu64 " entries", bytes, entries);
}

void pl_cache_end(const struct pl_config *cfg, struct pl_cache_ticket *t, bool ok,
		  const char *summary)
{
	uint64_t bytes, entries;
	char err[256] = "";
	bool fits;
	int entryfd;

	(void)cfg;
	pl_cache_lock(&t->c);
	entryfd = ok ? open_dir(t->c.fd, t->name, O_RDONLY) : -1;
	took(summary, &bytes, &entries);
	if (entryfd >= 0 && adopt(t, entryfd) == 0 &&
	    pl_cache_meta_write(&t->c, t->name, t->user.uid, bytes, entries, summary) == 0) {
		pl_cache_make_room(&t->c, cfg->cache_max_size, cfg->cache_max_entries, 0, 0, &fits);
	} else if (ok) {
		pl_error_errno(errno,
			       "job %u: cannot keep the tree %s in the node cache (it is "
			       "removed at the job's end)",
			       t->job_id, t->root);
	} else {
		/* Markers included: no other job holds an entry that was never complete. */
		pl_cache_remove(&t->c, t->name, err, sizeof(err));
	}
	if (entryfd >= 0)
		close(entryfd);
	pl_cache_done(t);
}

/* ------------------------------------------------------------ the epilog */

/* Entries without meta (a failed adoption, a killed prolog) that no job holds any more. */
static void remove_incomplete(struct pl_cache *c)
{
	struct dirent *de;
	struct stat st;
	char meta[PL_SHA256_HEX_LEN + 8];
	char err[256];
	int fd = dup(c->fd);
	DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;

	if (!dir) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(dir))) {
		int efd, lfd;
		bool busy;

		if (strlen(de->d_name) != PL_SHA256_HEX_LEN || strchr(de->d_name, '.'))
			continue;
		snprintf(meta, sizeof(meta), "%s/" META, de->d_name);
		if (fstatat(c->fd, meta, &st, AT_SYMLINK_NOFOLLOW) == 0)
			continue;
		efd = open_dir(c->fd, de->d_name, O_RDONLY);
		if (efd < 0)
			continue;
		/* A name lock held: a staging is under way. */
		snprintf(meta, sizeof(meta), "%s.lock", de->d_name);
		lfd = openat(c->fd, meta, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
		busy = lfd >= 0 && flock(lfd, LOCK_EX | LOCK_NB) < 0;

		if (!busy && !pl_cache_entry_in_use(c, efd))
			pl_cache_remove(c, de->d_name, err, sizeof(err));
		if (lfd >= 0)
			close(lfd);
		close(efd);
	}
	closedir(dir);
}

/* The cache turned off and emptied: the stage directory looks as it did without it. */
static void remove_cache_dirs(int basefd)
{
	char err[256];

	pl_purge_at(basefd, PL_CACHE_VIEW, false, 0, NULL, err, sizeof(err));
	pl_purge_at(basefd, PL_CACHE_DIR, false, 0, NULL, err, sizeof(err));
}

void pl_cache_job_end(const struct pl_config *cfg, int basefd, uint32_t job_id)
{
	struct pl_cache_list l;
	struct pl_cache c;
	char err[256];
	uint64_t bytes = 0;
	size_t n = 0, evicted = 0;
	struct stat st;
	bool fits, locked;

	/* Off and never on since the last reboot: nothing to do, nothing made. */
	if (!cfg->cache_enabled && fstatat(basefd, PL_CACHE_DIR, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return;
	if (pl_cache_open(basefd, &c, err, sizeof(err)) < 0) {
		pl_error("epilog job %u: node cache: %s", job_id, err);
		return;
	}
	locked = pl_cache_lock(&c) == 0;
	if (locked) {
		pl_cache_release(&c, job_id);
		evicted = pl_cache_purge_released(&c);
		remove_incomplete(&c);
		if (cfg->cache_enabled)
			evicted += pl_cache_make_room(&c, cfg->cache_max_size,
						      cfg->cache_max_entries, 0, 0, &fits);
		else
			evicted += pl_cache_purge_unused(&c);
		if (pl_cache_scan(&c, &l) == 0) {
			pl_cache_totals(&l, &bytes, &n);
			pl_cache_list_free(&l);
		}
	}
	pl_cache_close(&c);
	if (!cfg->cache_enabled && locked && n == 0)
		remove_cache_dirs(basefd);
	if (n || evicted)
		pl_info("epilog job %u: cache holds %zu trees, %.1f MiB (%zu evicted)", job_id, n,
			(double)bytes / (1024.0 * 1024.0), evicted);
}
