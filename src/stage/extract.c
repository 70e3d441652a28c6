#include "extract.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* A bundle is read once, sequentially, often from a shared file system: few large reads. */
#define READ_BLOCK (1024 * 1024)
/* srun's check reads only the first header: a small block keeps its share of a job's reads of
 * the shared file system to a few kilobytes, not a megabyte on top of the bundle. */
#define PROBE_BLOCK (16 * 1024)
/* Messages end up in a 512-byte line with a prefix and up to two names. */
#define SHOWN_NAME_MAX 120
#define QUOTED_MAX (SHOWN_NAME_MAX + 8)
#define SUBJECT_MAX (QUOTED_MAX + 32)
#define FORMATS_ACCEPTED "tar, tar.gz/.zst/.xz/.bz2/.lz4, zip"
#define SETID_BITS (S_ISUID | S_ISGID)
#define KEPT_BITS (S_ISVTX | 0777)
#define FIRST_PENDING_CAP 256

/* libarchive's errno for an unrecognised format (ARCHIVE_ERRNO_FILE_FORMAT, not in its header). */
#ifdef EFTYPE
#define FORMAT_ERRNO EFTYPE
#else
#define FORMAT_ERRNO EILSEQ
#endif

#define PRINTF_LIKE(a, b) __attribute__((format(printf, a, b)))

struct quoted {
	char s[QUOTED_MAX];
};

/* One extraction call: where it writes, what it counts, where the message goes. */
struct extractor {
	int dirfd;
	uint64_t max_bytes;
	uint64_t max_entries;
	struct pl_extract_stats *stats;
	char *err;
	size_t errlen;
	bool from_disk;	   /* entries come from archive_read_disk ... */
	char *disk_root;   /* ... which names them all after its root */
	const char *entry; /* the current entry's name, for messages */
	char *path;	   /* its normalised form: components joined by single slashes */
	size_t path_size;
	char *parent; /* the last parent directory opened, kept: entries come grouped */
	size_t parent_size;
	size_t parent_len;
	int parent_fd;
	size_t walk_stop; /* after a failed walk: length of the prefix that is in the way */
};

/* A directory's own mode and mtime, applied by pl_extract_finish(). */
struct pending_dir {
	char *path;
	mode_t mode;
	bool has_mtime;
	struct timespec mtime;
	size_t seq;
};

/* The API has no handle, and a staging is one process extracting layer after layer. */
static struct {
	struct pending_dir *v;
	size_t n;
	size_t cap;
} pending;

/* ------------------------------------------------------------ messages */

/* Names come from the user's archive and end up in logs: escape what is not printable ASCII, and
 * cut a name that would drown the message. */
static const char *quote_n(struct quoted *q, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t out = 0;
	size_t i;

	for (i = 0; i < len && out + 4 <= SHOWN_NAME_MAX; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x20 && c < 0x7f && c != '\\') {
			q->s[out++] = (char)c;
			continue;
		}
		q->s[out++] = '\\';
		q->s[out++] = 'x';
		q->s[out++] = hex[c >> 4];
		q->s[out++] = hex[c & 15];
	}
	if (i < len) {
		memcpy(q->s + out, "...", 3);
		out += 3;
	}
	q->s[out] = '\0';
	return q->s;
}

static const char *quote(struct quoted *q, const char *s)
{
	return quote_n(q, s ? s : "", s ? strlen(s) : 0);
}

static void PRINTF_LIKE(3, 0) vappend(char *buf, size_t len, const char *fmt, va_list ap)
{
	size_t used = strnlen(buf, len);

	if (used + 1 < len)
		vsnprintf(buf + used, len - used, fmt, ap);
}

static int PRINTF_LIKE(2, 3) fail(struct extractor *x, const char *fmt, ...)
{
	va_list ap;

	if (x->errlen == 0)
		return -1;
	x->err[0] = '\0';
	va_start(ap, fmt);
	vappend(x->err, x->errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static int PRINTF_LIKE(2, 3) fail_entry(struct extractor *x, const char *fmt, ...)
{
	struct quoted q;
	va_list ap;

	if (x->errlen == 0)
		return -1;
	snprintf(x->err, x->errlen, "entry '%s': ", quote(&q, x->entry));
	va_start(ap, fmt);
	vappend(x->err, x->errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static int fail_entry_errno(struct extractor *x, const char *op)
{
	return fail_entry(x, "%s: %s", op, strerror(errno));
}

static const char *archive_why(struct quoted *q, struct archive *a)
{
	const char *why = archive_error_string(a);

	return quote(q, why ? why : "unknown error");
}

/* "16.0 GiB", in the binary units the configuration is written in; integer arithmetic, as
 * printf("%f") would follow the locale's decimal point. */
static void format_size(uint64_t bytes, char *buf, size_t len)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
	unsigned u = 0;
	unsigned shift;
	uint64_t whole;
	uint64_t tenths;

	while (u + 1 < sizeof(units) / sizeof(units[0]) && (bytes >> (10 * (u + 1))) != 0)
		u++;
	if (u == 0) {
		snprintf(buf, len, "%" PRIu64 " B", bytes);
		return;
	}
	shift = 10 * u;
	whole = bytes >> shift;
	tenths =
	    (((bytes & ((UINT64_C(1) << shift) - 1)) * 10) + (UINT64_C(1) << (shift - 1))) >> shift;
	if (tenths == 10) {
		whole++;
		tenths = 0;
	}
	snprintf(buf, len, "%" PRIu64 ".%" PRIu64 " %s", whole, tenths, units[u]);
}

static int fail_cap(struct extractor *x)
{
	char size[48];

	format_size(x->max_bytes, size, sizeof(size));
	return fail(x, "extracted size exceeds stage.max_size (%s)", size);
}

uint64_t pl_extract_entries(const struct pl_extract_stats *s)
{
	return s->files + s->dirs + s->symlinks + s->hardlinks + s->implied_dirs;
}

/* A bundle of a million empty files costs no bytes but a million of the node's inodes, which
 * every job on the node shares. */
static int over_entries(struct extractor *x)
{
	if (!x->max_entries || pl_extract_entries(x->stats) < x->max_entries)
		return 0;
	return fail(x,
		    "more than %" PRIu64 " entries (files, directories and links; "
		    "stage.max_entries) for this job on this node",
		    x->max_entries);
}

/* Implied parents may take an entry past the cap. */
static int over_entries_after(struct extractor *x)
{
	return x->max_entries && pl_extract_entries(x->stats) > x->max_entries ? over_entries(x)
									       : 0;
}

/* archive_read_disk's messages often leave out the reason ("Can't open `x'"). */
static int fail_disk(struct extractor *x, struct archive *a)
{
	struct quoted why;
	int errnum = archive_errno(a);

	archive_why(&why, a);
	if (errnum > 0 && errnum != FORMAT_ERRNO)
		return fail(x, "cannot read the directory: %s: %s", why.s, strerror(errnum));
	return fail(x, "cannot read the directory: %s", why.s);
}

/* Why archive_read_next_header() failed, in the user's terms. */
static int fail_header(struct extractor *x, struct archive *a)
{
	struct quoted why;
	struct quoted last;

	if (x->from_disk)
		return fail_disk(x, a);
	archive_why(&why, a);
	if (archive_format(a) == 0)
		return fail(x, "not an archive libarchive can read (" FORMATS_ACCEPTED "): %s",
			    why.s);
	if (x->path == NULL)
		return fail(x, "damaged archive: %s", why.s);
	return fail(x, "damaged archive after entry '%s': %s",
		    quote(&last, x->path[0] ? x->path : "."), why.s);
}

/* ------------------------------------------------------------ names */

enum path_kind { PATH_INSIDE, PATH_TOP, PATH_EMPTY, PATH_ABSOLUTE, PATH_DOTDOT };

/* out (strlen(in) + 1 bytes) receives the components of in joined by single slashes, without the
 * "." components that `tar -C dir -c .` writes. */
static enum path_kind normalize(const char *in, char *out)
{
	size_t n = 0;

	if (in[0] == '\0')
		return PATH_EMPTY;
	if (in[0] == '/')
		return PATH_ABSOLUTE;
	while (*in) {
		size_t len = strcspn(in, "/");

		if (len == 2 && in[0] == '.' && in[1] == '.')
			return PATH_DOTDOT;
		if (len > 0 && !(len == 1 && in[0] == '.')) {
			if (n > 0)
				out[n++] = '/';
			memcpy(out + n, in, len);
			n += len;
		}
		in += len;
		in += strspn(in, "/");
	}
	out[n] = '\0';
	return n > 0 ? PATH_INSIDE : PATH_TOP;
}

static int reserve(char **buf, size_t *size, size_t need)
{
	char *bigger;

	if (*size >= need)
		return 0;
	bigger = realloc(*buf, need);
	if (!bigger)
		return -1;
	*buf = bigger;
	*size = need;
	return 0;
}

/* archive_read_disk names every entry after the path it was opened with: the first entry is
 * that root, every other one starts with its name. */
static const char *relative_to_root(struct extractor *x, const char *name)
{
	size_t len;

	if (!x->disk_root) {
		x->disk_root = strdup(name);
		return x->disk_root ? "." : NULL;
	}
	len = strlen(x->disk_root);
	if (strncmp(name, x->disk_root, len) != 0)
		return NULL;
	name += len;
	name += strspn(name, "/");
	return name[0] ? name : ".";
}

static int take_entry_path(struct extractor *x, struct archive_entry *e, enum path_kind *kind)
{
	struct quoted q;
	const char *name = archive_entry_pathname(e);

	if (!name)
		name = archive_entry_pathname_utf8(e);
	if (!name)
		return fail(x, "an entry has a name that cannot be read");
	if (x->from_disk) {
		const char *rel = relative_to_root(x, name);

		if (!rel)
			return fail(x, "cannot name '%s' relative to the directory",
				    quote(&q, name));
		name = rel;
	}
	x->entry = name;
	if (reserve(&x->path, &x->path_size, strlen(name) + 1) < 0)
		return fail_entry(x, "out of memory");
	*kind = normalize(name, x->path);
	switch (*kind) {
	case PATH_EMPTY:
		return fail_entry(x, "empty name");
	case PATH_ABSOLUTE:
		return fail_entry(x, "absolute paths are not allowed");
	case PATH_DOTDOT:
		return fail_entry(x, "path leaves the bundle");
	default:
		return 0;
	}
}

/* ------------------------------------------------------------ directories beneath dirfd */

/* The kernel resolves the whole path and guarantees it neither leaves dirfd nor follows a
 * symlink. Any failure (missing directory, symlink, a kernel without openat2) sends the caller to
 * the component walk, which finds out what exactly is wrong. */
static int open_beneath_fast(int dirfd, const char *rel, int flags)
{
	static bool unavailable;
	struct open_how how = {
	    .flags = (uint64_t)(flags | O_DIRECTORY | O_CLOEXEC),
	    .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	int fd;

	if (unavailable) {
		errno = ENOSYS;
		return -1;
	}
	fd = (int)syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
	if (fd < 0 && (errno == ENOSYS || errno == EPERM))
		unavailable = true; /* old kernel, or a seccomp filter that does not know it */
	return fd;
}

/* errno ELOOP when name is a symlink, ENOTDIR when it is something else that is no directory. */
static void classify_not_dir(int at, const char *name)
{
	struct stat st;

	if (fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
		errno = ELOOP;
	else
		errno = ENOTDIR;
}

/* Parents made for entries that lack them cost inodes too; one extraction at a time per
 * process (see extract.h), so a counter of the process serves. */
static uint64_t implied_dirs_made;

/* One component (no slash, never "." or ".."), never following it if it is a symlink. */
static int open_component(int at, const char *name, int flags, bool create)
{
	int open_flags = flags | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
	int fd = openat(at, name, open_flags);

	if (fd < 0 && errno == ENOENT && create) {
		if (mkdirat(at, name, 0700) == 0)
			implied_dirs_made++;
		else if (errno != EEXIST)
			return -1;
		fd = openat(at, name, open_flags);
	}
	if (fd < 0 && (errno == ENOTDIR || errno == ELOOP))
		classify_not_dir(at, name);
	return fd;
}

static void close_keeping_errno(int fd)
{
	int saved = errno;

	close(fd);
	errno = saved;
}

/* Opens rel one component at a time, creating missing directories (0700) if asked. On failure
 * errno says why and x->walk_stop how much of rel is at fault. */
static int walk_beneath(struct extractor *x, const char *rel, int flags, bool create)
{
	char name[NAME_MAX + 1];
	const char *p = rel;
	int at = x->dirfd;

	for (;;) {
		size_t len = strcspn(p, "/");
		bool last = p[len] == '\0';
		int fd = -1;

		if (len > NAME_MAX) {
			errno = ENAMETOOLONG;
		} else {
			memcpy(name, p, len);
			name[len] = '\0';
			fd = open_component(at, name, last ? flags : O_PATH, create);
		}
		if (at != x->dirfd)
			close_keeping_errno(at);
		if (fd < 0) {
			x->walk_stop = (size_t)(p - rel) + len;
			return -1;
		}
		if (last)
			return fd;
		at = fd;
		p += len + 1;
	}
}

static int open_dir_beneath(struct extractor *x, const char *rel, int flags, bool create)
{
	int fd = open_beneath_fast(x->dirfd, rel, flags);

	return fd >= 0 ? fd : walk_beneath(x, rel, flags, create);
}

/* subject: what was being resolved ("path", "hard link target 'x'"). */
static int fail_walk(struct extractor *x, const char *subject, const char *rel)
{
	int why = errno;
	struct quoted q;
	const char *at = quote_n(&q, rel, x->walk_stop);

	if (why == ELOOP)
		return fail_entry(x, "%s passes through the symlink '%s'", subject, at);
	if (why == ENOTDIR)
		return fail_entry(x, "%s passes through '%s', which is not a directory", subject,
				  at);
	return fail_entry(x, "%s: directory '%s': %s", subject, at, strerror(why));
}

static void forget_parent(struct extractor *x)
{
	if (x->parent_fd >= 0)
		close(x->parent_fd);
	x->parent_fd = -1;
}

static int remember_parent(struct extractor *x, size_t len, int fd)
{
	forget_parent(x);
	if (reserve(&x->parent, &x->parent_size, len + 1) < 0) {
		close(fd);
		return fail_entry(x, "out of memory");
	}
	memcpy(x->parent, x->path, len);
	x->parent[len] = '\0';
	x->parent_len = len;
	x->parent_fd = fd;
	return 0;
}

static bool parent_is_cached(const struct extractor *x, size_t len)
{
	return x->parent_fd >= 0 && x->parent_len == len && memcmp(x->parent, x->path, len) == 0;
}

/* The directory that holds the current entry, made if missing; *name is the entry's last
 * component. */
static int open_parent(struct extractor *x, int *pfd, const char **name)
{
	char *slash = strrchr(x->path, '/');
	size_t len;
	int fd;

	if (!slash) {
		*pfd = x->dirfd;
		*name = x->path;
		return 0;
	}
	*name = slash + 1;
	len = (size_t)(slash - x->path);
	if (!parent_is_cached(x, len)) {
		*slash = '\0';
		fd = open_dir_beneath(x, x->path, O_PATH, true);
		if (fd < 0)
			fail_walk(x, "path", x->path);
		*slash = '/';
		if (fd < 0 || remember_parent(x, len, fd) < 0)
			return -1;
	}
	*pfd = x->parent_fd;
	return 0;
}

/* ------------------------------------------------------------ entries */

/* Set-id bits never reach the stage; the others stay (0755 executables). */
static mode_t kept_mode(struct extractor *x, struct archive_entry *e)
{
	mode_t perm = archive_entry_perm(e);

	if (perm & SETID_BITS)
		x->stats->setid_stripped++;
	return perm & KEPT_BITS;
}

/* atime is left alone: only mtime matters (Python checks .pyc files against it). */
static void entry_times(struct archive_entry *e, struct timespec ts[2])
{
	ts[0].tv_sec = 0;
	ts[0].tv_nsec = UTIME_OMIT;
	ts[1].tv_sec = archive_entry_mtime(e);
	ts[1].tv_nsec = archive_entry_mtime_nsec(e);
}

static uint64_t budget_left(const struct extractor *x)
{
	return x->max_bytes > x->stats->bytes ? x->max_bytes - x->stats->bytes : 0;
}

/* A later layer's file or symlink replaces an earlier one: unlink it, never open it for writing
 * (it may be a symlink, or a hard link that another entry shares). */
static int unlink_existing(struct extractor *x, int pfd, const char *name, const char *what)
{
	if (unlinkat(pfd, name, 0) == 0)
		return 0;
	if (errno == EISDIR)
		return fail_entry(x, "a directory of that name exists, a %s cannot replace it",
				  what);
	return fail_entry_errno(x, "unlink");
}

static int create_file(struct extractor *x, int pfd, const char *name)
{
	const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
	int fd = openat(pfd, name, flags, 0600);

	if (fd < 0 && errno == EEXIST) {
		if (unlink_existing(x, pfd, name, "file") < 0)
			return -1;
		fd = openat(pfd, name, flags, 0600);
	}
	if (fd < 0)
		fail_entry_errno(x, "create");
	return fd;
}

static int write_at(int fd, const char *buf, size_t size, off_t offset)
{
	while (size > 0) {
		ssize_t n = pwrite(fd, buf, size, offset);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			return -1;
		}
		buf += n;
		size -= (size_t)n;
		offset += n;
	}
	return 0;
}

/* Blocks as libarchive hands them out, at their offsets (sparse entries skip the holes); the cap
 * counts what is actually written, whatever the header claimed. *end: where the data ended. */
static int copy_data(struct extractor *x, struct archive *a, int fd, uint64_t *end)
{
	struct quoted why;
	const void *buf;
	size_t size;
	la_int64_t offset;
	int rc;

	*end = 0;
	while ((rc = archive_read_data_block(a, &buf, &size, &offset)) == ARCHIVE_OK) {
		if (size > budget_left(x))
			return fail_cap(x);
		if (offset < 0)
			return fail_entry(x, "data at a negative offset");
		if (write_at(fd, buf, size, (off_t)offset) < 0)
			return fail_entry_errno(x, "write");
		x->stats->bytes += size;
		if ((uint64_t)offset + size > *end)
			*end = (uint64_t)offset + size;
	}
	if (rc != ARCHIVE_EOF)
		return fail_entry(x, "read: %s", archive_why(&why, a));
	return 0;
}

/* After the data: a sparse file may end in a hole, then mtime and mode (mode last: the file may
 * be read-only). */
static int complete_file(struct extractor *x, struct archive_entry *e, int fd, uint64_t end,
			 uint64_t declared, mode_t mode)
{
	struct timespec ts[2];

	if (end < declared && ftruncate(fd, (off_t)declared) < 0)
		return fail_entry_errno(x, "extend");
	entry_times(e, ts);
	if (archive_entry_mtime_is_set(e) && futimens(fd, ts) < 0)
		return fail_entry_errno(x, "set times");
	if (fchmod(fd, mode) < 0)
		return fail_entry_errno(x, "set mode");
	return 0;
}

static int extract_file(struct extractor *x, struct archive *a, struct archive_entry *e)
{
	uint64_t declared = archive_entry_size_is_set(e) && archive_entry_size(e) > 0
				? (uint64_t)archive_entry_size(e)
				: 0;
	mode_t mode = kept_mode(x, e);
	const char *name;
	uint64_t end;
	int pfd;
	int fd;
	int rc = -1;

	if (declared > budget_left(x))
		return fail_cap(x);
	if (open_parent(x, &pfd, &name) < 0)
		return -1;
	fd = create_file(x, pfd, name);
	if (fd < 0)
		return -1;
	if (copy_data(x, a, fd, &end) < 0 || complete_file(x, e, fd, end, declared, mode) < 0)
		goto out;
	x->stats->files++;
	rc = 0;
out:
	close(fd);
	return rc;
}

static int remember_dir(const char *path, mode_t mode, struct archive_entry *e)
{
	struct pending_dir *d;

	if (pending.n == pending.cap) {
		size_t cap = pending.cap ? pending.cap * 2 : FIRST_PENDING_CAP;
		struct pending_dir *v = realloc(pending.v, cap * sizeof(*v));

		if (!v)
			return -1;
		pending.v = v;
		pending.cap = cap;
	}
	d = &pending.v[pending.n];
	d->path = strdup(path);
	if (!d->path)
		return -1;
	d->mode = mode;
	d->has_mtime = archive_entry_mtime_is_set(e);
	d->mtime.tv_sec = archive_entry_mtime(e);
	d->mtime.tv_nsec = archive_entry_mtime_nsec(e);
	d->seq = pending.n++;
	return 0;
}

static void forget_dirs(void)
{
	for (size_t i = 0; i < pending.n; i++)
		free(pending.v[i].path);
	free(pending.v);
	memset(&pending, 0, sizeof(pending));
}

/* Made 0700 whatever the entry says, so that a read-only directory cannot block what later
 * entries and layers put into it; its own mode waits for pl_extract_finish(). */
static int extract_dir(struct extractor *x, struct archive_entry *e)
{
	mode_t mode = kept_mode(x, e);
	const char *name;
	struct stat st;
	int pfd;

	if (open_parent(x, &pfd, &name) < 0)
		return -1;
	if (mkdirat(pfd, name, 0700) < 0) {
		if (errno != EEXIST)
			return fail_entry_errno(x, "mkdir");
		if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return fail_entry_errno(x, "stat");
		if (!S_ISDIR(st.st_mode))
			return fail_entry(x,
					  "a %s of that name exists, a directory cannot replace it",
					  S_ISLNK(st.st_mode) ? "symlink" : "file");
	}
	if (remember_dir(x->path, mode, e) < 0)
		return fail_entry(x, "out of memory");
	x->stats->dirs++;
	return 0;
}

/* Created as it is, pointing anywhere (conda and Debian trees hold absolute links): it is never
 * followed, since every later path is resolved without following symlinks. */
static int extract_symlink(struct extractor *x, struct archive_entry *e)
{
	const char *target = archive_entry_symlink(e);
	struct timespec ts[2];
	const char *name;
	int pfd;

	if (!target)
		target = archive_entry_symlink_utf8(e);
	if (!target || !target[0])
		return fail_entry(x, "symlink without a target");
	if (open_parent(x, &pfd, &name) < 0)
		return -1;
	if (symlinkat(target, pfd, name) < 0) {
		if (errno != EEXIST)
			return fail_entry_errno(x, "symlink");
		if (unlink_existing(x, pfd, name, "symlink") < 0)
			return -1;
		if (symlinkat(target, pfd, name) < 0)
			return fail_entry_errno(x, "symlink");
	}
	entry_times(e, ts);
	if (archive_entry_mtime_is_set(e) && utimensat(pfd, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
		return fail_entry_errno(x, "set times");
	x->stats->symlinks++;
	return 0;
}

/* The target must be a regular file already beneath dirfd, reached without symlinks. */
static int open_link_target(struct extractor *x, char *target, const char *subject, int *tfd,
			    const char **tname)
{
	char *slash = strrchr(target, '/');
	struct stat st;

	*tfd = x->dirfd;
	*tname = target;
	if (slash) {
		*slash = '\0';
		*tfd = open_dir_beneath(x, target, O_PATH, false);
		if (*tfd < 0 && errno != ENOENT)
			return fail_walk(x, subject, target);
		*slash = '/';
		*tname = slash + 1;
	}
	if (*tfd < 0 || fstatat(*tfd, *tname, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
		return fail_entry(x, "%s is not an earlier regular file", subject);
	return 0;
}

static int link_replacing(struct extractor *x, int tfd, const char *tname, int pfd,
			  const char *name)
{
	if (linkat(tfd, tname, pfd, name, 0) == 0)
		return 0;
	if (errno != EEXIST)
		return fail_entry_errno(x, "link");
	if (unlink_existing(x, pfd, name, "hard link") < 0)
		return -1;
	if (linkat(tfd, tname, pfd, name, 0) < 0)
		return fail_entry_errno(x, "link");
	return 0;
}

static int check_link_target(struct extractor *x, const char *raw, char *target,
			     const char *subject)
{
	switch (normalize(raw, target)) {
	case PATH_ABSOLUTE:
		return fail_entry(x, "%s is an absolute path", subject);
	case PATH_DOTDOT:
		return fail_entry(x, "%s leaves the bundle", subject);
	case PATH_INSIDE:
		return 0;
	default:
		return fail_entry(x, "%s is not an earlier regular file", subject);
	}
}

static int extract_hardlink(struct extractor *x, const char *raw)
{
	char subject[SUBJECT_MAX];
	char *target = malloc(strlen(raw) + 1);
	const char *tname;
	const char *name;
	struct quoted q;
	int tfd = -1;
	int pfd;
	int rc = -1;

	if (!target)
		return fail_entry(x, "out of memory");
	snprintf(subject, sizeof(subject), "hard link target '%s'", quote(&q, raw));
	if (check_link_target(x, raw, target, subject) < 0)
		goto out;
	/* `tar -c f f` links the second f to the first: it is there already. */
	if (strcmp(target, x->path) == 0) {
		rc = 0;
		goto out;
	}
	if (open_link_target(x, target, subject, &tfd, &tname) < 0 ||
	    open_parent(x, &pfd, &name) < 0 || link_replacing(x, tfd, tname, pfd, name) < 0)
		goto out;
	x->stats->hardlinks++;
	rc = 0;
out:
	if (tfd >= 0 && tfd != x->dirfd)
		close(tfd);
	free(target);
	return rc;
}

static int extract_entry(struct extractor *x, struct archive *a, struct archive_entry *e)
{
	enum path_kind kind = PATH_EMPTY;
	const char *link;

	if (take_entry_path(x, e, &kind) < 0)
		return -1;
	/* "./": the mode of dirfd is the caller's. */
	if (kind == PATH_TOP && archive_entry_filetype(e) == AE_IFDIR)
		return 0;
	if (kind == PATH_TOP)
		return x->from_disk
			   ? fail(x, "not a directory")
			   : fail_entry(x, "names the top of the bundle but is not a directory");
	link = archive_entry_hardlink(e);
	if (link)
		return extract_hardlink(x, link);
	switch (archive_entry_filetype(e)) {
	case AE_IFREG:
		return extract_file(x, a, e);
	case AE_IFDIR:
		return extract_dir(x, e);
	case AE_IFLNK:
		return extract_symlink(x, e);
	case AE_IFCHR:
	case AE_IFBLK:
		return fail_entry(x, "device nodes are not allowed");
	case AE_IFIFO:
		return fail_entry(x, "FIFOs are not allowed");
	case AE_IFSOCK:
		return fail_entry(x, "sockets are not allowed");
	default:
		return fail_entry(x, "unknown entry type 0%o", (unsigned)archive_entry_filetype(e));
	}
}

static int descend_if_directory(struct extractor *x, struct archive *a)
{
	if (!x->from_disk || !archive_read_disk_can_descend(a) ||
	    archive_read_disk_descend(a) == ARCHIVE_OK)
		return 0;
	return fail_disk(x, a);
}

static int extract_entries(struct extractor *x, struct archive *a)
{
	struct archive_entry *e;
	int rc;

	while ((rc = archive_read_next_header(a, &e)) == ARCHIVE_OK || rc == ARCHIVE_WARN) {
		uint64_t implied_before = implied_dirs_made;

		if (over_entries(x) < 0)
			return -1;
		rc = extract_entry(x, a, e);
		x->stats->implied_dirs += implied_dirs_made - implied_before;
		if (rc < 0 || over_entries_after(x) < 0 || descend_if_directory(x, a) < 0)
			return -1;
	}
	return rc == ARCHIVE_EOF ? 0 : fail_header(x, a);
}

/* ------------------------------------------------------------ calls */

static void init_extractor(struct extractor *x, int dirfd, const struct pl_extract_limits *lim,
			   struct pl_extract_stats *stats, char *err, size_t errlen)
{
	memset(x, 0, sizeof(*x));
	x->dirfd = dirfd;
	x->max_bytes = lim ? lim->max_bytes : 0;
	x->max_entries = lim ? lim->max_entries : 0;
	x->stats = stats;
	x->err = err;
	x->errlen = errlen;
	x->parent_fd = -1;
	if (errlen > 0)
		err[0] = '\0';
}

static void release_extractor(struct extractor *x)
{
	forget_parent(x);
	free(x->parent);
	free(x->path);
	free(x->disk_root);
	x->parent = x->path = x->disk_root = NULL;
}

/* After an error the caller abandons the staging: the remembered directories go with it. */
static int finish_call(struct extractor *x, int rc)
{
	release_extractor(x);
	if (rc < 0)
		forget_dirs();
	return rc;
}

/* The formats the README promises and nothing else: cpio, ISO images, 7-Zip, RAR or raw data are
 * not bundles, and archive_read_support_filter_all() would let an archive make the prolog run
 * lrzip, grzip or lzop as external programs. ARCHIVE_WARN: this libarchive lacks one of the
 * libraries below and runs its program instead. */
static int add_accepted_formats(struct archive *a)
{
	int (*const add[])(struct archive *) = {
	    archive_read_support_format_tar,  archive_read_support_format_zip,
	    archive_read_support_filter_gzip, archive_read_support_filter_bzip2,
	    archive_read_support_filter_xz,   archive_read_support_filter_zstd,
	    archive_read_support_filter_lz4,
	};

	for (size_t i = 0; i < sizeof(add) / sizeof(add[0]); i++)
		if (add[i](a) < ARCHIVE_WARN)
			return -1;
	return 0;
}

struct archive *pl_archive_reader_new(void)
{
	struct archive *a = archive_read_new();

	if (a && add_accepted_formats(a) < 0) {
		archive_read_free(a);
		a = NULL;
	}
	return a;
}

int pl_bundle_lookup(const char *path, struct stat *st)
{
	int fd = open(path, O_PATH | O_CLOEXEC);

	if (fd >= 0 && fstat(fd, st) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* The looked-up inode opened for reading, without a second walk. /proc is there wherever Slurm
 * runs (slurmd and slurmstepd read it themselves). O_NONBLOCK: should the inode have become a
 * FIFO, it must not hang the prolog. */
static int reopen_for_reading(int pathfd)
{
	char proc[64];

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pathfd);
	return open(proc, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
}

static int open_looked_up(struct extractor *x, int pathfd, const struct stat *st)
{
	int fd;

	if (!S_ISREG(st->st_mode))
		return fail(x, "not a regular file");
	fd = reopen_for_reading(pathfd);
	if (fd < 0)
		return fail(x, "cannot open: %s", strerror(errno));
	return fd;
}

static int open_bundle_file(struct extractor *x, const char *path)
{
	struct stat st;
	int pathfd = pl_bundle_lookup(path, &st);
	int fd;

	if (pathfd < 0)
		return fail(x, "cannot open: %s", strerror(errno));
	fd = open_looked_up(x, pathfd, &st);
	close(pathfd);
	return fd;
}

static int open_reader(struct extractor *x, struct archive *a, int fd, size_t block)
{
	struct quoted why;

	if (!a)
		return fail(x, "out of memory");
	if (archive_read_open_fd(a, fd, block) == ARCHIVE_OK)
		return 0;
	/* Opening already bids for a format. */
	if (archive_errno(a) == FORMAT_ERRNO)
		return fail_header(x, a);
	return fail(x, "cannot read: %s", archive_why(&why, a));
}

/* Reads the first header from fd (closed here). */
static int probe_fd(struct extractor *x, int fd)
{
	struct archive *a = pl_archive_reader_new();
	struct archive_entry *e;
	int rc = -1;

	if (open_reader(x, a, fd, PROBE_BLOCK) < 0)
		goto out;
	rc = archive_read_next_header(a, &e);
	rc = rc == ARCHIVE_OK || rc == ARCHIVE_WARN || rc == ARCHIVE_EOF ? 0 : fail_header(x, a);
out:
	archive_read_free(a);
	close(fd);
	return rc;
}

int pl_archive_probe(const char *path, char *err, size_t errlen)
{
	struct extractor x;
	int fd;

	init_extractor(&x, -1, NULL, NULL, err, errlen);
	fd = open_bundle_file(&x, path);
	return fd < 0 ? -1 : probe_fd(&x, fd);
}

int pl_archive_probe_looked_up(int pathfd, const struct stat *st, char *err, size_t errlen)
{
	struct extractor x;
	int fd;

	init_extractor(&x, -1, NULL, NULL, err, errlen);
	fd = open_looked_up(&x, pathfd, st);
	return fd < 0 ? -1 : probe_fd(&x, fd);
}

int pl_extract_archive(struct archive *a, int dirfd, const struct pl_extract_limits *lim,
		       struct pl_extract_stats *stats, char *err, size_t errlen)
{
	struct extractor x;

	init_extractor(&x, dirfd, lim, stats, err, errlen);
	return finish_call(&x, extract_entries(&x, a));
}

int pl_extract_archive_fd(int fd, int dirfd, const struct pl_extract_limits *lim,
			  struct pl_extract_stats *stats, char *err, size_t errlen)
{
	struct archive *a = pl_archive_reader_new();
	struct extractor x;
	int rc = -1;

	init_extractor(&x, dirfd, lim, stats, err, errlen);
	if (open_reader(&x, a, fd, READ_BLOCK) == 0)
		rc = pl_extract_archive(a, dirfd, lim, stats, err, errlen);
	archive_read_free(a);
	return finish_call(&x, rc);
}

int pl_extract_archive_file(const char *path, int dirfd, const struct pl_extract_limits *lim,
			    struct pl_extract_stats *stats, char *err, size_t errlen)
{
	struct extractor x;
	int fd;
	int rc;

	init_extractor(&x, dirfd, lim, stats, err, errlen);
	fd = open_bundle_file(&x, path);
	if (fd < 0)
		return finish_call(&x, -1);
	rc = pl_extract_archive_fd(fd, dirfd, lim, stats, err, errlen);
	close(fd);
	return rc;
}

int pl_extract_archive_looked_up(int pathfd, const struct stat *st, int dirfd,
				 const struct pl_extract_limits *lim,
				 struct pl_extract_stats *stats, char *err, size_t errlen)
{
	struct extractor x;
	int fd;
	int rc;

	init_extractor(&x, dirfd, lim, stats, err, errlen);
	fd = open_looked_up(&x, pathfd, st);
	if (fd < 0)
		return finish_call(&x, -1);
	rc = pl_extract_archive_fd(fd, dirfd, lim, stats, err, errlen);
	close(fd);
	return rc;
}

/* Hybrid: a symlink named as the bundle is followed (as `tar -C path` would), none inside it.
 * ACLs, extended attributes and file flags are not staged: no need to read them. */
static int open_directory(struct extractor *x, struct archive *a, const char *path)
{
	struct quoted why;
	const int skip =
	    ARCHIVE_READDISK_NO_XATTR | ARCHIVE_READDISK_NO_ACL | ARCHIVE_READDISK_NO_FFLAGS;

	if (!a)
		return fail(x, "out of memory");
	if (archive_read_disk_set_symlink_hybrid(a) != ARCHIVE_OK ||
	    archive_read_disk_set_behavior(a, skip) != ARCHIVE_OK ||
	    archive_read_disk_open(a, path) != ARCHIVE_OK)
		return fail(x, "cannot read the directory: %s", archive_why(&why, a));
	return 0;
}

int pl_extract_directory(const char *path, int dirfd, const struct pl_extract_limits *lim,
			 struct pl_extract_stats *stats, char *err, size_t errlen)
{
	struct archive *a = archive_read_disk_new();
	struct extractor x;
	int rc = -1;

	init_extractor(&x, dirfd, lim, stats, err, errlen);
	x.from_disk = true;
	if (open_directory(&x, a, path) == 0)
		rc = extract_entries(&x, a);
	archive_read_free(a);
	return finish_call(&x, rc);
}

/* ------------------------------------------------------------ finish */

/* A path sorts after its own prefix, so descending order puts children before their parent: a
 * parent made read-only is still open to us while its children are done. Among duplicates the
 * latest layer comes first and wins. */
static int deepest_first(const void *pa, const void *pb)
{
	const struct pending_dir *a = pa;
	const struct pending_dir *b = pb;
	int c = strcmp(b->path, a->path);

	if (c != 0)
		return c;
	return a->seq < b->seq ? 1 : (a->seq > b->seq ? -1 : 0);
}

static int apply_pending(struct extractor *x, const struct pending_dir *d)
{
	struct timespec ts[2] = {{.tv_sec = 0, .tv_nsec = UTIME_OMIT}, d->mtime};
	int fd;
	int rc = -1;

	x->entry = d->path;
	fd = open_dir_beneath(x, d->path, O_RDONLY, false);
	if (fd < 0)
		return fail_walk(x, "path", d->path);
	if (d->has_mtime && futimens(fd, ts) < 0)
		fail_entry_errno(x, "set times");
	else if (fchmod(fd, d->mode) < 0)
		fail_entry_errno(x, "set mode");
	else
		rc = 0;
	close(fd);
	return rc;
}

int pl_extract_finish(int dirfd, char *err, size_t errlen)
{
	struct extractor x;
	int rc = 0;

	init_extractor(&x, dirfd, NULL, NULL, err, errlen);
	if (pending.n > 0)
		qsort(pending.v, pending.n, sizeof(*pending.v), deepest_first);
	for (size_t i = 0; i < pending.n && rc == 0; i++)
		if (i == 0 || strcmp(pending.v[i].path, pending.v[i - 1].path) != 0)
			rc = apply_pending(&x, &pending.v[i]);
	forget_dirs();
	return finish_call(&x, rc);
}
