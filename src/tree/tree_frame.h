/* The wire format of one fan-out session: what a parent sends a child over a byte stream.
 * Pure: no I/O, no allocation; errors come back as one line in a caller buffer.
 *
 * A session carries the bundles of one staging (1..PL_FRAME_MAX_BUNDLES, in order) from the root
 * down the tree. Every node forwards the bytes it received unchanged, so the stream is the same
 * byte for byte on every edge of the tree: a child that lost its parent can continue at its byte
 * offset from any ancestor that still has those bytes. Integers are big-endian.
 *
 *   HEADER  "PYLT"  u8 version (1)  u8 nbundles  u16 0  u32 job id  16 bytes session key
 *           then per bundle i: u8 kind  u8 0  u16 index (= i)  u64 size (or PL_FRAME_SIZE_UNKNOWN)
 *   DATA    'D'  u8 0  u16 bundle  u32 length (1..PL_FRAME_DATA_MAX)  payload
 *   END     'E'  u8 0  u16 nbundles  u32 body length (40 * nbundles + 32)
 *           body: per bundle: u64 size  32 bytes SHA-256 of its payload;  32 bytes session digest
 *
 * DATA frames carry the bundles' bytes in order: bundle 0 first, then 1, ...; a bundle's frames
 * are contiguous and every bundle has at least one byte (an archive or a tar stream is never
 * empty). The header announces each bundle's size where the root knows it (an archive file: its
 * size when opened); a directory is archived on the fly, so its size is unknown until its END.
 * The digests are in the END frame, not the header, because the root learns them only as it
 * streams: computing them first would mean reading every bundle twice from the shared file
 * system, which is what the tree exists to avoid.
 *
 * Digests: a bundle's digest is the SHA-256 of its payload bytes (for an archive file, what
 * sha256sum prints for it). The header digest is the SHA-256 of the HEADER bytes. The session
 * digest is the SHA-256 of the HEADER bytes followed by the END body's bundle table (each size
 * and digest): it commits to the job, the session key, the kinds, the announced sizes and every
 * payload byte, while each payload byte is hashed only once. The seal credential at the end of a
 * connection binds the session digest (tree_auth.h). */
#ifndef PL_TREE_FRAME_H
#define PL_TREE_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sha256.h"

#define PL_FRAME_MAGIC "PYLT"
#define PL_FRAME_VERSION 1
/* As many as --pybundle accepts (PL_MAX_BUNDLES). */
#define PL_FRAME_MAX_BUNDLES 32
/* Large enough that per-frame costs vanish, small enough to pipeline: a child forwards a frame's
 * bytes as they arrive anyway, so the size bounds only what one frame can claim. */
#define PL_FRAME_DATA_MAX (1u << 20)
/* The session key is the bundle key of the staging (PL_KEY_LEN lower-case hex digits). */
#define PL_FRAME_KEY_LEN 16
#define PL_FRAME_SIZE_UNKNOWN UINT64_MAX

#define PL_FRAME_HEAD_LEN 8 /* DATA and END frame heads */
#define PL_FRAME_HEADER_FIXED 28
#define PL_FRAME_HEADER_ENTRY 12
#define PL_FRAME_END_ENTRY (8 + PL_SHA256_LEN)
#define PL_FRAME_HEADER_MAX (PL_FRAME_HEADER_FIXED + PL_FRAME_HEADER_ENTRY * PL_FRAME_MAX_BUNDLES)
#define PL_FRAME_END_MAX                                                                           \
	(PL_FRAME_HEAD_LEN + PL_FRAME_END_ENTRY * PL_FRAME_MAX_BUNDLES + PL_SHA256_LEN)

enum pl_frame_kind {
	PL_FRAME_ARCHIVE = 1,	/* an archive file, its bytes as they are */
	PL_FRAME_DIRECTORY = 2, /* a directory, as the tar stream the root makes of it */
};

struct pl_frame_bundle {
	enum pl_frame_kind kind;
	uint64_t size; /* announced size, or PL_FRAME_SIZE_UNKNOWN */
};

struct pl_frame_header {
	uint32_t job_id;
	char key[PL_FRAME_KEY_LEN + 1];
	unsigned nbundles;
	struct pl_frame_bundle bundles[PL_FRAME_MAX_BUNDLES];
};

/* Bytes of the HEADER and of the whole END frame for n bundles. */
size_t pl_frame_header_len(unsigned nbundles);
size_t pl_frame_end_len(unsigned nbundles);

/* What both ends learn of a session. Read-only for callers. */
struct pl_frame_digests {
	uint8_t header[PL_SHA256_LEN];			      /* once the header is made/accepted */
	uint64_t sizes[PL_FRAME_MAX_BUNDLES];		      /* payload bytes so far */
	uint8_t bundles[PL_FRAME_MAX_BUNDLES][PL_SHA256_LEN]; /* each at its bundle's end */
	uint8_t session[PL_SHA256_LEN];			      /* at END */
	uint64_t total;					      /* payload bytes, all bundles */
};

/* ---------------------------------------------------------------- sending (the root) */

/* The root makes a session: the HEADER, then for each chunk it read the head of a DATA frame (it
 * sends the head, then the chunk itself: no copy), then END. The encoder applies the decoder's
 * rules, so what it lets through a child accepts; e.g. a file that grew past its announced size
 * since it was opened fails here, at the root. Read-only fields for callers: d. */
struct pl_frame_encoder {
	struct pl_frame_header h;
	struct pl_frame_digests d;
	int current; /* bundle being sent, -1 before the first DATA */
	bool ended;
	struct pl_sha256 bundle_sha, session_sha;
};

/* Checks h and writes the HEADER (pl_frame_header_len(h->nbundles) bytes) into buf. */
int pl_frame_encoder_start(struct pl_frame_encoder *enc, const struct pl_frame_header *h,
			   uint8_t *buf, size_t cap, size_t *len, char *err, size_t errlen);
/* Accounts payload[0..n) (1 <= n <= PL_FRAME_DATA_MAX) to bundle and writes the DATA frame's
 * head; the caller sends head, then payload. A bundle ends when the next one starts or at END. */
int pl_frame_encoder_data(struct pl_frame_encoder *enc, unsigned bundle, const void *payload,
			  size_t n, uint8_t head[PL_FRAME_HEAD_LEN], char *err, size_t errlen);
/* After the last bundle's last chunk: writes the END frame (pl_frame_end_len() bytes). */
int pl_frame_encoder_end(struct pl_frame_encoder *enc, uint8_t *buf, size_t cap, size_t *len,
			 char *err, size_t errlen);

/* Frees the digest contexts of a session given up before its END (END frees them itself);
 * the encoder may then be started again. */
void pl_frame_encoder_free(struct pl_frame_encoder *enc);

/* ---------------------------------------------------------------- receiving (every other node) */

enum pl_frame_event {
	PL_FRAME_ERROR = -1,
	PL_FRAME_MORE = 0,   /* the input is used up without an event: feed more */
	PL_FRAME_HEADER,     /* the header is accepted: dec->h and dec->d.header are valid */
	PL_FRAME_DATA,	     /* ev->len payload bytes of bundle ev->bundle at ev->data */
	PL_FRAME_BUNDLE_END, /* bundle ev->bundle has no more bytes (verified only at END) */
	PL_FRAME_END,	     /* every size and digest is verified: the session is complete */
};

struct pl_frame_event_info {
	unsigned bundle;
	const uint8_t *data; /* points into the caller's input */
	size_t len;
};

enum pl_frame_state {
	PL_FRAME_IN_HEADER,
	PL_FRAME_IN_HEAD,
	PL_FRAME_IN_PAYLOAD,
	PL_FRAME_IN_END,
	PL_FRAME_DONE,
	PL_FRAME_FAILED,
};

/* Read-only fields for callers: h (after HEADER), d, offset. */
struct pl_frame_decoder {
	uint32_t want_job;
	char want_key[PL_FRAME_KEY_LEN + 1];
	uint64_t max_total;
	enum pl_frame_state state;
	uint64_t offset; /* stream bytes consumed: where a resumed connection continues */
	struct pl_frame_header h;
	struct pl_frame_digests d;
	int current;	  /* bundle of the last DATA frame, -1 before the first */
	uint32_t payload; /* bytes of the current DATA frame still to come */
	size_t need;	  /* bytes acc must hold before the next step */
	size_t have;
	uint8_t acc[PL_FRAME_END_MAX];
	struct pl_sha256 bundle_sha, session_sha;
	bool digests_verified_upstream; /* see pl_frame_decoder_trust_digests */
};

/* A decoder for a session of job job_id under key (PL_FRAME_KEY_LEN hex digits); a stream for
 * another job or key is refused. max_total bounds the payload bytes of all bundles (the caller's
 * stage.max_size, say); 0 means no bound. */
void pl_frame_decoder_init(struct pl_frame_decoder *dec, uint32_t job_id, const char *key,
			   uint64_t max_total);

/* For a reader that only ever sees a stream another decoder has accepted: the node's extractor,
 * fed by its tree process, which appends nothing its own decoder refused and passes END on only
 * once sealed (pl_frame_release_limit), so END reaches the extractor only after every digest and
 * the seal were verified. Payload is then not hashed again (a second
 * SHA-256 pass per node is a sixth of a node's staging CPU at 4 nodes on 2 cores); sizes, order
 * and framing are still checked. */
void pl_frame_decoder_trust_digests(struct pl_frame_decoder *dec);

/* Feeds in[0..len) in any pieces, down to a byte at a time. Consumes bytes up to the next event
 * and returns it, with *used the bytes consumed (<= len): call again with the rest. Never reads
 * past len, and never past the END frame: bytes after it (the seal credential) are left for the
 * caller. A node forwards in[0..*used) to its children after every call that did not fail: the
 * stream goes on down the tree as it arrives, and each child verifies it at END for itself. On
 * error (-1, a line in err) the decoder accepts nothing more: the node drops the session (and its
 * children's connections). Once END is returned, further calls with len 0 return PL_FRAME_END
 * again; any further byte is an error. */
int pl_frame_decode(struct pl_frame_decoder *dec, const uint8_t *in, size_t len, size_t *used,
		    struct pl_frame_event_info *ev, char *err, size_t errlen);

/* Frees the digest contexts of a session given up before its END (END and errors free them);
 * the decoder may then be initialised again. */
void pl_frame_decoder_free(struct pl_frame_decoder *dec);

/* The connection closed before END: says where the stream stopped, for the node's log line
 * ("the stream stopped at offset 1234, in bundle 1 after 1000 bytes"). */
void pl_frame_decoder_eof(const struct pl_frame_decoder *dec, char *err, size_t errlen);

/* How many of the received bytes of a session a node may pass to its extractor. The END frame
 * completes a session for the extractor (then it declares the tree staged and runs the user's
 * conda-unpack), but END is consistent with whatever stream carried it: only the seal (or the
 * root's own reader) vouches for it. So until sealed the last pl_frame_end_len() bytes received
 * are held back (before END they are bundle bytes that the next ones release), and nothing
 * before the header is known. */
uint64_t pl_frame_release_limit(uint64_t received, const struct pl_frame_decoder *dec,
				bool header_known, bool sealed);

/* Is key PL_FRAME_KEY_LEN lower-case hex digits? */
bool pl_frame_key_valid(const char *key);

#endif
