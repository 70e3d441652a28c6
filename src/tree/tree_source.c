#include "tree_source.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tar_stream.h"
#include "tree_frame.h"

#define CHUNK PL_FRAME_DATA_MAX

struct open_bundles {
	int fds[PL_FRAME_MAX_BUNDLES]; /* -1 for a directory */
	struct pl_frame_header h;
};

static int write_all(int fd, const void *buf, size_t n, char *msg, size_t len)
{
	const uint8_t *p = buf;

	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			snprintf(msg, len, "cannot pass the stream on: %s", strerror(errno));
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static bool is_zip(int fd)
{
	uint8_t magic[4];

	if (pread(fd, magic, sizeof(magic), 0) != (ssize_t)sizeof(magic))
		return false;
	return memcmp(magic, "PK\003\004", 4) == 0 || memcmp(magic, "PK\005\006", 4) == 0;
}

static int open_one(const char *path, int *fd, struct pl_frame_bundle *b, char *msg, size_t len)
{
	struct stat st;

	/* O_NONBLOCK: a FIFO swapped in since submission must not block us. */
	*fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (*fd < 0 || fstat(*fd, &st) < 0) {
		snprintf(msg, len, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (S_ISDIR(st.st_mode)) {
		close(*fd);
		*fd = -1;
		b->kind = PL_FRAME_DIRECTORY;
		b->size = PL_FRAME_SIZE_UNKNOWN;
		return 0;
	}
	if (!S_ISREG(st.st_mode) || st.st_size == 0 || is_zip(*fd)) {
		snprintf(msg, len, "%s: %s", path,
			 S_ISREG(st.st_mode) && st.st_size > 0
			     ? "a zip archive is not streamed through the tree"
			     : "not a non-empty regular file or directory");
		return -1;
	}
	b->kind = PL_FRAME_ARCHIVE;
	b->size = (uint64_t)st.st_size;
	return 0;
}

static void close_all(struct open_bundles *ob, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (ob->fds[i] >= 0)
			close(ob->fds[i]);
}

/* All are opened before the header goes out: it announces their sizes. */
static int open_all(const struct pl_tree_source *src, struct open_bundles *ob, char *msg,
		    size_t len)
{
	memset(&ob->h, 0, sizeof(ob->h));
	ob->h.job_id = src->job_id;
	snprintf(ob->h.key, sizeof(ob->h.key), "%s", src->key);
	ob->h.nbundles = (unsigned)src->bundles->n;
	for (size_t i = 0; i < src->bundles->n; i++) {
		if (open_one(src->bundles->paths[i], &ob->fds[i], &ob->h.bundles[i], msg, len) <
		    0) {
			close_all(ob, i + 1);
			return -1;
		}
	}
	return 0;
}

static int send_chunk(struct pl_frame_encoder *enc, unsigned i, const uint8_t *buf, size_t n,
		      int out, char *msg, size_t len)
{
	uint8_t head[PL_FRAME_HEAD_LEN];

	if (pl_frame_encoder_data(enc, i, buf, n, head, msg, len) < 0)
		return -1;
	if (write_all(out, head, sizeof(head), msg, len) < 0)
		return -1;
	return write_all(out, buf, n, msg, len);
}

/* Frames everything readable from fd as bundle i. */
static int send_from_fd(struct pl_frame_encoder *enc, unsigned i, int fd, const char *path, int out,
			uint8_t *buf, char *msg, size_t len)
{
	for (;;) {
		ssize_t n = read(fd, buf, CHUNK);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(msg, len, "%s: %s", path, strerror(errno));
			return -1;
		}
		if (n == 0)
			return 0;
		if (send_chunk(enc, i, buf, (size_t)n, out, msg, len) < 0)
			return -1;
	}
}

struct tar_job {
	const char *path;
	uint64_t max_bytes;
	int out;
};

static int tar_work(void *arg, char *msg, size_t len)
{
	struct tar_job *t = arg;
	uint64_t bytes = 0;

	return pl_tar_stream_directory(t->path, t->out, t->max_bytes, &bytes, msg, len);
}

/* A directory goes out as the tar stream a child of ours makes of it. */
static int send_directory(const struct pl_tree_source *src, struct pl_frame_encoder *enc,
			  unsigned i, uint8_t *buf, char *msg, size_t len)
{
	const char *path = src->bundles->paths[i];
	struct tar_job job = {.path = path, .max_bytes = src->max_bytes};
	struct pl_user_child tar;
	char why[PL_ERRLEN];
	int fds[2];
	int rc;

	if (pipe2(fds, O_CLOEXEC) < 0) {
		snprintf(msg, len, "pipe: %s", strerror(errno));
		return -1;
	}
	job.out = fds[1];
	rc = pl_spawn_as_user(src->user, tar_work, &job, fds[1], &tar, msg, len);
	close(fds[1]);
	if (rc == 0)
		rc = send_from_fd(enc, i, fds[0], path, src->out_fd, buf, msg, len);
	close(fds[0]);
	if (rc < 0) {
		pl_user_child_kill(&tar);
		return -1;
	}
	if (pl_user_child_finish(&tar, 0, why, sizeof(why)) < 0) {
		snprintf(msg, len, "%s: %s", path, why);
		return -1;
	}
	return 0;
}

static int send_bundles(const struct pl_tree_source *src, struct open_bundles *ob,
			struct pl_frame_encoder *enc, uint8_t *buf, char *msg, size_t len)
{
	for (unsigned i = 0; i < ob->h.nbundles; i++) {
		int rc = ob->fds[i] >= 0 ? send_from_fd(enc, i, ob->fds[i], src->bundles->paths[i],
							src->out_fd, buf, msg, len)
					 : send_directory(src, enc, i, buf, msg, len);
		if (rc < 0)
			return -1;
	}
	return 0;
}

static int send_session(const struct pl_tree_source *src, struct open_bundles *ob, uint8_t *buf,
			char *msg, size_t len)
{
	static struct pl_frame_encoder enc;
	size_t n;

	if (pl_frame_encoder_start(&enc, &ob->h, buf, CHUNK, &n, msg, len) < 0 ||
	    write_all(src->out_fd, buf, n, msg, len) < 0 ||
	    send_bundles(src, ob, &enc, buf, msg, len) < 0 ||
	    pl_frame_encoder_end(&enc, buf, CHUNK, &n, msg, len) < 0 ||
	    write_all(src->out_fd, buf, n, msg, len) < 0)
		return -1;
	snprintf(msg, len, "read %" PRIu64 " bytes", enc.d.total);
	return 0;
}

int pl_tree_source_work(void *arg, char *msg, size_t msglen)
{
	const struct pl_tree_source *src = arg;
	static uint8_t buf[CHUNK];
	struct open_bundles ob;
	int rc;

	if (open_all(src, &ob, msg, msglen) < 0)
		return -1;
	rc = send_session(src, &ob, buf, msg, msglen);
	close_all(&ob, src->bundles->n);
	return rc;
}
