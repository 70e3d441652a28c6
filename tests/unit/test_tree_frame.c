/* Unit tests of src/tree/tree_frame.c: the session stream of the tree fan-out, sent and received.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above first. */
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sha256.h"
#include "tree_frame.h"

#define KEY "0123456789abcdef"
#define OTHER_KEY "fedcba9876543210"
#define JOB 4242
#define ERRLEN 512
/* Header of a one-bundle session: DATA frames start here. */
#define AFTER_HEADER1 (PL_FRAME_HEADER_FIXED + PL_FRAME_HEADER_ENTRY)
#define AFTER_HEADER2 (PL_FRAME_HEADER_FIXED + 2 * PL_FRAME_HEADER_ENTRY)

struct stream {
	uint8_t *p;
	size_t len, cap;
};

static void put(struct stream *s, const void *data, size_t n)
{
	if (s->len + n > s->cap) {
		s->cap = (s->len + n) * 2;
		s->p = realloc(s->p, s->cap);
		assert_non_null(s->p);
	}
	memcpy(s->p + s->len, data, n);
	s->len += n;
}

static void put_head(struct stream *s, char type, unsigned field, uint32_t length)
{
	uint8_t h[PL_FRAME_HEAD_LEN] = {(uint8_t)type,		 0,
					(uint8_t)(field >> 8),	 (uint8_t)field,
					(uint8_t)(length >> 24), (uint8_t)(length >> 16),
					(uint8_t)(length >> 8),	 (uint8_t)length};

	put(s, h, sizeof(h));
}

static uint8_t *pseudo_random(size_t n, uint32_t seed)
{
	uint8_t *p = malloc(n ? n : 1);
	uint32_t x = seed | 1;

	assert_non_null(p);
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (uint8_t)x;
	}
	return p;
}

struct src {
	enum pl_frame_kind kind;
	bool announce; /* size in the header, or unknown */
	const uint8_t *data;
	size_t len;
};

static void header_of(struct pl_frame_header *h, const struct src *b, unsigned n)
{
	memset(h, 0, sizeof(*h));
	h->job_id = JOB;
	strcpy(h->key, KEY);
	h->nbundles = n;
	for (unsigned i = 0; i < n; i++) {
		h->bundles[i].kind = b[i].kind;
		h->bundles[i].size = b[i].announce ? b[i].len : PL_FRAME_SIZE_UNKNOWN;
	}
}

/* A whole session as the root sends it, chunk payload bytes per DATA frame. */
static void encode_session(struct stream *s, struct pl_frame_encoder *enc, const struct src *b,
			   unsigned n, size_t chunk)
{
	struct pl_frame_header h;
	uint8_t buf[PL_FRAME_END_MAX], head[PL_FRAME_HEAD_LEN];
	size_t len;
	char err[ERRLEN];

	header_of(&h, b, n);
	if (pl_frame_encoder_start(enc, &h, buf, sizeof(buf), &len, err, sizeof(err)) < 0)
		fail_msg("start: %s", err);
	put(s, buf, len);
	for (unsigned i = 0; i < n; i++) {
		for (size_t off = 0; off < b[i].len; off += chunk) {
			size_t c = b[i].len - off < chunk ? b[i].len - off : chunk;

			if (pl_frame_encoder_data(enc, i, b[i].data + off, c, head, err,
						  sizeof(err)) < 0)
				fail_msg("data: %s", err);
			put(s, head, sizeof(head));
			put(s, b[i].data + off, c);
		}
	}
	if (pl_frame_encoder_end(enc, buf, sizeof(buf), &len, err, sizeof(err)) < 0)
		fail_msg("end: %s", err);
	put(s, buf, len);
}

struct received {
	struct stream bundle[PL_FRAME_MAX_BUNDLES];
	char events[256];
	int last_data; /* bundle of the last logged DATA */
	size_t consumed;
};

/* " D0", " B1", "H", " E": what, and for D and B which bundle. */
static void log_event(struct received *r, char what, unsigned bundle)
{
	size_t n = strlen(r->events);

	if (what == 'D' || what == 'B')
		snprintf(r->events + n, sizeof(r->events) - n, " %c%u", what, bundle);
	else
		snprintf(r->events + n, sizeof(r->events) - n, "%s%c", n ? " " : "", what);
}

/* Records an event; consecutive DATA of one bundle count once, so the log does not depend on how
 * the stream was cut. */
static void record(struct received *r, int rc, const struct pl_frame_event_info *ev)
{
	switch (rc) {
	case PL_FRAME_HEADER:
		log_event(r, 'H', 0);
		break;
	case PL_FRAME_DATA:
		assert_true(ev->len > 0);
		put(&r->bundle[ev->bundle], ev->data, ev->len);
		if (r->last_data != (int)ev->bundle)
			log_event(r, 'D', ev->bundle);
		r->last_data = (int)ev->bundle;
		break;
	case PL_FRAME_BUNDLE_END:
		log_event(r, 'B', ev->bundle);
		break;
	case PL_FRAME_END:
		log_event(r, 'E', 0);
		break;
	default:
		break;
	}
}

/* Feeds p[0..len) piece bytes at a time (the last piece may be shorter) until END or an error;
 * returns the last result. */
static int decode_pieces(struct pl_frame_decoder *dec, const uint8_t *p, size_t len, size_t piece,
			 struct received *r, char *err, size_t errlen)
{
	int rc = PL_FRAME_MORE;

	memset(r, 0, sizeof(*r));
	r->last_data = -1;
	for (size_t off = 0; off < len && rc != PL_FRAME_END && rc != PL_FRAME_ERROR;) {
		size_t n = len - off < piece ? len - off : piece, used;

		do {
			struct pl_frame_event_info ev;

			rc = pl_frame_decode(dec, p + off, n, &used, &ev, err, errlen);
			assert_true(used <= n);
			record(r, rc, &ev);
			off += used;
			n -= used;
			r->consumed += used;
		} while (n > 0 && rc != PL_FRAME_ERROR && rc != PL_FRAME_END);
	}
	return rc;
}

static void received_free(struct received *r)
{
	for (unsigned i = 0; i < PL_FRAME_MAX_BUNDLES; i++)
		free(r->bundle[i].p);
}

static void assert_received(const struct received *r, const struct src *b, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(r->bundle[i].len, b[i].len);
		assert_memory_equal(r->bundle[i].p, b[i].data, b[i].len);
	}
}

/* The stream is refused with want, both fed whole and a byte at a time. */
static void assert_refused_with(const uint8_t *p, size_t len, uint64_t max_total, const char *want)
{
	static const size_t pieces[] = {1, 3, SIZE_MAX};

	for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
		struct pl_frame_decoder dec;
		struct received r;
		char err[ERRLEN] = "";

		pl_frame_decoder_init(&dec, JOB, KEY, max_total);
		assert_int_equal(decode_pieces(&dec, p, len, pieces[i], &r, err, sizeof(err)),
				 PL_FRAME_ERROR);
		assert_string_equal(err, want);
		received_free(&r);
	}
}

/* ---------------------------------------------------------------- round trips */

static void test_round_trip_one_bundle(void **state)
{
	static const size_t sizes[] = {1, 100, PL_FRAME_DATA_MAX, PL_FRAME_DATA_MAX + 1};

	(void)state;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint8_t *data = pseudo_random(sizes[i], (uint32_t)i + 1);
		struct src b = {PL_FRAME_ARCHIVE, true, data, sizes[i]};
		struct stream s = {0};
		struct pl_frame_encoder enc;
		struct pl_frame_decoder dec;
		struct received r;
		uint8_t want[PL_SHA256_LEN];
		char err[ERRLEN];

		encode_session(&s, &enc, &b, 1, PL_FRAME_DATA_MAX);
		pl_frame_decoder_init(&dec, JOB, KEY, 0);
		assert_int_equal(decode_pieces(&dec, s.p, s.len, SIZE_MAX, &r, err, sizeof(err)),
				 PL_FRAME_END);
		assert_string_equal(r.events, "H D0 B0 E");
		assert_received(&r, &b, 1);
		assert_int_equal(r.consumed, s.len);
		assert_int_equal(dec.offset, s.len);
		/* Both ends agree on every digest; a bundle's is its bytes' plain SHA-256. */
		pl_sha256(data, sizes[i], want);
		assert_memory_equal(enc.d.bundles[0], want, PL_SHA256_LEN);
		assert_memory_equal(dec.d.bundles[0], want, PL_SHA256_LEN);
		assert_memory_equal(dec.d.header, enc.d.header, PL_SHA256_LEN);
		assert_memory_equal(dec.d.session, enc.d.session, PL_SHA256_LEN);
		assert_int_equal(dec.d.total, sizes[i]);
		assert_int_equal(dec.d.sizes[0], sizes[i]);
		assert_int_equal(dec.h.nbundles, 1);
		assert_int_equal(dec.h.bundles[0].size, sizes[i]);
		received_free(&r);
		free(s.p);
		free(data);
	}
}

/* Three bundles (an announced archive, a directory stream of unknown size, another archive),
 * frames of odd sizes, fed whole, a byte at a time and in odd pieces: the same bytes, the same
 * events, the same digests. */
static void test_round_trip_any_feeding(void **state)
{
	static const size_t pieces[] = {1, 2, 3, 7, 8, 9, 64, 4097, 65537, SIZE_MAX};
	uint8_t *a = pseudo_random(70000, 1), *b = pseudo_random(12345, 2),
		*c = pseudo_random(3, 3);
	struct src src[3] = {{PL_FRAME_ARCHIVE, true, a, 70000},
			     {PL_FRAME_DIRECTORY, false, b, 12345},
			     {PL_FRAME_ARCHIVE, true, c, 3}};
	struct stream s = {0};
	struct pl_frame_encoder enc;

	(void)state;
	encode_session(&s, &enc, src, 3, 10007);
	for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
		struct pl_frame_decoder dec;
		struct received r;
		char err[ERRLEN];

		pl_frame_decoder_init(&dec, JOB, KEY, 0);
		if (decode_pieces(&dec, s.p, s.len, pieces[i], &r, err, sizeof(err)) !=
		    PL_FRAME_END)
			fail_msg("pieces of %zu: %s", pieces[i], err);
		assert_string_equal(r.events, "H D0 B0 D1 B1 D2 B2 E");
		assert_received(&r, src, 3);
		assert_memory_equal(dec.d.session, enc.d.session, PL_SHA256_LEN);
		assert_int_equal(dec.d.total, 70000 + 12345 + 3);
		assert_int_equal(dec.h.bundles[1].kind, PL_FRAME_DIRECTORY);
		assert_int_equal(dec.h.bundles[1].size, PL_FRAME_SIZE_UNKNOWN);
		received_free(&r);
	}
	free(s.p);
	free(a);
	free(b);
	free(c);
}

/* The digests are what the format promises: the header digest is that of the header bytes, the
 * session digest that of the header and the END frame's bundle table. */
static void test_digest_definitions(void **state)
{
	uint8_t *a = pseudo_random(5000, 9), *b = pseudo_random(77, 10);
	struct src src[2] = {{PL_FRAME_ARCHIVE, true, a, 5000}, {PL_FRAME_DIRECTORY, false, b, 77}};
	struct stream s = {0};
	struct pl_frame_encoder enc;
	struct pl_sha256 ctx = {0};
	uint8_t want[PL_SHA256_LEN];
	size_t end = pl_frame_end_len(2);

	(void)state;
	encode_session(&s, &enc, src, 2, 1000);
	pl_sha256(s.p, AFTER_HEADER2, want);
	assert_memory_equal(enc.d.header, want, PL_SHA256_LEN);
	pl_sha256_init(&ctx);
	pl_sha256_update(&ctx, s.p, AFTER_HEADER2);
	pl_sha256_update(&ctx, s.p + s.len - end + PL_FRAME_HEAD_LEN, 2 * PL_FRAME_END_ENTRY);
	pl_sha256_final(&ctx, want);
	assert_memory_equal(enc.d.session, want, PL_SHA256_LEN);
	assert_memory_equal(s.p + s.len - PL_SHA256_LEN, want, PL_SHA256_LEN);
	free(s.p);
	free(a);
	free(b);
}

/* The decoder stops at the END frame: what follows (the seal credential) is the caller's. */
static void test_never_reads_past_end(void **state)
{
	uint8_t *a = pseudo_random(300, 4);
	struct src src = {PL_FRAME_ARCHIVE, true, a, 300};
	struct stream s = {0};
	struct pl_frame_encoder enc;
	struct pl_frame_decoder dec;
	struct pl_frame_event_info ev;
	size_t session_len, pos = 0, used;
	int rc = PL_FRAME_MORE;
	char err[ERRLEN];

	(void)state;
	encode_session(&s, &enc, &src, 1, 128);
	session_len = s.len;
	put(&s, "SEAL-CREDENTIAL", 15);
	pl_frame_decoder_init(&dec, JOB, KEY, 0);
	while (rc != PL_FRAME_END) {
		rc = pl_frame_decode(&dec, s.p + pos, s.len - pos, &used, &ev, err, sizeof(err));
		assert_int_not_equal(rc, PL_FRAME_ERROR);
		pos += used;
	}
	assert_int_equal(pos, session_len);
	assert_int_equal(dec.offset, session_len);
	/* Done: nothing more is wanted, and more is an error. */
	assert_int_equal(pl_frame_decode(&dec, s.p + pos, 0, &used, &ev, err, sizeof(err)),
			 PL_FRAME_END);
	assert_int_equal(used, 0);
	assert_int_equal(pl_frame_decode(&dec, s.p + pos, 1, &used, &ev, err, sizeof(err)),
			 PL_FRAME_ERROR);
	assert_string_equal(err, "bytes after the end of the session");
	assert_int_equal(pl_frame_decode(&dec, s.p + pos, 0, &used, &ev, err, sizeof(err)),
			 PL_FRAME_ERROR);
	assert_string_equal(err, "the session already failed");
	free(s.p);
	free(a);
}

/* A node that lost its parent continues at its offset with bytes from another ancestor: the
 * stream is the same everywhere, so the decoder just goes on, wherever the cut fell. */
static void test_resume_at_any_offset(void **state)
{
	uint8_t *a = pseudo_random(3000, 5), *b = pseudo_random(500, 6);
	struct src src[2] = {{PL_FRAME_ARCHIVE, true, a, 3000},
			     {PL_FRAME_DIRECTORY, false, b, 500}};
	struct stream s = {0};
	struct pl_frame_encoder enc;

	(void)state;
	encode_session(&s, &enc, src, 2, 1000);
	for (size_t cut = 0; cut <= s.len; cut += 37) {
		struct pl_frame_decoder dec;
		struct pl_frame_event_info ev;
		struct stream copy = {0};
		size_t pos = 0, used;
		int rc = PL_FRAME_MORE;
		char err[ERRLEN];

		pl_frame_decoder_init(&dec, JOB, KEY, 0);
		/* From the parent, up to the cut... */
		while (pos < cut) {
			rc = pl_frame_decode(&dec, s.p + pos, cut - pos, &used, &ev, err,
					     sizeof(err));
			assert_int_not_equal(rc, PL_FRAME_ERROR);
			pos += used;
		}
		assert_int_equal(dec.offset, cut);
		/* ...then from the grandparent, its own copy from that offset on. */
		put(&copy, s.p + dec.offset, s.len - dec.offset);
		pos = 0;
		while (rc != PL_FRAME_END) {
			rc = pl_frame_decode(&dec, copy.p + pos, copy.len - pos, &used, &ev, err,
					     sizeof(err));
			assert_int_not_equal(rc, PL_FRAME_ERROR);
			pos += used;
		}
		assert_memory_equal(dec.d.session, enc.d.session, PL_SHA256_LEN);
		free(copy.p);
	}
	free(s.p);
	free(a);
	free(b);
}

/* A connection that closes early leaves the decoder waiting; the log line says where. */
static void test_truncated_stream(void **state)
{
	uint8_t *a = pseudo_random(3000, 13);
	struct src src[2] = {{PL_FRAME_ARCHIVE, true, a, 1000},
			     {PL_FRAME_DIRECTORY, false, a, 2000}};
	struct stream s = {0};
	struct pl_frame_encoder enc;
	static const struct {
		size_t cut;
		const char *want;
	} cases[] = {
	    {0, "the stream stopped at offset 0, in the header"},
	    {3, "the stream stopped at offset 3, in the header"},
	    {AFTER_HEADER2, "the stream stopped at offset 52, before any data"},
	    {AFTER_HEADER2 + 5, "the stream stopped at offset 57, before any data"},
	    {AFTER_HEADER2 + 8 + 700,
	     "the stream stopped at offset 760, in bundle 0 after 700 bytes"},
	    {AFTER_HEADER2 + 8 + 1000 + 8 + 1,
	     "the stream stopped at offset 1069, in bundle 1 after 1 bytes"},
	    {AFTER_HEADER2 + 8 + 1000 + 8 + 2000 + 8 + 1,
	     "the stream stopped at offset 3077, in its END frame"},
	};

	(void)state;
	encode_session(&s, &enc, src, 2, 2000);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct pl_frame_decoder dec;
		struct received r;
		char err[ERRLEN];

		pl_frame_decoder_init(&dec, JOB, KEY, 0);
		if (cases[i].cut > 0)
			assert_int_not_equal(
			    decode_pieces(&dec, s.p, cases[i].cut, 1, &r, err, sizeof(err)),
			    PL_FRAME_ERROR);
		pl_frame_decoder_eof(&dec, err, sizeof(err));
		pl_frame_decoder_free(&dec);
		assert_string_equal(err, cases[i].want);
		if (cases[i].cut > 0)
			received_free(&r);
	}
	free(s.p);
	free(a);
}

/* ---------------------------------------------------------------- refusals */

/* A valid one-bundle session of 10 announced bytes, as a base to damage. */
static void base_session(struct stream *s)
{
	static const uint8_t ten[10] = "0123456789";
	struct src src = {PL_FRAME_ARCHIVE, true, ten, 10};
	struct pl_frame_encoder enc;

	memset(s, 0, sizeof(*s));
	encode_session(s, &enc, &src, 1, 10);
}

static void test_refuses_strangers(void **state)
{
	static const char http[] = "GET / HTTP/1.1\r\n\r\n";
	struct stream s;

	(void)state;
	assert_refused_with((const uint8_t *)http, sizeof(http) - 1, 0,
			    "not a pylaunch tree stream (bad magic)");
	assert_refused_with((const uint8_t *)"PYLX", 4, 0,
			    "not a pylaunch tree stream (bad magic)");
	base_session(&s);
	s.p[4] = 2;
	assert_refused_with(s.p, s.len, 0, "stream version 2 (this node speaks 1)");
	free(s.p);
}

static void test_refuses_other_job_and_session(void **state)
{
	struct stream s;

	(void)state;
	base_session(&s);
	s.p[11] ^= 1; /* job id 4242 -> 4243 */
	assert_refused_with(s.p, s.len, 0, "stream is for job 4243, not 4242");
	s.p[11] ^= 1;
	memcpy(s.p + 12, OTHER_KEY, PL_FRAME_KEY_LEN);
	assert_refused_with(s.p, s.len, 0,
			    "stream is for session fedcba9876543210, not 0123456789abcdef");
	memcpy(s.p + 12, "0123456789ABCDEF", PL_FRAME_KEY_LEN);
	assert_refused_with(s.p, s.len, 0, "malformed session key in the header");
	memcpy(s.p + 12, "0123456789abcd\n\0", PL_FRAME_KEY_LEN);
	assert_refused_with(s.p, s.len, 0, "malformed session key in the header");
	free(s.p);
}

static void test_refuses_bad_headers(void **state)
{
	struct stream s;

	(void)state;
	base_session(&s);
	s.p[5] = 0;
	assert_refused_with(s.p, s.len, 0, "header announces 0 bundles (1 to 32 allowed)");
	s.p[5] = 33;
	assert_refused_with(s.p, s.len, 0, "header announces 33 bundles (1 to 32 allowed)");
	s.p[5] = 1;
	s.p[7] = 1;
	assert_refused_with(s.p, s.len, 0, "header: reserved bytes are not zero");
	s.p[7] = 0;
	s.p[PL_FRAME_HEADER_FIXED] = 7;
	assert_refused_with(s.p, s.len, 0, "header: bundle 0: unknown kind 7");
	s.p[PL_FRAME_HEADER_FIXED] = 0;
	assert_refused_with(s.p, s.len, 0, "header: bundle 0: unknown kind 0");
	s.p[PL_FRAME_HEADER_FIXED] = PL_FRAME_ARCHIVE;
	s.p[PL_FRAME_HEADER_FIXED + 1] = 1;
	assert_refused_with(s.p, s.len, 0, "header: bundle 0: reserved byte is not zero");
	s.p[PL_FRAME_HEADER_FIXED + 1] = 0;
	s.p[PL_FRAME_HEADER_FIXED + 3] = 5;
	assert_refused_with(s.p, s.len, 0, "header: bundle 0 has index 5");
	s.p[PL_FRAME_HEADER_FIXED + 3] = 0;
	s.p[PL_FRAME_HEADER_FIXED + 11] = 0; /* size 10 -> 0 */
	assert_refused_with(s.p, s.len, 0, "header: bundle 0: announced size 0");
	s.p[PL_FRAME_HEADER_FIXED + 11] = 10;
	assert_refused_with(s.p, s.len, 9,
			    "header: bundles announce more than the limit of 9 bytes");
	free(s.p);
}

/* A header for n bundles of 10 announced bytes each (size 0 in sizes[i] means unknown). */
static void raw_header(struct stream *s, unsigned n, const uint64_t *sizes)
{
	struct pl_frame_header h;
	struct pl_frame_encoder enc;
	uint8_t buf[PL_FRAME_HEADER_MAX];
	size_t len;
	char err[ERRLEN];

	memset(s, 0, sizeof(*s));
	memset(&h, 0, sizeof(h));
	h.job_id = JOB;
	strcpy(h.key, KEY);
	h.nbundles = n;
	for (unsigned i = 0; i < n; i++) {
		h.bundles[i].kind = PL_FRAME_ARCHIVE;
		h.bundles[i].size = sizes[i] ? sizes[i] : PL_FRAME_SIZE_UNKNOWN;
	}
	assert_int_equal(pl_frame_encoder_start(&enc, &h, buf, sizeof(buf), &len, err, sizeof(err)),
			 0);
	pl_frame_encoder_free(&enc); /* the test writes the frames itself */
	put(s, buf, len);
}

static void put_data(struct stream *s, unsigned bundle, size_t n)
{
	uint8_t *p = calloc(1, n ? n : 1);

	assert_non_null(p);
	put_head(s, 'D', bundle, (uint32_t)n);
	put(s, p, n);
	free(p);
}

static void test_refuses_bad_frames(void **state)
{
	static const uint64_t ten[2] = {10, 10}, unknown[2] = {0, 0};
	struct stream s;

	(void)state;
	raw_header(&s, 1, ten);
	put_head(&s, 'X', 0, 1);
	assert_refused_with(s.p, s.len, 0, "unknown frame type 0x58 at stream offset 40");
	free(s.p);

	raw_header(&s, 1, ten);
	put_head(&s, 'D', 0, 1);
	s.p[AFTER_HEADER1 + 1] = 1;
	assert_refused_with(s.p, s.len, 0, "frame at stream offset 40: reserved byte is not zero");
	free(s.p);

	raw_header(&s, 1, ten);
	put_head(&s, 'D', 0, 0);
	assert_refused_with(s.p, s.len, 0, "empty DATA frame at stream offset 40");
	free(s.p);

	raw_header(&s, 1, unknown);
	put_head(&s, 'D', 0, PL_FRAME_DATA_MAX + 1);
	assert_refused_with(s.p, s.len, 0,
			    "DATA frame of 1048577 bytes (at most 1048576) at stream offset 40");
	free(s.p);

	raw_header(&s, 2, ten);
	put_head(&s, 'D', 5, 1);
	assert_refused_with(s.p, s.len, 0,
			    "DATA frame for bundle 5 of a session of 2 at stream offset 52");
	free(s.p);
}

static void test_refuses_bundles_out_of_order(void **state)
{
	static const uint64_t ten[2] = {10, 10}, unknown[2] = {0, 0};
	struct stream s;

	(void)state;
	raw_header(&s, 2, ten);
	put_data(&s, 1, 10);
	assert_refused_with(s.p, s.len, 0,
			    "DATA frame for bundle 1 skips bundle 0 at stream offset 52");
	free(s.p);

	raw_header(&s, 2, unknown);
	put_data(&s, 0, 4);
	put_data(&s, 1, 4);
	put_data(&s, 0, 4);
	assert_refused_with(s.p, s.len, 0,
			    "DATA frame for bundle 0 after bundle 1 at stream offset 76");
	free(s.p);

	raw_header(&s, 2, ten);
	put_data(&s, 0, 5);
	put_data(&s, 1, 5);
	assert_refused_with(s.p, s.len, 0,
			    "bundle 0 ended after 5 of its announced 10 bytes at stream offset 65");
	free(s.p);
}

static void test_refuses_more_than_announced(void **state)
{
	static const uint64_t ten[1] = {10}, unknown[1] = {0};
	struct stream s;

	(void)state;
	raw_header(&s, 1, ten);
	put_data(&s, 0, 11);
	assert_refused_with(s.p, s.len, 0,
			    "bundle 0: more bytes than its announced 10 at stream offset 40");
	free(s.p);

	raw_header(&s, 1, ten);
	put_data(&s, 0, 6);
	put_data(&s, 0, 6);
	assert_refused_with(s.p, s.len, 0,
			    "bundle 0: more bytes than its announced 10 at stream offset 54");
	free(s.p);

	/* Unknown sizes are bound by the caller's limit. */
	raw_header(&s, 1, unknown);
	put_data(&s, 0, 60);
	put_data(&s, 0, 60);
	assert_refused_with(s.p, s.len, 100,
			    "session exceeds the limit of 100 bytes at stream offset 108");
	free(s.p);
}

static void test_refuses_bad_end(void **state)
{
	static const uint64_t ten[2] = {10, 10}, unknown[2] = {0, 0};
	struct stream s;

	(void)state;
	raw_header(&s, 1, ten);
	put_head(&s, 'E', 1, (uint32_t)pl_frame_end_len(1) - PL_FRAME_HEAD_LEN);
	assert_refused_with(s.p, s.len, 0, "END frame at stream offset 40 before any data");
	free(s.p);

	raw_header(&s, 2, unknown);
	put_data(&s, 0, 3);
	put_head(&s, 'E', 2, (uint32_t)pl_frame_end_len(2) - PL_FRAME_HEAD_LEN);
	assert_refused_with(s.p, s.len, 0, "END frame at stream offset 63 after bundle 0 of 2");
	free(s.p);

	raw_header(&s, 2, unknown);
	put_data(&s, 0, 3);
	put_data(&s, 1, 3);
	put_head(&s, 'E', 3, (uint32_t)pl_frame_end_len(3) - PL_FRAME_HEAD_LEN);
	assert_refused_with(s.p, s.len, 0, "END frame lists 3 bundles, the header 2");
	free(s.p);

	raw_header(&s, 2, unknown);
	put_data(&s, 0, 3);
	put_data(&s, 1, 3);
	put_head(&s, 'E', 2, 99);
	assert_refused_with(s.p, s.len, 0, "END frame of 99 bytes (expected 112)");
	free(s.p);

	raw_header(&s, 2, ten);
	put_data(&s, 0, 10);
	put_data(&s, 1, 9);
	put_head(&s, 'E', 2, (uint32_t)pl_frame_end_len(2) - PL_FRAME_HEAD_LEN);
	assert_refused_with(s.p, s.len, 0, "bundle 1 ended after 9 of its announced 10 bytes");
	free(s.p);
}

/* END frames whose table or digest do not match what arrived. */
static void test_refuses_digest_mismatch(void **state)
{
	uint8_t *a = pseudo_random(3000, 7), *b = pseudo_random(40, 8);
	struct src src[2] = {{PL_FRAME_ARCHIVE, true, a, 3000}, {PL_FRAME_DIRECTORY, false, b, 40}};
	struct stream s = {0};
	struct pl_frame_encoder enc;
	size_t table;

	(void)state;
	encode_session(&s, &enc, src, 2, 1024);
	table = s.len - pl_frame_end_len(2) + PL_FRAME_HEAD_LEN;

	/* One flipped byte in the payload of the first bundle. */
	s.p[AFTER_HEADER2 + PL_FRAME_HEAD_LEN + 100] ^= 0x20;
	assert_refused_with(s.p, s.len, 0,
			    "bundle 0 (archive): SHA-256 mismatch: the stream was corrupted");
	s.p[AFTER_HEADER2 + PL_FRAME_HEAD_LEN + 100] ^= 0x20;
	/* ...in the last payload byte of the directory stream. */
	s.p[table - PL_FRAME_HEAD_LEN - 1] ^= 1;
	assert_refused_with(s.p, s.len, 0,
			    "bundle 1 (directory): SHA-256 mismatch: the stream was corrupted");
	s.p[table - PL_FRAME_HEAD_LEN - 1] ^= 1;
	/* The END's table: a size, a digest. */
	s.p[table + PL_FRAME_END_ENTRY + 7] ^= 1;
	assert_refused_with(s.p, s.len, 0, "bundle 1 (directory): END says 41 bytes, 40 arrived");
	s.p[table + PL_FRAME_END_ENTRY + 7] ^= 1;
	s.p[table + 8] ^= 0x80;
	assert_refused_with(s.p, s.len, 0,
			    "bundle 0 (archive): SHA-256 mismatch: the stream was corrupted");
	s.p[table + 8] ^= 0x80;
	/* The session digest itself. */
	s.p[s.len - 1] ^= 1;
	assert_refused_with(s.p, s.len, 0, "session digest mismatch: the stream was corrupted");
	s.p[s.len - 1] ^= 1;
	free(s.p);
	free(a);
	free(b);
}

/* The extractor's decoder trusts the digests its tree process verified: a flipped payload byte
 * passes it (no second SHA-256 pass), while sizes and framing are still its own to check. */
static void test_trusting_decoder_checks_framing_only(void **state)
{
	uint8_t *a = pseudo_random(3000, 7), *b = pseudo_random(40, 8);
	struct src src[2] = {{PL_FRAME_ARCHIVE, true, a, 3000}, {PL_FRAME_DIRECTORY, false, b, 40}};
	struct stream s = {0};
	struct pl_frame_encoder enc;
	struct pl_frame_decoder dec;
	struct received r;
	char err[ERRLEN];
	size_t table;

	(void)state;
	encode_session(&s, &enc, src, 2, 1024);
	table = s.len - pl_frame_end_len(2) + PL_FRAME_HEAD_LEN;
	s.p[AFTER_HEADER2 + PL_FRAME_HEAD_LEN + 100] ^= 0x20;
	pl_frame_decoder_init(&dec, JOB, KEY, 0);
	pl_frame_decoder_trust_digests(&dec);
	assert_int_equal(decode_pieces(&dec, s.p, s.len, 777, &r, err, sizeof(err)), PL_FRAME_END);
	assert_int_equal(r.bundle[0].len, 3000);
	assert_int_equal(r.bundle[1].len, 40);
	received_free(&r);
	s.p[AFTER_HEADER2 + PL_FRAME_HEAD_LEN + 100] ^= 0x20;

	s.p[table + PL_FRAME_END_ENTRY + 7] ^= 1;
	pl_frame_decoder_init(&dec, JOB, KEY, 0);
	pl_frame_decoder_trust_digests(&dec);
	assert_int_equal(decode_pieces(&dec, s.p, s.len, SIZE_MAX, &r, err, sizeof(err)),
			 PL_FRAME_ERROR);
	assert_string_equal(err, "bundle 1 (directory): END says 41 bytes, 40 arrived");
	received_free(&r);
	free(s.p);
	free(a);
	free(b);
}

/* Feeds the extractor's decoder what the node's release limit lets through, one received piece at
 * a time; returns the last event. */
static int release_pieces(struct pl_frame_decoder *node, struct pl_frame_decoder *ex,
			  const struct stream *s, size_t piece, bool sealed, size_t *released)
{
	uint64_t received = 0;
	bool header_known = false;
	int rc = PL_FRAME_MORE;
	char err[ERRLEN];

	*released = 0;
	while (received < s->len) {
		size_t n = s->len - received < piece ? s->len - received : piece, used = 0;
		struct pl_frame_event_info ev;
		uint64_t limit;

		while (used < n) {
			size_t u = 0;
			int e = pl_frame_decode(node, s->p + received + used, n - used, &u, &ev,
						err, sizeof(err));

			assert_int_not_equal(e, PL_FRAME_ERROR);
			header_known |= e == PL_FRAME_HEADER;
			used += u;
		}
		received += n;
		limit = pl_frame_release_limit(received, node, header_known, sealed);
		assert_true(limit >= *released && limit <= received);
		while (*released < limit && rc != PL_FRAME_END) {
			size_t u = 0;

			rc = pl_frame_decode(ex, s->p + *released, (size_t)(limit - *released), &u,
					     &ev, err, sizeof(err));
			assert_int_not_equal(rc, PL_FRAME_ERROR);
			*released += u;
		}
	}
	return rc;
}

/* The extractor never sees the END frame (which completes its session: staged, conda-unpack)
 * before the seal is verified, however the stream arrives; everything before END it does see. */
static void test_end_is_released_only_once_sealed(void **state)
{
	static const size_t pieces[] = {1, 7, 100, 4096, SIZE_MAX};
	uint8_t *a = pseudo_random(5000, 11), *b = pseudo_random(300, 12);
	struct src src[2] = {{PL_FRAME_ARCHIVE, true, a, 5000},
			     {PL_FRAME_DIRECTORY, false, b, 300}};
	struct stream s = {0};
	struct pl_frame_encoder enc;

	(void)state;
	encode_session(&s, &enc, src, 2, 1000);
	for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
		struct pl_frame_decoder node, ex;
		size_t released;

		for (int sealed = 0; sealed <= 1; sealed++) {
			pl_frame_decoder_init(&node, JOB, KEY, 0);
			pl_frame_decoder_init(&ex, JOB, KEY, 0);
			pl_frame_decoder_trust_digests(&ex);
			int last = release_pieces(&node, &ex, &s, pieces[i], sealed, &released);

			assert_true(sealed ? last == PL_FRAME_END : last != PL_FRAME_END);
			pl_frame_decoder_free(&node);
			pl_frame_decoder_free(&ex);
			assert_int_equal(released, sealed ? s.len : s.len - pl_frame_end_len(2));
		}
	}
	/* Nothing before the header is known: its bundle count says how long END is. */
	assert_int_equal(pl_frame_release_limit(10, NULL, false, false), 0);
	free(s.p);
	free(a);
	free(b);
}

/* Every single flipped bit anywhere in a session is refused: header, frame heads, payload, END. */
static void test_every_flipped_bit_is_detected(void **state)
{
	uint8_t *a = pseudo_random(50, 11), *b = pseudo_random(30, 12);
	struct src src[2] = {{PL_FRAME_ARCHIVE, true, a, 50}, {PL_FRAME_DIRECTORY, false, b, 30}};
	struct stream s = {0};
	struct pl_frame_encoder enc;

	(void)state;
	encode_session(&s, &enc, src, 2, 20);
	for (size_t i = 0; i < s.len; i++) {
		for (unsigned bit = 0; bit < 8; bit++) {
			struct pl_frame_decoder dec;
			struct received r;
			char err[ERRLEN];
			int rc;

			s.p[i] ^= (uint8_t)(1u << bit);
			pl_frame_decoder_init(&dec, JOB, KEY, 0);
			rc = decode_pieces(&dec, s.p, s.len, SIZE_MAX, &r, err, sizeof(err));
			pl_frame_decoder_free(&dec);
			if (rc == PL_FRAME_END)
				fail_msg("flip of bit %u of byte %zu went unnoticed", bit, i);
			received_free(&r);
			s.p[i] ^= (uint8_t)(1u << bit);
		}
	}
	free(s.p);
	free(a);
	free(b);
}

/* ---------------------------------------------------------------- the sender's rules */

static void test_encoder_refuses_bad_headers(void **state)
{
	struct pl_frame_header h;
	struct pl_frame_encoder enc;
	uint8_t buf[PL_FRAME_HEADER_MAX];
	size_t len;
	char err[ERRLEN];

	(void)state;
	memset(&h, 0, sizeof(h));
	h.job_id = JOB;
	strcpy(h.key, KEY);
	assert_int_equal(pl_frame_encoder_start(&enc, &h, buf, sizeof(buf), &len, err, sizeof(err)),
			 -1);
	assert_string_equal(err, "header announces 0 bundles (1 to 32 allowed)");
	h.nbundles = 1;
	h.bundles[0].kind = PL_FRAME_ARCHIVE;
	h.bundles[0].size = 0;
	assert_int_equal(pl_frame_encoder_start(&enc, &h, buf, sizeof(buf), &len, err, sizeof(err)),
			 -1);
	assert_string_equal(err, "bundle 0: announced size 0");
	h.bundles[0].size = PL_FRAME_SIZE_UNKNOWN;
	h.bundles[0].kind = (enum pl_frame_kind)3;
	assert_int_equal(pl_frame_encoder_start(&enc, &h, buf, sizeof(buf), &len, err, sizeof(err)),
			 -1);
	assert_string_equal(err, "bundle 0: unknown kind 3");
	h.bundles[0].kind = PL_FRAME_DIRECTORY;
	strcpy(h.key, "not-a-key");
	assert_int_equal(pl_frame_encoder_start(&enc, &h, buf, sizeof(buf), &len, err, sizeof(err)),
			 -1);
	assert_string_equal(err, "malformed session key in the header");
	strcpy(h.key, KEY);
	assert_int_equal(pl_frame_encoder_start(&enc, &h, buf, 39, &len, err, sizeof(err)), -1);
	assert_string_equal(err, "header needs 40 bytes, the buffer has 39");
	assert_int_equal(pl_frame_encoder_start(&enc, &h, buf, 40, &len, err, sizeof(err)), 0);
	assert_int_equal(len, 40);
	pl_frame_encoder_free(&enc);
}

static void test_encoder_refuses_what_a_child_would(void **state)
{
	static const uint8_t data[20] = "abcdefghijklmnopqrst";
	struct pl_frame_header h;
	struct pl_frame_encoder enc;
	uint8_t buf[PL_FRAME_END_MAX], head[PL_FRAME_HEAD_LEN];
	size_t len;
	char err[ERRLEN];

	(void)state;
	memset(&h, 0, sizeof(h));
	h.job_id = JOB;
	strcpy(h.key, KEY);
	h.nbundles = 2;
	h.bundles[0] = (struct pl_frame_bundle){PL_FRAME_ARCHIVE, 10};
	h.bundles[1] = (struct pl_frame_bundle){PL_FRAME_DIRECTORY, PL_FRAME_SIZE_UNKNOWN};
	assert_int_equal(pl_frame_encoder_start(&enc, &h, buf, sizeof(buf), &len, err, sizeof(err)),
			 0);
	assert_int_equal(pl_frame_encoder_end(&enc, buf, sizeof(buf), &len, err, sizeof(err)), -1);
	assert_string_equal(err, "END before any data");
	assert_int_equal(pl_frame_encoder_data(&enc, 1, data, 5, head, err, sizeof(err)), -1);
	assert_string_equal(err, "DATA frame for bundle 1 skips bundle 0");
	assert_int_equal(pl_frame_encoder_data(&enc, 0, data, 0, head, err, sizeof(err)), -1);
	assert_string_equal(err, "empty DATA frame");
	assert_int_equal(
	    pl_frame_encoder_data(&enc, 0, data, PL_FRAME_DATA_MAX + 1, head, err, sizeof(err)),
	    -1);
	assert_string_equal(err, "DATA frame of 1048577 bytes (at most 1048576)");
	/* The file grew since it was opened. */
	assert_int_equal(pl_frame_encoder_data(&enc, 0, data, 11, head, err, sizeof(err)), -1);
	assert_string_equal(err, "bundle 0: more bytes than its announced 10");
	assert_int_equal(pl_frame_encoder_data(&enc, 0, data, 6, head, err, sizeof(err)), 0);
	/* ...or shrank. */
	assert_int_equal(pl_frame_encoder_data(&enc, 1, data, 5, head, err, sizeof(err)), -1);
	assert_string_equal(err, "bundle 0 ended after 6 of its announced 10 bytes");
	assert_int_equal(pl_frame_encoder_data(&enc, 0, data + 6, 4, head, err, sizeof(err)), 0);
	assert_int_equal(pl_frame_encoder_end(&enc, buf, sizeof(buf), &len, err, sizeof(err)), -1);
	assert_string_equal(err, "END after bundle 0 of 2");
	assert_int_equal(pl_frame_encoder_data(&enc, 1, data, 20, head, err, sizeof(err)), 0);
	assert_int_equal(pl_frame_encoder_data(&enc, 0, data, 1, head, err, sizeof(err)), -1);
	assert_string_equal(err, "DATA frame for bundle 0 after bundle 1");
	assert_int_equal(pl_frame_encoder_end(&enc, buf, 10, &len, err, sizeof(err)), -1);
	assert_string_equal(err, "END needs 120 bytes, the buffer has 10");
	assert_int_equal(pl_frame_encoder_end(&enc, buf, sizeof(buf), &len, err, sizeof(err)), 0);
	assert_int_equal(len, 120);
	assert_int_equal(enc.d.total, 30);
	assert_int_equal(pl_frame_encoder_end(&enc, buf, sizeof(buf), &len, err, sizeof(err)), -1);
	assert_string_equal(err, "END outside a session");
	assert_int_equal(pl_frame_encoder_data(&enc, 1, data, 1, head, err, sizeof(err)), -1);
	assert_string_equal(err, "DATA outside a session");
}

static void test_key_validity(void **state)
{
	(void)state;
	assert_true(pl_frame_key_valid(KEY));
	assert_false(pl_frame_key_valid(NULL));
	assert_false(pl_frame_key_valid(""));
	assert_false(pl_frame_key_valid("0123456789abcde"));
	assert_false(pl_frame_key_valid("0123456789abcdef0"));
	assert_false(pl_frame_key_valid("0123456789abcdeg"));
	assert_false(pl_frame_key_valid("0123456789ABCDEF"));
	assert_int_equal(pl_frame_header_len(1), 40);
	assert_int_equal(pl_frame_header_len(32), PL_FRAME_HEADER_MAX);
	assert_int_equal(pl_frame_end_len(32), PL_FRAME_END_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip_one_bundle),
	    cmocka_unit_test(test_round_trip_any_feeding),
	    cmocka_unit_test(test_digest_definitions),
	    cmocka_unit_test(test_never_reads_past_end),
	    cmocka_unit_test(test_resume_at_any_offset),
	    cmocka_unit_test(test_truncated_stream),
	    cmocka_unit_test(test_refuses_strangers),
	    cmocka_unit_test(test_refuses_other_job_and_session),
	    cmocka_unit_test(test_refuses_bad_headers),
	    cmocka_unit_test(test_refuses_bad_frames),
	    cmocka_unit_test(test_refuses_bundles_out_of_order),
	    cmocka_unit_test(test_refuses_more_than_announced),
	    cmocka_unit_test(test_refuses_bad_end),
	    cmocka_unit_test(test_refuses_digest_mismatch),
	    cmocka_unit_test(test_every_flipped_bit_is_detected),
	    cmocka_unit_test(test_trusting_decoder_checks_framing_only),
	    cmocka_unit_test(test_end_is_released_only_once_sealed),
	    cmocka_unit_test(test_encoder_refuses_bad_headers),
	    cmocka_unit_test(test_encoder_refuses_what_a_child_would),
	    cmocka_unit_test(test_key_validity),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
