/* SHA-256: the digest of the tree broadcast's bundles and sessions, computed by OpenSSL's
 * libcrypto (EVP), which picks the fastest code the CPU has (SHA-NI, AVX2) at run time.
 *
 * A context holds a libcrypto digest context from pl_sha256_init() until pl_sha256_final() or
 * pl_sha256_free(): a context abandoned mid-message must be freed. Should libcrypto fail (out of
 * memory), the context remembers it and pl_sha256_final() returns -1 with a digest of zeros,
 * which matches no real one: the session is then refused, never accepted. */
#ifndef PL_SHA256_H
#define PL_SHA256_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PL_SHA256_LEN 32
#define PL_SHA256_HEX_LEN 64 /* lower-case hex digits, without the terminating NUL */

struct pl_sha256 {
	void *md;    /* EVP_MD_CTX *, NULL when none is held */
	bool failed; /* libcrypto could not digest: the result is unusable */
};

/* ctx must be zeroed, freed, finalised, or in use (it restarts); it then digests a new message. */
void pl_sha256_init(struct pl_sha256 *ctx);
void pl_sha256_update(struct pl_sha256 *ctx, const void *data, size_t len);
/* Writes the digest and frees what ctx holds: 0, or -1 (a zero digest) if libcrypto failed. */
int pl_sha256_final(struct pl_sha256 *ctx, uint8_t digest[PL_SHA256_LEN]);
/* Frees what ctx holds (a message given up); a freed or zeroed ctx may be freed again. */
void pl_sha256_free(struct pl_sha256 *ctx);

/* One shot: the digest of data[0..len). */
int pl_sha256(const void *data, size_t len, uint8_t digest[PL_SHA256_LEN]);

/* hex receives PL_SHA256_HEX_LEN lower-case digits and a NUL. */
void pl_sha256_hex(const uint8_t digest[PL_SHA256_LEN], char hex[PL_SHA256_HEX_LEN + 1]);

#endif
