/* The session's decoder: bytes in as they come, frames out, every rule checked before a byte
 * is released (header, data against the declared sizes, END against the digests). */
#include "tree_frame_internal.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tree_wire.h"

/* ---------------------------------------------------------------- decoder */

void pl_frame_decoder_free(struct pl_frame_decoder *dec)
{
	pl_sha256_free(&dec->bundle_sha);
	pl_sha256_free(&dec->session_sha);
}

void pl_frame_decoder_init(struct pl_frame_decoder *dec, uint32_t job_id, const char *key,
			   uint64_t max_total)
{
	memset(dec, 0, sizeof(*dec));
	dec->want_job = job_id;
	snprintf(dec->want_key, sizeof(dec->want_key), "%s", key ? key : "");
	dec->max_total = max_total;
	dec->state = PL_FRAME_IN_HEADER;
	dec->current = -1;
	dec->need = PL_FRAME_HEADER_FIXED;
}

void pl_frame_decoder_trust_digests(struct pl_frame_decoder *dec)
{
	dec->digests_verified_upstream = true;
}

static int decode_fail(struct pl_frame_decoder *dec, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int decode_fail(struct pl_frame_decoder *dec, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	pl_frame_decoder_free(dec);
	dec->state = PL_FRAME_FAILED;
	return PL_FRAME_ERROR;
}

/* Accumulates input into acc until it holds dec->need bytes; false when the input ran out. */
static bool fill(struct pl_frame_decoder *dec, const uint8_t *in, size_t len, size_t *pos)
{
	size_t take = dec->need - dec->have;

	if (take > len - *pos)
		take = len - *pos;
	if (take > 0) {
		memcpy(dec->acc + dec->have, in + *pos, take);
		dec->have += take;
		*pos += take;
		dec->offset += take;
	}
	return dec->have == dec->need;
}

/* The first bytes must say what the stream is before anything else is read: a stranger (an HTTP
 * request, a port scanner) is refused at its first wrong byte. */
static int check_preamble(struct pl_frame_decoder *dec, char *err, size_t errlen)
{
	size_t n = dec->have < 4 ? dec->have : 4;

	if (memcmp(dec->acc, PL_FRAME_MAGIC, n) != 0)
		return decode_fail(dec, err, errlen, "not a pylaunch tree stream (bad magic)");
	if (dec->have >= 5 && dec->acc[4] != PL_FRAME_VERSION)
		return decode_fail(dec, err, errlen, "stream version %u (this node speaks %d)",
				   dec->acc[4], PL_FRAME_VERSION);
	return 0;
}

static int parse_header_fixed(struct pl_frame_decoder *dec, char *err, size_t errlen)
{
	const uint8_t *p = dec->acc;
	char key[PL_FRAME_KEY_LEN + 1];

	dec->h.nbundles = p[5];
	if (pl_get_be16(p + 6) != 0)
		return decode_fail(dec, err, errlen, "header: reserved bytes are not zero");
	if (dec->h.nbundles < 1 || dec->h.nbundles > PL_FRAME_MAX_BUNDLES)
		return decode_fail(dec, err, errlen,
				   "header announces %u bundles (1 to %d allowed)", dec->h.nbundles,
				   PL_FRAME_MAX_BUNDLES);
	dec->h.job_id = pl_get_be32(p + 8);
	if (dec->h.job_id != dec->want_job)
		return decode_fail(dec, err, errlen, "stream is for job %" PRIu32 ", not %" PRIu32,
				   dec->h.job_id, dec->want_job);
	memcpy(key, p + 12, PL_FRAME_KEY_LEN);
	key[PL_FRAME_KEY_LEN] = '\0';
	if (!pl_frame_key_valid(key))
		return decode_fail(dec, err, errlen, "malformed session key in the header");
	if (strcmp(key, dec->want_key) != 0)
		return decode_fail(dec, err, errlen, "stream is for session %s, not %s", key,
				   dec->want_key);
	memcpy(dec->h.key, key, sizeof(key));
	dec->need = pl_frame_header_len(dec->h.nbundles);
	return 0;
}

static int parse_header_entries(struct pl_frame_decoder *dec, char *err, size_t errlen)
{
	const uint8_t *p = dec->acc + PL_FRAME_HEADER_FIXED;
	char why[PL_FRAME_ERRLEN];

	for (unsigned i = 0; i < dec->h.nbundles; i++, p += PL_FRAME_HEADER_ENTRY) {
		if (p[1] != 0)
			return decode_fail(dec, err, errlen,
					   "header: bundle %u: reserved byte is not zero", i);
		if (pl_get_be16(p + 2) != i)
			return decode_fail(dec, err, errlen, "header: bundle %u has index %u", i,
					   pl_get_be16(p + 2));
		dec->h.bundles[i].kind = (enum pl_frame_kind)p[0];
		dec->h.bundles[i].size = pl_get_be64(p + 4);
	}
	if (fr_check_header(&dec->h, dec->max_total, why, sizeof(why)) < 0)
		return decode_fail(dec, err, errlen, "header: %s", why);
	return 0;
}

static int accept_header(struct pl_frame_decoder *dec, char *err, size_t errlen)
{
	if (parse_header_entries(dec, err, errlen) < 0)
		return PL_FRAME_ERROR;
	pl_sha256(dec->acc, dec->have, dec->d.header);
	pl_sha256_init(&dec->session_sha);
	pl_sha256_update(&dec->session_sha, dec->acc, dec->have);
	dec->state = PL_FRAME_IN_HEAD;
	dec->need = PL_FRAME_HEAD_LEN;
	dec->have = 0;
	return PL_FRAME_HEADER;
}

/* HEADER bytes: the fixed part first (which says how long the rest is), then the entries. */
static int step_header(struct pl_frame_decoder *dec, const uint8_t *in, size_t len, size_t *pos,
		       char *err, size_t errlen)
{
	while (*pos < len) {
		/* One byte at a time until the version is known. */
		if (dec->have < 5)
			dec->need = dec->have + 1;
		if (!fill(dec, in, len, pos))
			break;
		if (check_preamble(dec, err, errlen) < 0)
			return PL_FRAME_ERROR;
		if (dec->have < 5)
			continue;
		if (dec->have < PL_FRAME_HEADER_FIXED) {
			dec->need = PL_FRAME_HEADER_FIXED;
			continue;
		}
		if (dec->have == PL_FRAME_HEADER_FIXED && parse_header_fixed(dec, err, errlen) < 0)
			return PL_FRAME_ERROR;
		if (dec->have == dec->need)
			return accept_header(dec, err, errlen);
	}
	return PL_FRAME_MORE;
}

static int start_data(struct pl_frame_decoder *dec, uint64_t at, struct pl_frame_event_info *ev,
		      char *err, size_t errlen)
{
	unsigned bundle = pl_get_be16(dec->acc + 2);
	uint32_t n = pl_get_be32(dec->acc + 4);
	int previous = dec->current;
	char why[PL_FRAME_ERRLEN];

	if (fr_check_data(&dec->h, &dec->d, dec->current, bundle, n, dec->max_total, why,
			  sizeof(why)) < 0)
		return decode_fail(dec, err, errlen, "%s at stream offset %" PRIu64, why, at);
	dec->payload = n;
	dec->state = PL_FRAME_IN_PAYLOAD;
	if ((int)bundle == previous)
		return PL_FRAME_MORE;
	if (previous >= 0)
		fr_close_bundle(&dec->bundle_sha, &dec->d, (unsigned)previous);
	pl_sha256_init(&dec->bundle_sha);
	dec->current = (int)bundle;
	if (previous < 0)
		return PL_FRAME_MORE;
	ev->bundle = (unsigned)previous;
	return PL_FRAME_BUNDLE_END;
}

static int start_end(struct pl_frame_decoder *dec, uint64_t at, struct pl_frame_event_info *ev,
		     char *err, size_t errlen)
{
	unsigned nb = pl_get_be16(dec->acc + 2), last = dec->h.nbundles - 1;
	uint32_t n = pl_get_be32(dec->acc + 4);

	if (nb != dec->h.nbundles)
		return decode_fail(dec, err, errlen, "END frame lists %u bundles, the header %u",
				   nb, dec->h.nbundles);
	if (n != pl_frame_end_len(nb) - PL_FRAME_HEAD_LEN)
		return decode_fail(dec, err, errlen,
				   "END frame of %" PRIu32 " bytes (expected %zu)", n,
				   pl_frame_end_len(nb) - PL_FRAME_HEAD_LEN);
	if (dec->current < 0)
		return decode_fail(dec, err, errlen,
				   "END frame at stream offset %" PRIu64 " before any data", at);
	if (dec->current != (int)last)
		return decode_fail(dec, err, errlen,
				   "END frame at stream offset %" PRIu64 " after bundle %d of %u",
				   at, dec->current, dec->h.nbundles);
	if (fr_bundle_short(&dec->h, &dec->d, last)) {
		fr_bundle_short_fail(&dec->h, &dec->d, last, err, errlen);
		pl_frame_decoder_free(dec);
		dec->state = PL_FRAME_FAILED;
		return PL_FRAME_ERROR;
	}
	fr_close_bundle(&dec->bundle_sha, &dec->d, last);
	dec->state = PL_FRAME_IN_END;
	dec->need = n;
	dec->have = 0;
	ev->bundle = last;
	return PL_FRAME_BUNDLE_END;
}

static int step_head(struct pl_frame_decoder *dec, const uint8_t *in, size_t len, size_t *pos,
		     struct pl_frame_event_info *ev, char *err, size_t errlen)
{
	uint64_t at;

	if (!fill(dec, in, len, pos))
		return PL_FRAME_MORE;
	at = dec->offset - PL_FRAME_HEAD_LEN;
	dec->have = 0;
	if (dec->acc[0] != TYPE_DATA && dec->acc[0] != TYPE_END)
		return decode_fail(dec, err, errlen,
				   "unknown frame type 0x%02x at stream offset %" PRIu64,
				   dec->acc[0], at);
	if (dec->acc[1] != 0)
		return decode_fail(dec, err, errlen,
				   "frame at stream offset %" PRIu64 ": reserved byte is not zero",
				   at);
	if (dec->acc[0] == TYPE_DATA)
		return start_data(dec, at, ev, err, errlen);
	return start_end(dec, at, ev, err, errlen);
}

static int step_payload(struct pl_frame_decoder *dec, const uint8_t *in, size_t len, size_t *pos,
			struct pl_frame_event_info *ev)
{
	size_t take = len - *pos;

	if (take == 0)
		return PL_FRAME_MORE;
	if (take > dec->payload)
		take = dec->payload;
	if (!dec->digests_verified_upstream)
		pl_sha256_update(&dec->bundle_sha, in + *pos, take);
	dec->d.sizes[dec->current] += take;
	dec->d.total += take;
	dec->payload -= (uint32_t)take;
	dec->offset += take;
	ev->bundle = (unsigned)dec->current;
	ev->data = in + *pos;
	ev->len = take;
	*pos += take;
	if (dec->payload == 0) {
		dec->state = PL_FRAME_IN_HEAD;
		dec->need = PL_FRAME_HEAD_LEN;
	}
	return PL_FRAME_DATA;
}

/* The END body against what arrived: each bundle's size and digest, then the session digest. */
static int verify_end(struct pl_frame_decoder *dec, char *err, size_t errlen)
{
	const uint8_t *p = dec->acc;

	for (unsigned i = 0; i < dec->h.nbundles; i++, p += PL_FRAME_END_ENTRY) {
		if (pl_get_be64(p) != dec->d.sizes[i])
			return decode_fail(
			    dec, err, errlen,
			    "bundle %u (%s): END says %" PRIu64 " bytes, %" PRIu64 " arrived", i,
			    fr_kind_name(dec->h.bundles[i].kind), pl_get_be64(p), dec->d.sizes[i]);
		if (dec->digests_verified_upstream)
			continue;
		if (memcmp(p + 8, dec->d.bundles[i], PL_SHA256_LEN) != 0)
			return decode_fail(dec, err, errlen,
					   "bundle %u (%s): SHA-256 mismatch: the stream was "
					   "corrupted",
					   i, fr_kind_name(dec->h.bundles[i].kind));
	}
	fr_session_digest(&dec->session_sha, &dec->h, &dec->d);
	if (!dec->digests_verified_upstream && memcmp(p, dec->d.session, PL_SHA256_LEN) != 0)
		return decode_fail(dec, err, errlen,
				   "session digest mismatch: the stream was corrupted");
	dec->state = PL_FRAME_DONE;
	return PL_FRAME_END;
}

static int step_end(struct pl_frame_decoder *dec, const uint8_t *in, size_t len, size_t *pos,
		    char *err, size_t errlen)
{
	if (!fill(dec, in, len, pos))
		return PL_FRAME_MORE;
	return verify_end(dec, err, errlen);
}

static int step(struct pl_frame_decoder *dec, const uint8_t *in, size_t len, size_t *pos,
		struct pl_frame_event_info *ev, char *err, size_t errlen)
{
	switch (dec->state) {
	case PL_FRAME_IN_HEADER:
		return step_header(dec, in, len, pos, err, errlen);
	case PL_FRAME_IN_HEAD:
		return step_head(dec, in, len, pos, ev, err, errlen);
	case PL_FRAME_IN_PAYLOAD:
		return step_payload(dec, in, len, pos, ev);
	case PL_FRAME_IN_END:
		return step_end(dec, in, len, pos, err, errlen);
	case PL_FRAME_DONE:
		if (*pos < len)
			return decode_fail(dec, err, errlen, "bytes after the end of the session");
		return PL_FRAME_END;
	case PL_FRAME_FAILED:
		break;
	}
	return pl_wire_fail(err, errlen, "the session already failed");
}

int pl_frame_decode(struct pl_frame_decoder *dec, const uint8_t *in, size_t len, size_t *used,
		    struct pl_frame_event_info *ev, char *err, size_t errlen)
{
	size_t pos = 0;
	int rc;

	memset(ev, 0, sizeof(*ev));
	do {
		rc = step(dec, in, len, &pos, ev, err, errlen);
	} while (rc == PL_FRAME_MORE && pos < len);
	*used = pos;
	return rc;
}

void pl_frame_decoder_eof(const struct pl_frame_decoder *dec, char *err, size_t errlen)
{
	uint64_t at = dec->offset;

	switch (dec->state) {
	case PL_FRAME_IN_HEADER:
		snprintf(err, errlen, "the stream stopped at offset %" PRIu64 ", in the header",
			 at);
		break;
	case PL_FRAME_IN_HEAD:
	case PL_FRAME_IN_PAYLOAD:
		if (dec->current < 0)
			snprintf(err, errlen,
				 "the stream stopped at offset %" PRIu64 ", before any data", at);
		else
			snprintf(err, errlen,
				 "the stream stopped at offset %" PRIu64
				 ", in bundle %d after %" PRIu64 " bytes",
				 at, dec->current, dec->d.sizes[dec->current]);
		break;
	case PL_FRAME_IN_END:
		snprintf(err, errlen, "the stream stopped at offset %" PRIu64 ", in its END frame",
			 at);
		break;
	case PL_FRAME_DONE:
		snprintf(err, errlen, "the stream is complete");
		break;
	case PL_FRAME_FAILED:
		snprintf(err, errlen, "the stream failed at offset %" PRIu64, at);
		break;
	}
}
