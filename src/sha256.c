#include "sha256.h"

#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define PL_HAVE_SHANI 1
#include <cpuid.h>
#include <immintrin.h>
#endif

static const uint32_t initial_state[8] = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

/* Aligned to 16 so the SHA-NI code may load four constants at a time. */
static const uint32_t round_k[64] __attribute__((aligned(16))) = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static bool portable_forced;

static uint32_t load_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void store_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t rotr(uint32_t x, unsigned n)
{
	return (x >> n) | (x << (32 - n));
}

static void schedule(uint32_t w[64], const uint8_t *block)
{
	for (unsigned i = 0; i < 16; i++)
		w[i] = load_be32(block + 4 * i);
	for (unsigned i = 16; i < 64; i++) {
		uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
		uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);

		w[i] = w[i - 16] + s0 + w[i - 7] + s1;
	}
}

static void compress_portable(uint32_t state[8], const uint8_t *data, size_t nblocks)
{
	for (; nblocks > 0; nblocks--, data += PL_SHA256_BLOCK) {
		uint32_t w[64], a = state[0], b = state[1], c = state[2], d = state[3];
		uint32_t e = state[4], f = state[5], g = state[6], h = state[7];

		schedule(w, data);
		for (unsigned i = 0; i < 64; i++) {
			uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) +
				      ((e & f) ^ (~e & g)) + round_k[i] + w[i];
			uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) +
				      ((a & b) ^ (a & c) ^ (b & c));

			h = g;
			g = f;
			f = e;
			e = d + t1;
			d = c;
			c = b;
			b = a;
			a = t1 + t2;
		}
		state[0] += a;
		state[1] += b;
		state[2] += c;
		state[3] += d;
		state[4] += e;
		state[5] += f;
		state[6] += g;
		state[7] += h;
	}
}

#ifdef PL_HAVE_SHANI
static bool cpu_has_shani(void)
{
	unsigned a, b, c, d;

	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_SSE4_1) || !(c & bit_SSSE3))
		return false;
	if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
		return false;
	return (b & bit_SHA) != 0;
}

/* The next four words of the message schedule from the previous sixteen in w[0..3]
 * (w[g % 4] holds the oldest four and is replaced). */
__attribute__((target("sha,sse4.1"))) static __m128i next_words(__m128i w[4], unsigned g)
{
	__m128i oldest = w[g % 4], older = w[(g + 1) % 4];
	__m128i newer = w[(g + 2) % 4], newest = w[(g + 3) % 4];
	__m128i t = _mm_sha256msg1_epu32(oldest, older);

	t = _mm_add_epi32(t, _mm_alignr_epi8(newest, newer, 4));
	return _mm_sha256msg2_epu32(t, newest);
}

/* The registers hold the state as ABEF and CDGH (the instruction's layout). */
__attribute__((target("sha,sse4.1"))) static void
compress_shani(uint32_t state[8], const uint8_t *data, size_t nblocks)
{
	const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
	__m128i t = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&state[0]), 0xb1);
	__m128i efgh = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&state[4]), 0x1b);
	__m128i abef = _mm_alignr_epi8(t, efgh, 8);
	__m128i cdgh = _mm_blend_epi16(efgh, t, 0xf0);

	for (; nblocks > 0; nblocks--, data += PL_SHA256_BLOCK) {
		__m128i abef_in = abef, cdgh_in = cdgh, w[4];

		for (unsigned g = 0; g < 16; g++) {
			__m128i m;

			if (g < 4)
				w[g] = _mm_shuffle_epi8(
				    _mm_loadu_si128((const __m128i *)(data + 16 * g)), bswap);
			else
				w[g % 4] = next_words(w, g);
			m = _mm_add_epi32(w[g % 4],
					  _mm_load_si128((const __m128i *)&round_k[4 * g]));
			cdgh = _mm_sha256rnds2_epu32(cdgh, abef, m);
			abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(m, 0x0e));
		}
		abef = _mm_add_epi32(abef, abef_in);
		cdgh = _mm_add_epi32(cdgh, cdgh_in);
	}
	t = _mm_shuffle_epi32(abef, 0x1b);
	cdgh = _mm_shuffle_epi32(cdgh, 0xb1);
	_mm_storeu_si128((__m128i *)&state[0], _mm_blend_epi16(t, cdgh, 0xf0));
	_mm_storeu_si128((__m128i *)&state[4], _mm_alignr_epi8(cdgh, t, 8));
}
#endif

static bool accel_available(void)
{
#ifdef PL_HAVE_SHANI
	return !portable_forced && cpu_has_shani();
#else
	return false;
#endif
}

static void compress(struct pl_sha256 *ctx, const uint8_t *data, size_t nblocks)
{
#ifdef PL_HAVE_SHANI
	if (ctx->accel) {
		compress_shani(ctx->state, data, nblocks);
		return;
	}
#endif
	compress_portable(ctx->state, data, nblocks);
}

void pl_sha256_init(struct pl_sha256 *ctx)
{
	memcpy(ctx->state, initial_state, sizeof(ctx->state));
	ctx->bytes = 0;
	ctx->fill = 0;
	ctx->accel = accel_available();
}

void pl_sha256_update(struct pl_sha256 *ctx, const void *data, size_t len)
{
	const uint8_t *p = data;

	if (len == 0)
		return;
	ctx->bytes += len;
	if (ctx->fill > 0) {
		size_t take = PL_SHA256_BLOCK - ctx->fill;

		if (take > len)
			take = len;
		memcpy(ctx->block + ctx->fill, p, take);
		ctx->fill += take;
		p += take;
		len -= take;
		if (ctx->fill < PL_SHA256_BLOCK)
			return;
		compress(ctx, ctx->block, 1);
		ctx->fill = 0;
	}
	if (len >= PL_SHA256_BLOCK) {
		compress(ctx, p, len / PL_SHA256_BLOCK);
		p += len - len % PL_SHA256_BLOCK;
		len %= PL_SHA256_BLOCK;
	}
	memcpy(ctx->block, p, len);
	ctx->fill = len;
}

/* FIPS 180-4 5.1.1: a one bit, zeros up to 56 mod 64 bytes, the length in bits (64 bits). */
void pl_sha256_final(struct pl_sha256 *ctx, uint8_t digest[PL_SHA256_LEN])
{
	uint64_t bits = ctx->bytes * 8;

	ctx->block[ctx->fill++] = 0x80;
	if (ctx->fill > PL_SHA256_BLOCK - 8) {
		memset(ctx->block + ctx->fill, 0, PL_SHA256_BLOCK - ctx->fill);
		compress(ctx, ctx->block, 1);
		ctx->fill = 0;
	}
	memset(ctx->block + ctx->fill, 0, PL_SHA256_BLOCK - 8 - ctx->fill);
	store_be32(ctx->block + 56, (uint32_t)(bits >> 32));
	store_be32(ctx->block + 60, (uint32_t)bits);
	compress(ctx, ctx->block, 1);
	for (unsigned i = 0; i < 8; i++)
		store_be32(digest + 4 * i, ctx->state[i]);
}

void pl_sha256(const void *data, size_t len, uint8_t digest[PL_SHA256_LEN])
{
	struct pl_sha256 ctx;

	pl_sha256_init(&ctx);
	pl_sha256_update(&ctx, data, len);
	pl_sha256_final(&ctx, digest);
}

void pl_sha256_hex(const uint8_t digest[PL_SHA256_LEN], char hex[PL_SHA256_HEX_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";

	for (unsigned i = 0; i < PL_SHA256_LEN; i++) {
		hex[2 * i] = digits[digest[i] >> 4];
		hex[2 * i + 1] = digits[digest[i] & 0x0f];
	}
	hex[PL_SHA256_HEX_LEN] = '\0';
}

const char *pl_sha256_engine(void)
{
	return accel_available() ? "sha-ni" : "portable";
}

void pl_sha256_force_portable(bool on)
{
	portable_forced = on;
}
