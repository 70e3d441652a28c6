/* The session's framing (tree_frame.h): its sizes, the rules both ends apply to a header,
 * the data and the END, and the encoder. The decoder is tree_frame_decode.c. */
#include "tree_frame.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "tree_frame_internal.h"
#include "tree_wire.h"

bool pl_frame_key_valid(const char *key)
{
	return key && strlen(key) == PL_FRAME_KEY_LEN &&
	       strspn(key, "0123456789abcdef") == PL_FRAME_KEY_LEN;
}

size_t pl_frame_header_len(unsigned nbundles)
{
	return PL_FRAME_HEADER_FIXED + (size_t)PL_FRAME_HEADER_ENTRY * nbundles;
}

size_t pl_frame_end_len(unsigned nbundles)
{
	return PL_FRAME_HEAD_LEN + (size_t)PL_FRAME_END_ENTRY * nbundles + PL_SHA256_LEN;
}

uint64_t pl_frame_release_limit(uint64_t received, const struct pl_frame_decoder *dec,
				bool header_known, bool sealed)
{
	uint64_t held;

	if (sealed)
		return received;
	if (!header_known)
		return 0;
	held = pl_frame_end_len(dec->h.nbundles);
	return received > held ? received - held : 0;
}

const char *fr_kind_name(enum pl_frame_kind kind)
{
	return kind == PL_FRAME_ARCHIVE ? "archive" : "directory";
}

/* ---------------------------------------------------------------- rules both ends apply */

/* The meaning of a header, whoever made it. max_total 0: no bound. */
int fr_check_header(const struct pl_frame_header *h, uint64_t max_total, char *err, size_t errlen)
{
	uint64_t announced = 0;

	if (h->nbundles < 1 || h->nbundles > PL_FRAME_MAX_BUNDLES)
		return pl_wire_fail(err, errlen, "header announces %u bundles (1 to %d allowed)",
				    h->nbundles, PL_FRAME_MAX_BUNDLES);
	if (!pl_frame_key_valid(h->key))
		return pl_wire_fail(err, errlen, "malformed session key in the header");
	for (unsigned i = 0; i < h->nbundles; i++) {
		const struct pl_frame_bundle *b = &h->bundles[i];

		if (b->kind != PL_FRAME_ARCHIVE && b->kind != PL_FRAME_DIRECTORY)
			return pl_wire_fail(err, errlen, "bundle %u: unknown kind %d", i,
					    (int)b->kind);
		if (b->size == 0)
			return pl_wire_fail(err, errlen, "bundle %u: announced size 0", i);
		if (b->size == PL_FRAME_SIZE_UNKNOWN)
			continue;
		if (max_total && (b->size > max_total || announced > max_total - b->size))
			return pl_wire_fail(
			    err, errlen,
			    "bundles announce more than the limit of %" PRIu64 " bytes", max_total);
		announced += b->size;
	}
	return 0;
}

bool fr_bundle_short(const struct pl_frame_header *h, const struct pl_frame_digests *d, unsigned i)
{
	return h->bundles[i].size != PL_FRAME_SIZE_UNKNOWN && d->sizes[i] != h->bundles[i].size;
}

int fr_bundle_short_fail(const struct pl_frame_header *h, const struct pl_frame_digests *d,
			 unsigned i, char *err, size_t errlen)
{
	return pl_wire_fail(err, errlen,
			    "bundle %u ended after %" PRIu64 " of its announced %" PRIu64 " bytes",
			    i, d->sizes[i], h->bundles[i].size);
}

/* May n more bytes of bundle follow what came so far (the last DATA was for current)? */
int fr_check_data(const struct pl_frame_header *h, const struct pl_frame_digests *d, int current,
		  unsigned bundle, uint64_t n, uint64_t max_total, char *err, size_t errlen)
{
	if (n == 0)
		return pl_wire_fail(err, errlen, "empty DATA frame");
	if (n > PL_FRAME_DATA_MAX)
		return pl_wire_fail(err, errlen, "DATA frame of %" PRIu64 " bytes (at most %u)", n,
				    PL_FRAME_DATA_MAX);
	if (bundle >= h->nbundles)
		return pl_wire_fail(err, errlen, "DATA frame for bundle %u of a session of %u",
				    bundle, h->nbundles);
	if ((int)bundle < current)
		return pl_wire_fail(err, errlen, "DATA frame for bundle %u after bundle %d", bundle,
				    current);
	if ((int)bundle > current + 1)
		return pl_wire_fail(err, errlen, "DATA frame for bundle %u skips bundle %d", bundle,
				    current + 1);
	if ((int)bundle == current + 1 && current >= 0 && fr_bundle_short(h, d, (unsigned)current))
		return fr_bundle_short_fail(h, d, (unsigned)current, err, errlen);
	if (h->bundles[bundle].size != PL_FRAME_SIZE_UNKNOWN &&
	    n > h->bundles[bundle].size - d->sizes[bundle])
		return pl_wire_fail(err, errlen,
				    "bundle %u: more bytes than its announced %" PRIu64, bundle,
				    h->bundles[bundle].size);
	if (max_total && n > max_total - d->total)
		return pl_wire_fail(err, errlen, "session exceeds the limit of %" PRIu64 " bytes",
				    max_total);
	return 0;
}

void fr_close_bundle(struct pl_sha256 *bundle_sha, struct pl_frame_digests *d, unsigned i)
{
	pl_sha256_final(bundle_sha, d->bundles[i]);
}

/* The END body's bundle table: each size and digest. */
static void write_table(const struct pl_frame_header *h, const struct pl_frame_digests *d,
			uint8_t *p)
{
	for (unsigned i = 0; i < h->nbundles; i++, p += PL_FRAME_END_ENTRY) {
		pl_put_be64(p, d->sizes[i]);
		memcpy(p + 8, d->bundles[i], PL_SHA256_LEN);
	}
}

/* session_sha holds the header; the digest adds the table (the context is used up). */
void fr_session_digest(struct pl_sha256 *session_sha, const struct pl_frame_header *h,
		       struct pl_frame_digests *d)
{
	uint8_t table[PL_FRAME_END_ENTRY * PL_FRAME_MAX_BUNDLES];

	write_table(h, d, table);
	pl_sha256_update(session_sha, table, (size_t)PL_FRAME_END_ENTRY * h->nbundles);
	pl_sha256_final(session_sha, d->session);
}

static void write_head(uint8_t *p, uint8_t type, uint16_t field, uint32_t length)
{
	p[0] = type;
	p[1] = 0;
	pl_put_be16(p + 2, field);
	pl_put_be32(p + 4, length);
}

/* ---------------------------------------------------------------- encoder */

static void write_header(const struct pl_frame_header *h, uint8_t *p)
{
	memcpy(p, PL_FRAME_MAGIC, 4);
	p[4] = PL_FRAME_VERSION;
	p[5] = (uint8_t)h->nbundles;
	pl_put_be16(p + 6, 0);
	pl_put_be32(p + 8, h->job_id);
	memcpy(p + 12, h->key, PL_FRAME_KEY_LEN);
	p += PL_FRAME_HEADER_FIXED;
	for (unsigned i = 0; i < h->nbundles; i++, p += PL_FRAME_HEADER_ENTRY) {
		p[0] = (uint8_t)h->bundles[i].kind;
		p[1] = 0;
		pl_put_be16(p + 2, (uint16_t)i);
		pl_put_be64(p + 4, h->bundles[i].size);
	}
}

int pl_frame_encoder_start(struct pl_frame_encoder *enc, const struct pl_frame_header *h,
			   uint8_t *buf, size_t cap, size_t *len, char *err, size_t errlen)
{
	memset(enc, 0, sizeof(*enc));
	enc->current = -1;
	if (fr_check_header(h, 0, err, errlen) < 0)
		return -1;
	if (cap < pl_frame_header_len(h->nbundles))
		return pl_wire_fail(err, errlen, "header needs %zu bytes, the buffer has %zu",
				    pl_frame_header_len(h->nbundles), cap);
	enc->h = *h;
	*len = pl_frame_header_len(h->nbundles);
	write_header(h, buf);
	pl_sha256(buf, *len, enc->d.header);
	pl_sha256_init(&enc->session_sha);
	pl_sha256_update(&enc->session_sha, buf, *len);
	return 0;
}

int pl_frame_encoder_data(struct pl_frame_encoder *enc, unsigned bundle, const void *payload,
			  size_t n, uint8_t head[PL_FRAME_HEAD_LEN], char *err, size_t errlen)
{
	if (enc->h.nbundles == 0 || enc->ended)
		return pl_wire_fail(err, errlen, "DATA outside a session");
	if (fr_check_data(&enc->h, &enc->d, enc->current, bundle, n, 0, err, errlen) < 0)
		return -1;
	if ((int)bundle != enc->current) {
		if (enc->current >= 0)
			fr_close_bundle(&enc->bundle_sha, &enc->d, (unsigned)enc->current);
		pl_sha256_init(&enc->bundle_sha);
		enc->current = (int)bundle;
	}
	pl_sha256_update(&enc->bundle_sha, payload, n);
	enc->d.sizes[bundle] += n;
	enc->d.total += n;
	write_head(head, TYPE_DATA, (uint16_t)bundle, (uint32_t)n);
	return 0;
}

int pl_frame_encoder_end(struct pl_frame_encoder *enc, uint8_t *buf, size_t cap, size_t *len,
			 char *err, size_t errlen)
{
	unsigned last = enc->h.nbundles - 1;
	size_t n = pl_frame_end_len(enc->h.nbundles);

	if (enc->h.nbundles == 0 || enc->ended)
		return pl_wire_fail(err, errlen, "END outside a session");
	if (enc->current < 0)
		return pl_wire_fail(err, errlen, "END before any data");
	if (enc->current != (int)last)
		return pl_wire_fail(err, errlen, "END after bundle %d of %u", enc->current,
				    enc->h.nbundles);
	if (fr_bundle_short(&enc->h, &enc->d, last))
		return fr_bundle_short_fail(&enc->h, &enc->d, last, err, errlen);
	if (cap < n)
		return pl_wire_fail(err, errlen, "END needs %zu bytes, the buffer has %zu", n, cap);
	fr_close_bundle(&enc->bundle_sha, &enc->d, last);
	fr_session_digest(&enc->session_sha, &enc->h, &enc->d);
	write_head(buf, TYPE_END, (uint16_t)enc->h.nbundles, (uint32_t)(n - PL_FRAME_HEAD_LEN));
	write_table(&enc->h, &enc->d, buf + PL_FRAME_HEAD_LEN);
	memcpy(buf + n - PL_SHA256_LEN, enc->d.session, PL_SHA256_LEN);
	enc->ended = true;
	*len = n;
	return 0;
}

void pl_frame_encoder_free(struct pl_frame_encoder *enc)
{
	pl_sha256_free(&enc->bundle_sha);
	pl_sha256_free(&enc->session_sha);
}
