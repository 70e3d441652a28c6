/* The node cache's index: each entry's meta file and the markers of the jobs that use it, the
 * scan that lists them, and removal (one entry, room for a new one, a user's, the unused). */
#include "cache_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache.h"
#include "purge.h"
#include "small_file.h"

/* ------------------------------------------------------------ the index */

static bool is_name(const char *s)
{
	size_t n = strspn(s, "0123456789abcdef");

	return n == PL_SHA256_HEX_LEN && s[n] == '\0';
}

int pl_cache_meta_read(struct pl_cache *c, const char *name, uid_t *uid, uint64_t *bytes,
		       uint64_t *entries, char *summary, size_t len)
{
	char path[PL_SHA256_HEX_LEN + 16];
	char text[2048];
	unsigned u;
	int consumed = 0;

	snprintf(path, sizeof(path), "%s/%s", name, META_FILE);
	if (pl_read_small(c->fd, path, text, sizeof(text)) < 0)
		return -1;
	if (sscanf(text, "%u %" SCNu64 " %" SCNu64 "\n%n", &u, bytes, entries, &consumed) != 3 ||
	    !consumed) {
		errno = EINVAL;
		return -1;
	}
	*uid = (uid_t)u;
	if (summary)
		snprintf(summary, len, "%.*s", (int)strcspn(text + consumed, "\n"),
			 text + consumed);
	return 0;
}

int pl_cache_meta_write(struct pl_cache *c, const char *name, uid_t uid, uint64_t bytes,
			uint64_t entries, const char *summary)
{
	char text[2048];
	int dfd = openat(c->fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int rc;

	if (dfd < 0)
		return -1;
	snprintf(text, sizeof(text), "%u %" PRIu64 " %" PRIu64 "\n%s\n", (unsigned)uid, bytes,
		 entries, summary);
	rc = pl_write_small(dfd, META_FILE, text);
	close(dfd);
	return rc;
}

int pl_cache_mark(struct pl_cache *c, const char *name, uint32_t job_id)
{
	char marker[32];
	int dfd = openat(c->fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int fd;

	if (dfd < 0)
		return -1;
	snprintf(marker, sizeof(marker), MARKER_PREFIX "%u", job_id);
	fd = openat(dfd, marker, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
	close(dfd);
	/* The entry's mtime is its last use (the marker changed it; said again for clarity). */
	utimensat(c->fd, name, NULL, AT_SYMLINK_NOFOLLOW);
	return fd < 0 ? -1 : 0;
}

/* A marker is live while its job's stage directory exists: the epilog's purge and the sweep
 * remove that directory, so a marker left by a job whose epilog never dropped it goes stale. */
static bool marker_live(struct pl_cache *c, const char *marker)
{
	char *end;
	unsigned long id = strtoul(marker + strlen(MARKER_PREFIX), &end, 10);
	char job[16];
	struct stat st;

	if (*end || !id || id > UINT32_MAX)
		return false;
	snprintf(job, sizeof(job), "%lu", id);
	return fstatat(c->basefd, job, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

/* Counts the live markers of one entry, dropping stale ones (and job_id's, if not 0). */
static unsigned count_markers(struct pl_cache *c, int dfd, uint32_t drop_job, size_t *dropped)
{
	char drop[32];
	struct dirent *de;
	unsigned live = 0;
	int fd = dup(dfd);
	DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;

	if (!dir) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	snprintf(drop, sizeof(drop), MARKER_PREFIX "%u", drop_job);
	while ((de = readdir(dir))) {
		if (strncmp(de->d_name, MARKER_PREFIX, strlen(MARKER_PREFIX)) != 0)
			continue;
		if ((drop_job && strcmp(de->d_name, drop) == 0) || !marker_live(c, de->d_name)) {
			if (unlinkat(dfd, de->d_name, 0) == 0 && dropped)
				(*dropped)++;
		} else {
			live++;
		}
	}
	closedir(dir);
	return live;
}

bool pl_cache_entry_in_use(struct pl_cache *c, int entryfd)
{
	return count_markers(c, entryfd, 0, NULL) > 0;
}

static int older_first(const void *a, const void *b)
{
	const struct pl_cache_entry *x = a, *y = b;

	if (x->used.tv_sec != y->used.tv_sec)
		return x->used.tv_sec < y->used.tv_sec ? -1 : 1;
	if (x->used.tv_nsec != y->used.tv_nsec)
		return x->used.tv_nsec < y->used.tv_nsec ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* Reads one entry; drop_job: markers of that job are dropped first (0: none). */
static int read_entry(struct pl_cache *c, const char *name, uint32_t drop_job, size_t *dropped,
		      struct pl_cache_entry *e)
{
	struct stat st;
	int dfd = openat(c->fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (dfd < 0)
		return -1;
	memset(e, 0, sizeof(*e));
	snprintf(e->name, sizeof(e->name), "%.*s", PL_SHA256_HEX_LEN, name);
	e->in_use = count_markers(c, dfd, drop_job, dropped);
	e->purging = fstatat(dfd, PURGE_FILE, &st, AT_SYMLINK_NOFOLLOW) == 0;
	close(dfd);
	if (fstatat(c->fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -1;
	e->used = st.st_mtim;
	/* An entry without meta is being staged or was left half-made: not listed. */
	return pl_cache_meta_read(c, name, &e->uid, &e->bytes, &e->entries, NULL, 0);
}

static int scan(struct pl_cache *c, uint32_t drop_job, size_t *dropped, struct pl_cache_list *l)
{
	struct dirent *de;
	size_t cap = 0;
	int fd = dup(c->fd);
	DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;

	memset(l, 0, sizeof(*l));
	if (!dir) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	rewinddir(dir);
	while ((de = readdir(dir))) {
		if (!is_name(de->d_name))
			continue;
		if (l->n == cap) {
			struct pl_cache_entry *ne =
			    realloc(l->e, (cap ? cap * 2 : 16) * sizeof(*ne));

			if (!ne)
				break;
			l->e = ne;
			cap = cap ? cap * 2 : 16;
		}
		if (read_entry(c, de->d_name, drop_job, dropped, &l->e[l->n]) == 0)
			l->n++;
	}
	closedir(dir);
	if (l->n)
		qsort(l->e, l->n, sizeof(*l->e), older_first);
	return 0;
}

int pl_cache_scan(struct pl_cache *c, struct pl_cache_list *l)
{
	return scan(c, 0, NULL, l);
}

void pl_cache_list_free(struct pl_cache_list *l)
{
	free(l->e);
	memset(l, 0, sizeof(*l));
}

void pl_cache_totals(const struct pl_cache_list *l, uint64_t *bytes, size_t *n)
{
	*bytes = 0;
	*n = l->n;
	for (size_t i = 0; i < l->n; i++)
		*bytes += l->e[i].bytes;
}

size_t pl_cache_release(struct pl_cache *c, uint32_t job_id)
{
	struct pl_cache_list l;
	size_t dropped = 0;

	if (scan(c, job_id, &dropped, &l) == 0)
		pl_cache_list_free(&l);
	return dropped;
}

/* ------------------------------------------------------------ removal */

/* The view's mount, then the view directory (the user's: it holds nothing of another's). Root
 * removes it without following links (purge.h); the mount is detached first, so the purge never
 * meets the cached tree through it. */
static void remove_view(struct pl_cache *c, const char *name)
{
	char path[PL_SHA256_HEX_LEN + 8];
	char err[256];
	int vfd;

	vfd = openat(c->viewfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (vfd >= 0) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d/" VIEW_MOUNT, vfd);
		while (umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW) == 0)
			;
		close(vfd);
	}
	pl_purge_at(c->viewfd, name, false, 0, NULL, err, sizeof(err));
}

int pl_cache_remove(struct pl_cache *c, const char *name, char *err, size_t errlen)
{
	char lock[PL_SHA256_HEX_LEN + 8];

	remove_view(c, name);
	snprintf(lock, sizeof(lock), "%s.lock", name);
	unlinkat(c->fd, lock, 0);
	return pl_purge_at(c->fd, name, false, 0, NULL, err, errlen);
}

size_t pl_cache_make_room(struct pl_cache *c, uint64_t max_bytes, uint64_t max_entries,
			  uint64_t need_bytes, uint64_t need_entries, bool *fits)
{
	struct pl_cache_list l;
	uint64_t bytes;
	size_t n, evicted = 0;
	char err[256];

	*fits = false;
	if (scan(c, 0, NULL, &l) < 0)
		return 0;
	pl_cache_totals(&l, &bytes, &n);
	for (size_t i = 0; i < l.n; i++) {
		if (bytes + need_bytes <= max_bytes && n + need_entries <= max_entries)
			break;
		if (l.e[i].in_use || pl_cache_remove(c, l.e[i].name, err, sizeof(err)) < 0)
			continue;
		bytes -= l.e[i].bytes;
		n--;
		evicted++;
	}
	*fits = bytes + need_bytes <= max_bytes && n + need_entries <= max_entries;
	pl_cache_list_free(&l);
	return evicted;
}

bool pl_cache_purging(struct pl_cache *c, const char *name)
{
	char path[PL_SHA256_HEX_LEN + 16];
	struct stat st;

	snprintf(path, sizeof(path), "%s/" PURGE_FILE, name);
	return fstatat(c->fd, path, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* A running job's tasks import from the tree through its view: removing it under them would
 * fail their next import, so an entry in use is only flagged. */
static int flag_purging(struct pl_cache *c, const char *name)
{
	char path[PL_SHA256_HEX_LEN + 16];
	int fd;

	snprintf(path, sizeof(path), "%s/" PURGE_FILE, name);
	fd = openat(c->fd, path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

enum purge_which { PURGE_OF_USER, PURGE_UNUSED, PURGE_RELEASED, PURGE_EVERY };

/* Removes the unused entries that match (of uid, any with (uid_t)-1); flags the used ones of
 * PURGE_OF_USER and counts them in *kept. */
static size_t purge_matching(struct pl_cache *c, enum purge_which which, uid_t uid, size_t *kept)
{
	struct pl_cache_list l;
	size_t removed = 0;
	char err[256];

	if (scan(c, 0, NULL, &l) < 0)
		return 0;
	for (size_t i = 0; i < l.n; i++) {
		const struct pl_cache_entry *e = &l.e[i];

		if ((uid != (uid_t)-1 && e->uid != uid) || (which == PURGE_RELEASED && !e->purging))
			continue;
		if (e->in_use && which != PURGE_EVERY) {
			if (which == PURGE_OF_USER && flag_purging(c, e->name) == 0)
				(*kept)++;
			continue;
		}
		if (pl_cache_remove(c, e->name, err, sizeof(err)) == 0)
			removed++;
	}
	pl_cache_list_free(&l);
	return removed;
}

size_t pl_cache_purge(struct pl_cache *c, uid_t uid, size_t *kept)
{
	*kept = 0;
	return purge_matching(c, PURGE_OF_USER, uid, kept);
}

size_t pl_cache_purge_released(struct pl_cache *c)
{
	return purge_matching(c, PURGE_RELEASED, (uid_t)-1, NULL);
}

size_t pl_cache_purge_after_reboot(struct pl_cache *c)
{
	return purge_matching(c, PURGE_EVERY, (uid_t)-1, NULL);
}

size_t pl_cache_purge_unused(struct pl_cache *c)
{
	return purge_matching(c, PURGE_UNUSED, (uid_t)-1, NULL);
}
