/* The node cache (cache.h): opening it (its root-owned directory, its lock, a reboot noticed),
 * the names of its entries, and the identity of a bundle list (on the user's side). The index
 * and removal are cache_index.c. */
#include "cache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache_internal.h"
#include "small_file.h"

/* ------------------------------------------------------------ opening */

/* A root-owned directory of the given mode under dirfd, made if missing. */
static int open_root_dir(int dirfd, const char *name, mode_t mode)
{
	struct stat st;
	int fd;

	if (mkdirat(dirfd, name, mode) < 0 && errno != EEXIST)
		return -1;
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || st.st_uid != geteuid() || fchmod(fd, mode) < 0) {
		if (errno == 0)
			errno = EPERM;
		close(fd);
		return -1;
	}
	return fd;
}

static void read_boot_id(char *buf, size_t len)
{
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");

	buf[0] = '\0';
	if (f) {
		if (!fgets(buf, (int)len, f))
			buf[0] = '\0';
		fclose(f);
	}
	buf[strcspn(buf, "\n")] = '\0';
}

/* /dev/shm is empty after a reboot; a stage.dir on a disk is not, and its mounts are gone. */
static void check_boot(struct pl_cache *c)
{
	char now[64], was[64];

	read_boot_id(now, sizeof(now));
	if (!now[0] ||
	    (pl_read_small(c->fd, BOOT_ID_FILE, was, sizeof(was)) == 0 && strcmp(now, was) == 0))
		return;
	pl_cache_purge_after_reboot(c);
	pl_write_small(c->fd, BOOT_ID_FILE, now);
}

int pl_cache_open(int basefd, struct pl_cache *c, char *err, size_t errlen)
{
	c->basefd = basefd;
	c->lockfd = -1;
	c->viewfd = -1;
	c->fd = open_root_dir(basefd, PL_CACHE_DIR, 0700);
	if (c->fd >= 0)
		c->viewfd = open_root_dir(basefd, PL_CACHE_VIEW, 0755);
	if (c->fd < 0 || c->viewfd < 0) {
		snprintf(err, errlen, "%s: %s", c->fd < 0 ? PL_CACHE_DIR : PL_CACHE_VIEW,
			 strerror(errno));
		pl_cache_close(c);
		return -1;
	}
	if (pl_cache_lock(c) == 0) {
		check_boot(c);
		pl_cache_unlock(c);
	}
	return 0;
}

void pl_cache_close(struct pl_cache *c)
{
	pl_cache_unlock(c);
	if (c->fd >= 0)
		close(c->fd);
	if (c->viewfd >= 0)
		close(c->viewfd);
	c->fd = c->viewfd = -1;
}

int pl_cache_lock(struct pl_cache *c)
{
	if (c->lockfd >= 0)
		return 0;
	c->lockfd = openat(c->fd, LOCK_FILE, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (c->lockfd < 0)
		return -1;
	if (flock(c->lockfd, LOCK_EX) < 0) {
		close(c->lockfd);
		c->lockfd = -1;
		return -1;
	}
	return 0;
}

void pl_cache_unlock(struct pl_cache *c)
{
	if (c->lockfd >= 0)
		close(c->lockfd);
	c->lockfd = -1;
}

void pl_cache_view_path(const char *stage_dir, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s/%s/%s", stage_dir, PL_CACHE_VIEW, name, VIEW_MOUNT);
}

void pl_cache_name(uid_t uid, const char *identity, char name[PL_SHA256_HEX_LEN + 1])
{
	uint8_t d[PL_SHA256_LEN];
	struct pl_sha256 ctx = {0};
	char head[32];

	snprintf(head, sizeof(head), "uid=%u\n", (unsigned)uid);
	pl_sha256_init(&ctx);
	pl_sha256_update(&ctx, head, strlen(head));
	pl_sha256_update(&ctx, identity, strlen(identity));
	pl_sha256_final(&ctx, d);
	pl_sha256_hex(d, name);
}

/* ------------------------------------------------------------ identity (the user's side) */

static void put_u64(struct pl_sha256 *ctx, uint64_t v)
{
	uint8_t b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	pl_sha256_update(ctx, b, sizeof(b));
}

static void put_stat(struct pl_sha256 *ctx, const char *path, const struct stat *st)
{
	pl_sha256_update(ctx, path, strlen(path) + 1);
	put_u64(ctx, (uint64_t)st->st_dev);
	put_u64(ctx, (uint64_t)st->st_ino);
	put_u64(ctx, (uint64_t)st->st_size);
	put_u64(ctx, (uint64_t)st->st_mtim.tv_sec);
	put_u64(ctx, (uint64_t)st->st_mtim.tv_nsec);
	put_u64(ctx, (uint64_t)st->st_ctim.tv_sec);
	put_u64(ctx, (uint64_t)st->st_ctim.tv_nsec);
}

/* The digest of one file's content, added to ctx. */
static int put_content(struct pl_sha256 *ctx, const char *path, uint64_t *bytes_read)
{
	struct pl_sha256 file = {0};
	uint8_t d[PL_SHA256_LEN];
	static char buf[1 << 16];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	pl_sha256_init(&file);
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		pl_sha256_update(&file, buf, (size_t)n);
		*bytes_read += (uint64_t)n;
	}
	close(fd);
	if (n < 0 || pl_sha256_final(&file, d) < 0) {
		pl_sha256_free(&file);
		if (n >= 0)
			errno = ENOMEM;
		return -1;
	}
	pl_sha256_update(ctx, d, sizeof(d));
	return 0;
}

int pl_cache_identity(const struct pl_bundle_list *list, bool digest, char *out, size_t outlen,
		      uint64_t *bytes_read, char *err, size_t errlen)
{
	struct pl_sha256 ctx = {0};
	uint8_t d[PL_SHA256_LEN];
	char hex[PL_SHA256_HEX_LEN + 1];
	struct stat st;
	const char *tag = digest ? "pylaunch-cache-1 digest" : "pylaunch-cache-1 stat";

	*bytes_read = 0;
	pl_sha256_init(&ctx);
	/* The trailing NUL goes in too, so one tag can never be a prefix of the other. */
	pl_sha256_update(&ctx, tag, strlen(tag) + 1);
	for (size_t i = 0; i < list->n; i++) {
		const char *p = list->paths[i];

		if (stat(p, &st) < 0 || (digest && put_content(&ctx, p, bytes_read) < 0)) {
			snprintf(err, errlen, "%s: %s", p, strerror(errno));
			pl_sha256_free(&ctx);
			return -1;
		}
		if (!S_ISREG(st.st_mode)) {
			snprintf(err, errlen,
				 "%s: not a regular file (a directory is never cached)", p);
			pl_sha256_free(&ctx);
			return -1;
		}
		if (!digest)
			put_stat(&ctx, p, &st);
	}
	if (pl_sha256_final(&ctx, d) < 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	pl_sha256_hex(d, hex);
	snprintf(out, outlen, "%s", hex);
	return 0;
}
