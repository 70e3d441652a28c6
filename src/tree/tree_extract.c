#include "tree_extract.h"

#include <archive.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "extract.h"
#include "stage_tree.h"

#define READ_SIZE (256 * 1024)

/* The session as events, read from the pipe as needed. */
struct session_in {
	const struct pl_tree_extract *x;
	struct pl_frame_decoder dec;
	uint8_t buf[READ_SIZE];
	size_t pos, len;
	char err[PL_ERRLEN];
};

/* The layer being extracted: its bundle, and whether its bytes are all out. */
struct layer {
	struct session_in *in;
	unsigned bundle;
	bool ended;
};

static int refill(struct session_in *in)
{
	ssize_t n;

	do
		n = read(in->x->in_fd, in->buf, sizeof(in->buf));
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		snprintf(in->err, sizeof(in->err), "reading the stream: %s", strerror(errno));
		return -1;
	}
	if (n == 0) {
		pl_frame_decoder_eof(&in->dec, in->err, sizeof(in->err));
		return -1;
	}
	in->pos = 0;
	in->len = (size_t)n;
	return 0;
}

static int next_event(struct session_in *in, struct pl_frame_event_info *ev)
{
	for (;;) {
		size_t used = 0;
		int e;

		if (in->pos == in->len && refill(in) < 0)
			return PL_FRAME_ERROR;
		e = pl_frame_decode(&in->dec, in->buf + in->pos, in->len - in->pos, &used, ev,
				    in->err, sizeof(in->err));
		in->pos += used;
		if (e != PL_FRAME_MORE)
			return e;
	}
}

static la_ssize_t layer_read(struct archive *a, void *ctx, const void **out)
{
	struct layer *l = ctx;
	struct pl_frame_event_info ev;

	while (!l->ended) {
		int e = next_event(l->in, &ev);

		if (e == PL_FRAME_DATA) {
			*out = ev.data;
			return (la_ssize_t)ev.len;
		}
		if (e == PL_FRAME_BUNDLE_END)
			l->ended = true;
		else if (e != PL_FRAME_HEADER) {
			archive_set_error(a, EIO, "%s", l->in->err);
			return -1;
		}
	}
	return 0;
}

/* libarchive stops at the archive's end marker; what follows it in the bundle is read and
 * hashed all the same, for the digest. */
static int drain_layer(struct layer *l, char *msg, size_t len)
{
	const void *p;

	while (!l->ended)
		if (layer_read(NULL, l, &p) < 0) {
			snprintf(msg, len, "%s", l->in->err);
			return -1;
		}
	return 0;
}

/* Messages name the bundle as the user did, like those of the direct path. */
static const char *bundle_name(const struct layer *l)
{
	const struct pl_bundle_list *b = l->in->x->bundles;

	return l->bundle < b->n ? b->paths[l->bundle] : "?";
}

static int extract_layer(struct layer *l, int dirfd, const struct pl_extract_limits *lim,
			 struct pl_extract_stats *stats, char *msg, size_t len)
{
	struct archive *a = pl_archive_reader_new();
	char why[PL_ERRLEN];
	int rc;

	if (!a) {
		snprintf(msg, len, "out of memory");
		return -1;
	}
	if (archive_read_open(a, l, NULL, layer_read, NULL) != ARCHIVE_OK) {
		snprintf(msg, len, "%s: %s", bundle_name(l), archive_error_string(a));
		archive_read_free(a);
		return -1;
	}
	rc = pl_extract_archive(a, dirfd, lim, stats, why, sizeof(why));
	archive_read_free(a);
	if (rc < 0) {
		snprintf(msg, len, "%s: %s", bundle_name(l), why);
		return -1;
	}
	return drain_layer(l, msg, len);
}

static int check_free_space(const struct session_in *in, int dirfd, char *msg, size_t len)
{
	const struct pl_frame_header *h = &in->dec.h;
	struct statvfs vfs;
	uint64_t need = 0;

	for (unsigned i = 0; i < h->nbundles; i++)
		if (h->bundles[i].size != PL_FRAME_SIZE_UNKNOWN)
			need += h->bundles[i].size;
	if (fstatvfs(dirfd, &vfs) < 0 || (uint64_t)vfs.f_bavail * vfs.f_frsize >= need)
		return 0;
	snprintf(msg, len,
		 "%s: not enough space on the stage file system: %" PRIu64
		 " bytes free, the archives alone are %" PRIu64 " bytes",
		 in->x->bundles->paths[0], (uint64_t)vfs.f_bavail * vfs.f_frsize, need);
	return -1;
}

static int expect_event(struct session_in *in, int want, char *msg, size_t len)
{
	struct pl_frame_event_info ev;
	int e = next_event(in, &ev);

	if (e == want)
		return 0;
	snprintf(msg, len, "%s", e == PL_FRAME_ERROR ? in->err : "unexpected frame in the stream");
	return -1;
}

static int fill_from_stream(void *ctx, int dirfd, const struct pl_extract_limits *lim,
			    struct pl_extract_stats *stats, uint64_t *bytes_read, char *msg,
			    size_t len)
{
	struct session_in *in = ctx;

	if (expect_event(in, PL_FRAME_HEADER, msg, len) < 0 ||
	    check_free_space(in, dirfd, msg, len) < 0)
		return -1;
	for (unsigned i = 0; i < in->dec.h.nbundles; i++) {
		struct layer l = {.in = in, .bundle = i};

		if (extract_layer(&l, dirfd, lim, stats, msg, len) < 0)
			return -1;
	}
	if (expect_event(in, PL_FRAME_END, msg, len) < 0)
		return -1;
	*bytes_read = in->dec.d.total; /* received, not read from the shared file system */
	return 0;
}

int pl_tree_extract_work(void *arg, char *msg, size_t msglen)
{
	const struct pl_tree_extract *x = arg;
	static struct session_in in;
	struct pl_stage_fill fill = {.fn = fill_from_stream,
				     .ctx = &in,
				     .max_bytes = x->max_bytes,
				     .max_entries = x->max_entries,
				     .nbundles = x->bundles->n};

	memset(&in, 0, sizeof(in));
	in.x = x;
	pl_frame_decoder_init(&in.dec, x->job_id, x->key, x->max_bytes);
	pl_frame_decoder_trust_digests(&in.dec);
	return pl_stage_make_tree(x->tree, &fill, NULL, msg, msglen);
}
