/* SHA-256 (FIPS 180-4), self-contained: the digest of the tree broadcast's bundles and sessions.
 * Pure: no allocation, no I/O. A context may be copied; the copy continues independently.
 *
 * Every node of a fan-out hashes every byte it receives, and on a busy node that competes with
 * extraction for the CPU; so where the CPU has the x86 SHA extensions (SHA-NI) they are used,
 * chosen at run time (valgrind hides them, and the portable code then runs). Both give the same
 * digests; the tests check them against each other. */
#ifndef PL_SHA256_H
#define PL_SHA256_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PL_SHA256_LEN 32
#define PL_SHA256_HEX_LEN 64 /* lower-case hex digits, without the terminating NUL */
#define PL_SHA256_BLOCK 64

struct pl_sha256 {
	uint32_t state[8];
	uint64_t bytes; /* message length so far */
	uint8_t block[PL_SHA256_BLOCK];
	size_t fill; /* bytes waiting in block */
	bool accel;  /* SHA-NI compression function */
};

void pl_sha256_init(struct pl_sha256 *ctx);
void pl_sha256_update(struct pl_sha256 *ctx, const void *data, size_t len);
/* Writes the digest; init the context again before using it for another message. */
void pl_sha256_final(struct pl_sha256 *ctx, uint8_t digest[PL_SHA256_LEN]);

/* One shot: the digest of data[0..len). */
void pl_sha256(const void *data, size_t len, uint8_t digest[PL_SHA256_LEN]);

/* hex receives PL_SHA256_HEX_LEN lower-case digits and a NUL. */
void pl_sha256_hex(const uint8_t digest[PL_SHA256_LEN], char hex[PL_SHA256_HEX_LEN + 1]);

/* "sha-ni" or "portable": what a context initialised now uses (for the log line of a node). */
const char *pl_sha256_engine(void);
/* Tests: true makes later pl_sha256_init() calls choose the portable code; false restores the
 * automatic choice. Not for concurrent use. */
void pl_sha256_force_portable(bool on);

#endif
