#include "sha256.h"

#include <openssl/evp.h>
#include <string.h>

void pl_sha256_free(struct pl_sha256 *ctx)
{
	EVP_MD_CTX_free(ctx->md);
	ctx->md = NULL;
}

void pl_sha256_init(struct pl_sha256 *ctx)
{
	ctx->failed = false;
	if (!ctx->md)
		ctx->md = EVP_MD_CTX_new();
	if (!ctx->md || EVP_DigestInit_ex(ctx->md, EVP_sha256(), NULL) != 1)
		ctx->failed = true;
}

void pl_sha256_update(struct pl_sha256 *ctx, const void *data, size_t len)
{
	if (ctx->failed || len == 0)
		return;
	if (!ctx->md || EVP_DigestUpdate(ctx->md, data, len) != 1)
		ctx->failed = true;
}

int pl_sha256_final(struct pl_sha256 *ctx, uint8_t digest[PL_SHA256_LEN])
{
	unsigned len = 0;

	if (ctx->failed || !ctx->md || EVP_DigestFinal_ex(ctx->md, digest, &len) != 1 ||
	    len != PL_SHA256_LEN) {
		memset(digest, 0, PL_SHA256_LEN);
		ctx->failed = true;
	}
	pl_sha256_free(ctx);
	return ctx->failed ? -1 : 0;
}

int pl_sha256(const void *data, size_t len, uint8_t digest[PL_SHA256_LEN])
{
	unsigned out = 0;

	if (EVP_Digest(data, len, digest, &out, EVP_sha256(), NULL) != 1 || out != PL_SHA256_LEN) {
		memset(digest, 0, PL_SHA256_LEN);
		return -1;
	}
	return 0;
}

void pl_sha256_hex(const uint8_t digest[PL_SHA256_LEN], char hex[PL_SHA256_HEX_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < PL_SHA256_LEN; i++) {
		hex[2 * i] = digits[digest[i] >> 4];
		hex[2 * i + 1] = digits[digest[i] & 15];
	}
	hex[PL_SHA256_HEX_LEN] = '\0';
}
