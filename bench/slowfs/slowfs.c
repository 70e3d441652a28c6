/*
 * slowfs: a read-only pass-through FUSE file system that stands in for a loaded shared file
 * system (see bench/README.md).
 *
 * - every request is counted by kind, read bytes in total and per path, opens per path;
 * - metadata requests (everything but read and forget) are served one at a time, in arrival
 *   order, through a single queue, each taking at least delay_us: a saturated metadata server;
 * - reads bypass that queue and may be capped in aggregate bandwidth (read_mbps, token bucket);
 * - SIGUSR1 writes the counters as JSON to the stats file, SIGUSR2 resets them (and writes the
 *   zeroed counters), unmounting writes them a last time.
 *
 * Low-level libfuse3 API: one callback is one FUSE request, so the counts are the requests the
 * kernel sent, with no path resolution of the high-level library in between.
 */
#define _GNU_SOURCE
#define FUSE_USE_VERSION 314

#include <fuse_lowlevel.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define SLOWFS_VERSION "1"

_Static_assert(sizeof(fuse_ino_t) >= sizeof(uintptr_t), "fuse_ino_t cannot hold a pointer");

/* ---------------------------------------------------------------- configuration */

struct sf_cfg {
	char *source;
	char *mountpoint;
	char *stats;
	char *pidfile;
	unsigned delay_us;
	unsigned read_mbps;
	double entry_timeout;
	double attr_timeout;
	double negative_timeout;
	int keep_cache;
	int direct_io;
	int no_default_permissions;
	unsigned threads;
};

static struct sf_cfg cfg = {
    .entry_timeout = 0.0,
    .attr_timeout = 0.0,
    .negative_timeout = 0.0,
    .threads = 64,
};

#define SF_OPT(t, p)                                                                               \
	{                                                                                          \
		t, offsetof(struct sf_cfg, p), 1                                                   \
	}
static const struct fuse_opt sf_opts[] = {
    {"delay_us=%u", offsetof(struct sf_cfg, delay_us), 0},
    {"read_mbps=%u", offsetof(struct sf_cfg, read_mbps), 0},
    {"entry_timeout=%lf", offsetof(struct sf_cfg, entry_timeout), 0},
    {"attr_timeout=%lf", offsetof(struct sf_cfg, attr_timeout), 0},
    {"negative_timeout=%lf", offsetof(struct sf_cfg, negative_timeout), 0},
    {"stats=%s", offsetof(struct sf_cfg, stats), 0},
    {"pidfile=%s", offsetof(struct sf_cfg, pidfile), 0},
    {"threads=%u", offsetof(struct sf_cfg, threads), 0},
    SF_OPT("keep_cache", keep_cache),
    SF_OPT("direct_io", direct_io),
    SF_OPT("no_default_permissions", no_default_permissions),
    FUSE_OPT_END,
};

/* ---------------------------------------------------------------- counters */

enum kind {
	K_LOOKUP,
	K_LOOKUP_ENOENT, /* subset of K_LOOKUP: the name did not exist */
	K_FORGET,
	K_BATCH_FORGET,
	K_GETATTR,
	K_READLINK,
	K_OPEN,
	K_READ,
	K_FLUSH,
	K_RELEASE,
	K_OPENDIR,
	K_READDIR,
	K_RELEASEDIR,
	K_STATFS,
	K_ACCESS,
	K_GETXATTR,
	K_LISTXATTR,
	K_LSEEK,
	K_IOCTL,
	NKINDS
};

static const char *const kind_name[NKINDS] = {
    [K_LOOKUP] = "lookup",
    [K_LOOKUP_ENOENT] = "lookup_enoent",
    [K_FORGET] = "forget",
    [K_BATCH_FORGET] = "batch_forget",
    [K_GETATTR] = "getattr",
    [K_READLINK] = "readlink",
    [K_OPEN] = "open",
    [K_READ] = "read",
    [K_FLUSH] = "flush",
    [K_RELEASE] = "release",
    [K_OPENDIR] = "opendir",
    [K_READDIR] = "readdir",
    [K_RELEASEDIR] = "releasedir",
    [K_STATFS] = "statfs",
    [K_ACCESS] = "access",
    [K_GETXATTR] = "getxattr",
    [K_LISTXATTR] = "listxattr",
    [K_LSEEK] = "lseek",
    [K_IOCTL] = "ioctl",
};

/* Kinds that are metadata requests (queued and delayed).  lookup_enoent is a subset of lookup,
 * forgets carry no reply, read is data, flush and ioctl are answered at once (see sf_flush and
 * sf_ioctl). */
static int kind_is_metadata(enum kind k)
{
	return k != K_LOOKUP_ENOENT && k != K_FORGET && k != K_BATCH_FORGET && k != K_READ &&
	       k != K_FLUSH && k != K_IOCTL;
}

static atomic_uint_fast64_t counts[NKINDS];
static atomic_uint_fast64_t read_bytes;
static atomic_uint_fast64_t md_wait_ns;	 /* summed time requests waited in the queue */
static atomic_uint_fast64_t md_busy_ns;	 /* summed time the server was busy */
static atomic_uint_fast64_t rd_sleep_ns; /* summed time reads were held by the bandwidth cap */
static atomic_uint_fast64_t md_max_queue;
static atomic_uint_fast64_t seq;
static struct timespec reset_time;
static pthread_mutex_t reset_lock = PTHREAD_MUTEX_INITIALIZER;

static void count(enum kind k)
{
	atomic_fetch_add_explicit(&counts[k], 1, memory_order_relaxed);
}

static uint64_t ts_ns(const struct timespec *t)
{
	return (uint64_t)t->tv_sec * 1000000000u + (uint64_t)t->tv_nsec;
}

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return ts_ns(&t);
}

static void sleep_until_ns(uint64_t when)
{
	struct timespec t = {.tv_sec = (time_t)(when / 1000000000u),
			     .tv_nsec = (long)(when % 1000000000u)};
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL) == EINTR)
		;
}

/* per path: opens and bytes read, kept across forgets until a reset */
struct path_stat {
	struct path_stat *next;
	uint64_t opens;
	uint64_t read_bytes;
	char path[];
};

#define PATH_BUCKETS 65536
static struct path_stat *path_tab[PATH_BUCKETS];
static size_t path_n;
static pthread_mutex_t path_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211u;
	return h;
}

static void path_account(const char *path, uint64_t opens, uint64_t bytes)
{
	uint64_t b = hash_str(path) % PATH_BUCKETS;
	struct path_stat *p;

	pthread_mutex_lock(&path_lock);
	for (p = path_tab[b]; p; p = p->next)
		if (strcmp(p->path, path) == 0)
			break;
	if (!p) {
		size_t len = strlen(path);
		p = calloc(1, sizeof(*p) + len + 1);
		if (!p) {
			pthread_mutex_unlock(&path_lock);
			return;
		}
		memcpy(p->path, path, len + 1);
		p->next = path_tab[b];
		path_tab[b] = p;
		path_n++;
	}
	p->opens += opens;
	p->read_bytes += bytes;
	pthread_mutex_unlock(&path_lock);
}

/* ---------------------------------------------------------------- the metadata server */

/* A FIFO ticket queue: request t is served when serving == t.  Each waiter sleeps on the
 * condition variable of its ticket slot, so a release wakes only the next request. */
#define MQ_SLOTS 1024
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond[MQ_SLOTS];
	uint64_t next, serving;
	uint64_t start_ns; /* service start of the current request */
	uint64_t end_ns;   /* when the server's last delay ended or ends */
	uint64_t late_ns;  /* running average of how late a sleeping server thread wakes up */
} mq = {.lock = PTHREAD_MUTEX_INITIALIZER};

static _Thread_local int slack_set;

static void mq_enter(void)
{
	uint64_t arrive, t, start;

	if (!slack_set) {
		/* 200 us delays must not become 250 us through the default 50 us timer slack */
		prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
		slack_set = 1;
	}
	arrive = now_ns();
	pthread_mutex_lock(&mq.lock);
	t = mq.next++;
	uint64_t depth = mq.next - mq.serving;
	uint64_t old = atomic_load(&md_max_queue);
	while (depth > old && !atomic_compare_exchange_weak(&md_max_queue, &old, depth))
		;
	while (t != mq.serving)
		pthread_cond_wait(&mq.cond[t % MQ_SLOTS], &mq.lock);
	pthread_mutex_unlock(&mq.lock);
	start = now_ns();
	mq.start_ns = start;
	atomic_fetch_add_explicit(&md_wait_ns, start - arrive, memory_order_relaxed);
	if (cfg.delay_us) {
		/* The server's clock: a request's service ends delay_us after the end of the
		 * previous one or after its own start, whichever is later, so a saturated queue
		 * serves exactly 10^6 / delay_us requests per second.  The thread wakes up late by
		 * some tens of microseconds (timer and scheduler latency); it aims that much early
		 * (a running average of its lateness) so that a request also takes delay_us on
		 * average alone. */
		uint64_t delay = (uint64_t)cfg.delay_us * 1000u;
		uint64_t base = mq.end_ns > start ? mq.end_ns : start;
		uint64_t target;

		mq.end_ns = base + delay;
		target = mq.end_ns - mq.late_ns;
		if (target > start) {
			uint64_t late;
			sleep_until_ns(target);
			late = now_ns() - target;
			if (late > delay / 2)
				late = delay / 2;
			mq.late_ns = (7 * mq.late_ns + late) / 8;
		}
	}
}

static void mq_leave(void)
{
	uint64_t end = now_ns();

	atomic_fetch_add_explicit(&md_busy_ns, end - mq.start_ns, memory_order_relaxed);
	pthread_mutex_lock(&mq.lock);
	mq.serving++;
	pthread_cond_broadcast(&mq.cond[mq.serving % MQ_SLOTS]);
	pthread_mutex_unlock(&mq.lock);
}

/* ---------------------------------------------------------------- the read bandwidth cap */

/* Token bucket as a virtual clock (GCRA): each read advances tat by bytes / rate; a read may run
 * ahead of tat by at most one bucket (1 MiB), else it sleeps until it is within it. */
static pthread_mutex_t bw_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t bw_tat;
#define BW_BUCKET (1024.0 * 1024.0)

static void bw_wait(size_t n)
{
	uint64_t now, wake;
	double rate;

	if (!cfg.read_mbps || !n)
		return;
	rate = cfg.read_mbps * 1e6 / 1e9; /* bytes per ns */
	now = now_ns();
	pthread_mutex_lock(&bw_lock);
	if (bw_tat < now)
		bw_tat = now;
	bw_tat += (uint64_t)((double)n / rate);
	uint64_t burst = (uint64_t)(BW_BUCKET / rate);
	wake = bw_tat > burst ? bw_tat - burst : 0;
	pthread_mutex_unlock(&bw_lock);
	if (wake > now) {
		if (!slack_set) {
			prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
			slack_set = 1;
		}
		sleep_until_ns(wake);
		atomic_fetch_add_explicit(&rd_sleep_ns, wake - now, memory_order_relaxed);
	}
}

/* ---------------------------------------------------------------- inodes */

/* An inode the kernel knows: its backing object is named by its path below the source (the
 * source does not change under a benchmark), not held open, so that a kernel caching the inodes
 * of a 20,000-file tree costs no descriptors. */
struct sf_inode {
	struct sf_inode *hnext; /* itab chain, under itab_lock */
	int fd;			/* the root only: O_PATH descriptor of the source */
	dev_t dev;
	ino_t ino;
	uint64_t nlookup; /* under itab_lock */
	char *path;	  /* relative to the source, "" for the root */
};

#define ITAB_BUCKETS 65536
static struct sf_inode *itab[ITAB_BUCKETS];
static pthread_mutex_t itab_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sf_inode root;

static struct sf_inode *IN(fuse_ino_t ino)
{
	return ino == FUSE_ROOT_ID ? &root : (struct sf_inode *)(uintptr_t)ino;
}

/* the path to use with root.fd for *at() calls */
static const char *REL(fuse_ino_t ino)
{
	const char *p = IN(ino)->path;
	return *p ? p : ".";
}

static size_t ihash(dev_t dev, ino_t ino)
{
	return (size_t)((ino * 11400714819323198485u) ^ dev) % ITAB_BUCKETS;
}

static struct sf_inode *ifind(dev_t dev, ino_t ino)
{
	struct sf_inode *in;
	for (in = itab[ihash(dev, ino)]; in; in = in->hnext)
		if (in->dev == dev && in->ino == ino)
			return in;
	return NULL;
}

static char *join_path(const char *parent, const char *name)
{
	char *p;
	if (!*parent)
		return strdup(name);
	if (asprintf(&p, "%s/%s", parent, name) < 0)
		return NULL;
	return p;
}

static int do_lookup(struct sf_inode *parent, const char *name, struct fuse_entry_param *e)
{
	struct sf_inode *in;
	char *path = join_path(parent->path, name);

	memset(e, 0, sizeof(*e));
	e->attr_timeout = cfg.attr_timeout;
	e->entry_timeout = cfg.entry_timeout;
	if (!path)
		return ENOMEM;
	if (fstatat(root.fd, path, &e->attr, AT_SYMLINK_NOFOLLOW) == -1) {
		int err = errno;
		free(path);
		return err;
	}

	pthread_mutex_lock(&itab_lock);
	in = ifind(e->attr.st_dev, e->attr.st_ino);
	if (in) {
		in->nlookup++;
		free(path);
	} else if ((in = calloc(1, sizeof(*in)))) {
		size_t b = ihash(e->attr.st_dev, e->attr.st_ino);
		in->fd = -1;
		in->dev = e->attr.st_dev;
		in->ino = e->attr.st_ino;
		in->nlookup = 1;
		in->path = path;
		in->hnext = itab[b];
		itab[b] = in;
	}
	pthread_mutex_unlock(&itab_lock);
	if (!in) {
		free(path);
		return ENOMEM;
	}
	e->ino = (uintptr_t)in;
	return 0;
}

static void forget_one(fuse_ino_t ino, uint64_t n)
{
	struct sf_inode *in = IN(ino), **pp;

	if (in == &root)
		return;
	pthread_mutex_lock(&itab_lock);
	if (n > in->nlookup)
		n = in->nlookup;
	in->nlookup -= n;
	if (in->nlookup) {
		pthread_mutex_unlock(&itab_lock);
		return;
	}
	for (pp = &itab[ihash(in->dev, in->ino)]; *pp; pp = &(*pp)->hnext)
		if (*pp == in) {
			*pp = in->hnext;
			break;
		}
	pthread_mutex_unlock(&itab_lock);
	free(in->path);
	free(in);
}

/* ---------------------------------------------------------------- requests */

static void sf_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	/* plain READDIR, no READDIRPLUS: a listing does not also return (and cache) attributes */
	conn->want &= ~(unsigned)(FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO);
	/* With auto_inval_data and attr_timeout=0 the kernel sends a GETATTR before every read(2)
	 * (to notice a changed file); the source does not change under a benchmark, so only a read
	 * that reaches past the cached size revalidates (one GETATTR at the end of a file). */
	conn->want &= ~(unsigned)FUSE_CAP_AUTO_INVAL_DATA;
}

static void sf_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	int err;

	count(K_LOOKUP);
	mq_enter();
	err = do_lookup(IN(parent), name, &e);
	mq_leave();
	if (err == ENOENT) {
		count(K_LOOKUP_ENOENT);
		if (cfg.negative_timeout > 0) {
			memset(&e, 0, sizeof(e));
			e.ino = 0; /* a negative entry the kernel may cache */
			e.entry_timeout = cfg.negative_timeout;
			fuse_reply_entry(req, &e);
			return;
		}
	}
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_entry(req, &e);
}

static void sf_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	count(K_FORGET);
	forget_one(ino, nlookup);
	fuse_reply_none(req);
}

static void sf_forget_multi(fuse_req_t req, size_t n, struct fuse_forget_data *f)
{
	count(K_BATCH_FORGET);
	for (size_t i = 0; i < n; i++)
		forget_one(f[i].ino, f[i].nlookup);
	fuse_reply_none(req);
}

static void sf_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;
	int err = 0;

	(void)fi;
	count(K_GETATTR);
	mq_enter();
	if (fstatat(root.fd, REL(ino), &st, AT_SYMLINK_NOFOLLOW) == -1)
		err = errno;
	mq_leave();
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_attr(req, &st, cfg.attr_timeout);
}

static void sf_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char buf[PATH_MAX + 1];
	ssize_t n;
	int err = 0;

	count(K_READLINK);
	mq_enter();
	n = readlinkat(root.fd, REL(ino), buf, sizeof(buf));
	if (n == -1)
		err = errno;
	mq_leave();
	if (err)
		fuse_reply_err(req, err);
	else if ((size_t)n == sizeof(buf))
		fuse_reply_err(req, ENAMETOOLONG);
	else {
		buf[n] = '\0';
		fuse_reply_readlink(req, buf);
	}
}

static void sf_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sf_inode *in = IN(ino);
	int fd, err = 0;

	count(K_OPEN);
	if ((fi->flags & O_ACCMODE) != O_RDONLY) {
		fuse_reply_err(req, EROFS);
		return;
	}
	mq_enter();
	fd = openat(root.fd, REL(ino),
		    (fi->flags & ~(O_CREAT | O_EXCL | O_TRUNC)) | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1)
		err = errno;
	mq_leave();
	if (err) {
		fuse_reply_err(req, err);
		return;
	}
	path_account(in->path, 1, 0);
	fi->fh = (uint64_t)fd;
	fi->keep_cache = cfg.keep_cache ? 1 : 0;
	/* The simulated nodes share one page cache: without direct_io a node reading a file
	 * another node is reading gets the other's pages and slowfs never sees its reads. */
	fi->direct_io = cfg.direct_io ? 1 : 0;
	if (fuse_reply_open(req, fi) == -ENOENT)
		close(fd); /* interrupted: the kernel will send no release */
}

static void sf_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	char *buf;
	ssize_t n;

	count(K_READ);
	buf = malloc(size ? size : 1);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = pread((int)fi->fh, buf, size, off);
	if (n == -1) {
		int err = errno;
		free(buf);
		fuse_reply_err(req, err);
		return;
	}
	atomic_fetch_add_explicit(&read_bytes, (uint64_t)n, memory_order_relaxed);
	path_account(IN(ino)->path, 0, (uint64_t)n);
	bw_wait((size_t)n);
	fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

/* FLUSH is sent at every close(2) of a descriptor.  Answering ENOSYS makes the kernel stop
 * sending it for the rest of the mount, as for a read-only network file system with nothing to
 * flush: only the first one is ever counted. */
static void sf_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	count(K_FLUSH);
	fuse_reply_err(req, ENOSYS);
}

static void sf_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	count(K_RELEASE);
	mq_enter();
	close((int)fi->fh);
	mq_leave();
	fuse_reply_err(req, 0);
}

struct sf_dir {
	DIR *dp;
	struct dirent *entry;
	off_t offset;
};

static void sf_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sf_dir *d = calloc(1, sizeof(*d));
	int fd = -1, err = 0;

	count(K_OPENDIR);
	if (!d) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	mq_enter();
	fd = openat(root.fd, REL(ino), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1)
		err = errno;
	else if (!(d->dp = fdopendir(fd))) {
		err = errno;
		close(fd);
	}
	mq_leave();
	if (err) {
		free(d);
		fuse_reply_err(req, err);
		return;
	}
	fi->fh = (uintptr_t)d;
	if (fuse_reply_open(req, fi) == -ENOENT) {
		closedir(d->dp);
		free(d);
	}
}

static void sf_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct sf_dir *d = (struct sf_dir *)(uintptr_t)fi->fh;
	char *buf = calloc(1, size ? size : 1), *p = buf;
	size_t rem = size;
	int err = 0;

	(void)ino;
	count(K_READDIR);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	mq_enter();
	if (off != d->offset) {
		seekdir(d->dp, off);
		d->entry = NULL;
		d->offset = off;
	}
	for (;;) {
		struct stat st;
		size_t len;
		off_t next;

		if (!d->entry) {
			errno = 0;
			d->entry = readdir(d->dp);
			if (!d->entry) {
				err = errno;
				break;
			}
		}
		memset(&st, 0, sizeof(st));
		st.st_ino = d->entry->d_ino;
		st.st_mode = (mode_t)d->entry->d_type << 12;
		next = d->entry->d_off;
		len = fuse_add_direntry(req, p, rem, d->entry->d_name, &st, next);
		if (len > rem)
			break;
		p += len;
		rem -= len;
		d->entry = NULL;
		d->offset = next;
	}
	mq_leave();
	if (err && rem == size)
		fuse_reply_err(req, err);
	else
		fuse_reply_buf(req, buf, size - rem);
	free(buf);
}

static void sf_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sf_dir *d = (struct sf_dir *)(uintptr_t)fi->fh;

	(void)ino;
	count(K_RELEASEDIR);
	mq_enter();
	closedir(d->dp);
	mq_leave();
	free(d);
	fuse_reply_err(req, 0);
}

static void sf_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;
	int err = 0;

	count(K_STATFS);
	mq_enter();
	(void)ino;
	if (fstatvfs(root.fd, &sv) == -1)
		err = errno;
	mq_leave();
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_statfs(req, &sv);
}

/* Only sent with no_default_permissions (the kernel checks permissions itself otherwise). */
static void sf_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	int err = 0;

	count(K_ACCESS);
	mq_enter();
	if (faccessat(root.fd, REL(ino), mask, AT_SYMLINK_NOFOLLOW) == -1)
		err = errno;
	mq_leave();
	fuse_reply_err(req, err);
}

static void sf_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	char proc[PATH_MAX + 32], *buf = NULL;
	ssize_t n;
	int err = 0;

	count(K_GETXATTR);
	if (size && !(buf = malloc(size))) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	mq_enter();
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d/%s", root.fd, REL(ino));
	n = lgetxattr(proc, name, buf, size);
	if (n == -1)
		err = errno;
	mq_leave();
	if (err)
		fuse_reply_err(req, err);
	else if (!size)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

static void sf_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	char proc[PATH_MAX + 32], *buf = NULL;
	ssize_t n;
	int err = 0;

	count(K_LISTXATTR);
	if (size && !(buf = malloc(size))) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	mq_enter();
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d/%s", root.fd, REL(ino));
	n = llistxattr(proc, buf, size);
	if (n == -1)
		err = errno;
	mq_leave();
	if (err)
		fuse_reply_err(req, err);
	else if (!size)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

static void sf_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		     struct fuse_file_info *fi)
{
	off_t res;

	(void)ino;
	count(K_LSEEK);
	mq_enter();
	res = lseek((int)fi->fh, off, whence);
	mq_leave();
	if (res == -1)
		fuse_reply_err(req, errno);
	else
		fuse_reply_lseek(req, res);
}

/* isatty(3) and the like on a file (Python asks TCGETS of every file it opens): a network file
 * system's client answers ENOTTY itself, so this is counted but not queued. */
static void sf_ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void *arg,
		     struct fuse_file_info *fi, unsigned flags, const void *in_buf, size_t in_bufsz,
		     size_t out_bufsz)
{
	(void)ino;
	(void)cmd;
	(void)arg;
	(void)fi;
	(void)flags;
	(void)in_buf;
	(void)in_bufsz;
	(void)out_bufsz;
	count(K_IOCTL);
	fuse_reply_err(req, ENOTTY);
}

static const struct fuse_lowlevel_ops sf_ops = {
    .init = sf_init,
    .lookup = sf_lookup,
    .forget = sf_forget,
    .forget_multi = sf_forget_multi,
    .getattr = sf_getattr,
    .readlink = sf_readlink,
    .open = sf_open,
    .read = sf_read,
    .flush = sf_flush,
    .release = sf_release,
    .opendir = sf_opendir,
    .readdir = sf_readdir,
    .releasedir = sf_releasedir,
    .statfs = sf_statfs,
    .access = sf_access,
    .getxattr = sf_getxattr,
    .listxattr = sf_listxattr,
    .lseek = sf_lseek,
    .ioctl = sf_ioctl,
};

/* ---------------------------------------------------------------- statistics output */

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static int path_cmp(const void *a, const void *b)
{
	return strcmp((*(struct path_stat *const *)a)->path, (*(struct path_stat *const *)b)->path);
}

/* Writes the counters to cfg.stats (via a temporary file and rename, so a reader never sees a
 * partial file).  event: "dump", "reset" or "unmount". */
static void write_stats(const char *event)
{
	char *tmp = NULL;
	struct path_stat **v = NULL;
	struct timespec wall;
	uint64_t md = 0, total = 0;
	size_t n = 0;
	FILE *f;

	static pthread_mutex_t write_lock = PTHREAD_MUTEX_INITIALIZER;

	if (!cfg.stats)
		return;
	pthread_mutex_lock(&write_lock);
	if (asprintf(&tmp, "%s.tmp.%d", cfg.stats, (int)getpid()) < 0) {
		pthread_mutex_unlock(&write_lock);
		return;
	}
	f = fopen(tmp, "w");
	if (!f) {
		fuse_log(FUSE_LOG_ERR, "slowfs: %s: %s\n", tmp, strerror(errno));
		free(tmp);
		pthread_mutex_unlock(&write_lock);
		return;
	}
	pthread_mutex_lock(&reset_lock);
	clock_gettime(CLOCK_REALTIME, &wall);
	fprintf(f, "{\n  \"slowfs\": \"%s\",\n  \"event\": \"%s\",\n  \"seq\": %" PRIu64 ",\n",
		SLOWFS_VERSION, event, atomic_fetch_add(&seq, 1) + 1);
	fprintf(f, "  \"time\": %.3f,\n  \"since_reset_s\": %.6f,\n", (double)ts_ns(&wall) / 1e9,
		(double)(now_ns() - ts_ns(&reset_time)) / 1e9);
	fprintf(f, "  \"pid\": %d,\n  \"source\": ", (int)getpid());
	json_str(f, cfg.source);
	fprintf(f, ",\n  \"mountpoint\": ");
	json_str(f, cfg.mountpoint ? cfg.mountpoint : "");
	fprintf(f,
		",\n  \"config\": {\"delay_us\": %u, \"read_mbps\": %u, \"entry_timeout\": %g, "
		"\"attr_timeout\": %g, \"negative_timeout\": %g, \"keep_cache\": %s, "
		"\"direct_io\": %s, \"default_permissions\": %s, \"threads\": %u},\n",
		cfg.delay_us, cfg.read_mbps, cfg.entry_timeout, cfg.attr_timeout,
		cfg.negative_timeout, cfg.keep_cache ? "true" : "false",
		cfg.direct_io ? "true" : "false", cfg.no_default_permissions ? "false" : "true",
		cfg.threads);
	for (int k = 0; k < NKINDS; k++) {
		uint64_t c = atomic_load(&counts[k]);
		fprintf(f, "  \"%s\": %" PRIu64 ",\n", kind_name[k], c);
		if (k != K_LOOKUP_ENOENT)
			total += c;
		if (kind_is_metadata((enum kind)k))
			md += c;
	}
	fprintf(f, "  \"requests\": %" PRIu64 ",\n  \"metadata_requests\": %" PRIu64 ",\n", total,
		md);
	fprintf(f, "  \"read_bytes\": %" PRIu64 ",\n", (uint64_t)atomic_load(&read_bytes));
	fprintf(f,
		"  \"metadata_busy_s\": %.6f,\n  \"metadata_wait_s\": %.6f,\n"
		"  \"metadata_max_queue\": %" PRIu64 ",\n  \"read_throttle_s\": %.6f,\n",
		(double)atomic_load(&md_busy_ns) / 1e9, (double)atomic_load(&md_wait_ns) / 1e9,
		(uint64_t)atomic_load(&md_max_queue), (double)atomic_load(&rd_sleep_ns) / 1e9);

	pthread_mutex_lock(&path_lock);
	v = calloc(path_n ? path_n : 1, sizeof(*v));
	if (v)
		for (size_t b = 0; b < PATH_BUCKETS; b++)
			for (struct path_stat *p = path_tab[b]; p; p = p->next)
				v[n++] = p;
	if (v)
		qsort(v, n, sizeof(*v), path_cmp);
	const char *sep = "";
	fprintf(f, "  \"opens_by_path\": {");
	for (size_t i = 0; i < n; i++) {
		if (!v[i]->opens)
			continue;
		fprintf(f, "%s\n    ", sep);
		json_str(f, v[i]->path);
		fprintf(f, ": %" PRIu64, v[i]->opens);
		sep = ",";
	}
	fprintf(f, "%s},\n  \"read_bytes_by_path\": {", *sep ? "\n  " : "");
	sep = "";
	for (size_t i = 0; i < n; i++) {
		if (!v[i]->read_bytes)
			continue;
		fprintf(f, "%s\n    ", sep);
		json_str(f, v[i]->path);
		fprintf(f, ": %" PRIu64, v[i]->read_bytes);
		sep = ",";
	}
	fprintf(f, "%s}\n}\n", *sep ? "\n  " : "");
	pthread_mutex_unlock(&path_lock);
	pthread_mutex_unlock(&reset_lock);
	free(v);

	if (fclose(f) != 0 || rename(tmp, cfg.stats) != 0) {
		fuse_log(FUSE_LOG_ERR, "slowfs: writing %s: %s\n", cfg.stats, strerror(errno));
		unlink(tmp);
	}
	free(tmp);
	pthread_mutex_unlock(&write_lock);
}

static void reset_stats(void)
{
	pthread_mutex_lock(&reset_lock);
	for (int k = 0; k < NKINDS; k++)
		atomic_store(&counts[k], 0);
	atomic_store(&read_bytes, 0);
	atomic_store(&md_wait_ns, 0);
	atomic_store(&md_busy_ns, 0);
	atomic_store(&rd_sleep_ns, 0);
	atomic_store(&md_max_queue, 0);
	pthread_mutex_lock(&path_lock);
	for (size_t b = 0; b < PATH_BUCKETS; b++) {
		struct path_stat *p = path_tab[b], *next;
		for (; p; p = next) {
			next = p->next;
			free(p);
		}
		path_tab[b] = NULL;
	}
	path_n = 0;
	pthread_mutex_unlock(&path_lock);
	clock_gettime(CLOCK_MONOTONIC, &reset_time);
	pthread_mutex_unlock(&reset_lock);
}

static void *signal_thread(void *arg)
{
	sigset_t *set = arg;
	int sig;

	for (;;) {
		if (sigwait(set, &sig) != 0)
			continue;
		if (sig == SIGUSR2) {
			reset_stats();
			write_stats("reset");
		} else {
			write_stats("dump");
		}
	}
	return NULL;
}

/* ---------------------------------------------------------------- main */

/* Each open file and directory holds a descriptor: many ranks opening many files at once need
 * many.  Raise the limit as far as the system allows (root may go up to fs.nr_open). */
static void raise_nofile(void)
{
	struct rlimit rl;
	unsigned long nr_open = 1048576;
	FILE *f = fopen("/proc/sys/fs/nr_open", "r");

	if (f) {
		if (fscanf(f, "%lu", &nr_open) != 1)
			nr_open = 1048576;
		fclose(f);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	if (rl.rlim_max < nr_open) {
		struct rlimit want = {.rlim_cur = nr_open, .rlim_max = nr_open};
		if (setrlimit(RLIMIT_NOFILE, &want) == 0)
			return;
	}
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
}

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	(void)data;
	(void)outargs;
	if (key == FUSE_OPT_KEY_NONOPT && !cfg.source) {
		cfg.source = realpath(arg, NULL);
		if (!cfg.source) {
			fprintf(stderr, "slowfs: %s: %s\n", arg, strerror(errno));
			return -1;
		}
		return 0;
	}
	return 1;
}

static void usage(const char *prog)
{
	printf(
	    "usage: %s [options] SOURCE MOUNTPOINT\n\n"
	    "A read-only pass-through of SOURCE that counts requests and serialises metadata.\n\n"
	    "slowfs options:\n"
	    "    -o delay_us=N            service time of each metadata request (0)\n"
	    "    -o read_mbps=N           aggregate read bandwidth cap, 10^6 bytes/s (0 = none)\n"
	    "    -o entry_timeout=S       kernel dentry cache time (0)\n"
	    "    -o attr_timeout=S        kernel attribute cache time (0)\n"
	    "    -o negative_timeout=S    kernel negative dentry cache time (0)\n"
	    "    -o keep_cache            keep file data in the page cache across opens\n"
	    "    -o direct_io             bypass the page cache: every read(2) reaches slowfs\n"
	    "    -o no_default_permissions  let the file system, not the kernel, check access\n"
	    "    -o stats=FILE            counters as JSON: SIGUSR1 writes, SIGUSR2 resets\n"
	    "    -o pidfile=FILE          write the daemon's pid here once mounted\n"
	    "    -o threads=N             maximum worker threads (64)\n\n",
	    prog);
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts opts;
	struct fuse_session *se = NULL;
	struct fuse_loop_config *lc = NULL;
	struct stat st;
	sigset_t set;
	pthread_t tid;
	char *fsname = NULL;
	int ret = 1;

	memset(&opts, 0, sizeof(opts));
	if (fuse_opt_parse(&args, &cfg, sf_opts, opt_proc) == -1)
		return 1;
	if (fuse_parse_cmdline(&args, &opts) != 0)
		return 1;
	if (opts.show_help) {
		usage(argv[0]);
		fuse_cmdline_help();
		fuse_lowlevel_help();
		ret = 0;
		goto out;
	}
	if (opts.show_version) {
		printf("slowfs %s, FUSE library %s\n", SLOWFS_VERSION, fuse_pkgversion());
		ret = 0;
		goto out;
	}
	if (!cfg.source || !opts.mountpoint) {
		fprintf(stderr, "usage: %s [options] SOURCE MOUNTPOINT (--help for options)\n",
			argv[0]);
		goto out;
	}
	if (cfg.entry_timeout < 0 || cfg.attr_timeout < 0 || cfg.negative_timeout < 0 ||
	    cfg.threads < 1) {
		fprintf(stderr, "slowfs: timeouts must be >= 0 and threads >= 1\n");
		goto out;
	}
	raise_nofile();
	cfg.mountpoint = realpath(opts.mountpoint, NULL);
	if (lstat(cfg.source, &st) == -1 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "slowfs: %s: not a directory\n", cfg.source);
		goto out;
	}
	root.fd = open(cfg.source, O_PATH | O_CLOEXEC);
	if (root.fd == -1) {
		fprintf(stderr, "slowfs: %s: %s\n", cfg.source, strerror(errno));
		goto out;
	}
	root.dev = st.st_dev;
	root.ino = st.st_ino;
	root.path = "";
	root.nlookup = 2;

	if (asprintf(&fsname, "-ofsname=slowfs:%s,subtype=slowfs,ro%s", cfg.source,
		     cfg.no_default_permissions ? "" : ",default_permissions") < 0 ||
	    fuse_opt_add_arg(&args, fsname) != 0)
		goto out;

	se = fuse_session_new(&args, &sf_ops, sizeof(sf_ops), NULL);
	if (!se)
		goto out;
	if (fuse_set_signal_handlers(se) != 0)
		goto out;
	if (fuse_session_mount(se, opts.mountpoint) != 0)
		goto out_handlers;
	fuse_daemonize(opts.foreground);

	/* SIGUSR1/2 are taken by one thread with sigwait; block them before any thread exists so
	 * that every worker inherits the mask. */
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	clock_gettime(CLOCK_MONOTONIC, &reset_time);
	if (pthread_create(&tid, NULL, signal_thread, &set) != 0)
		goto out_unmount;
	if (cfg.pidfile) {
		FILE *pf = fopen(cfg.pidfile, "w");
		if (pf) {
			fprintf(pf, "%d\n", (int)getpid());
			fclose(pf);
		}
	}

	if (opts.singlethread) {
		ret = fuse_session_loop(se);
	} else {
		lc = fuse_loop_cfg_create();
		fuse_loop_cfg_set_clone_fd(lc, (unsigned)opts.clone_fd);
		fuse_loop_cfg_set_max_threads(lc, cfg.threads);
		fuse_loop_cfg_set_idle_threads(lc, cfg.threads);
		ret = fuse_session_loop_mt(se, lc);
		fuse_loop_cfg_destroy(lc);
	}
	ret = ret ? 1 : 0;
out_unmount:
	fuse_session_unmount(se);
	write_stats("unmount");
	if (cfg.pidfile)
		unlink(cfg.pidfile);
out_handlers:
	fuse_remove_signal_handlers(se);
out:
	if (se)
		fuse_session_destroy(se);
	free(opts.mountpoint);
	free(fsname);
	fuse_opt_free_args(&args);
	return ret;
}
