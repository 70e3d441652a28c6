#include "tree_cipher.h"

#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tree_wire.h"

#define INFO "pylaunch tree channel 1"
#define NONCE_LEN 12

int pl_cipher_secret(uint8_t secret[PL_CIPHER_SECRET_LEN], char *err, size_t errlen)
{
	if (RAND_bytes(secret, PL_CIPHER_SECRET_LEN) != 1)
		return pl_wire_fail(err, errlen, "no random bytes for the channel's key");
	return 0;
}

int pl_cipher_derive(const uint8_t child[PL_CIPHER_SECRET_LEN],
		     const uint8_t parent[PL_CIPHER_SECRET_LEN], const uint8_t *binding,
		     size_t binding_len, uint8_t key[PL_CIPHER_KEY_LEN], char *err, size_t errlen)
{
	uint8_t ikm[2 * PL_CIPHER_SECRET_LEN];
	EVP_PKEY_CTX *k = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
	size_t len = PL_CIPHER_KEY_LEN;
	int ok;

	memcpy(ikm, child, PL_CIPHER_SECRET_LEN);
	memcpy(ikm + PL_CIPHER_SECRET_LEN, parent, PL_CIPHER_SECRET_LEN);
	ok = k && EVP_PKEY_derive_init(k) > 0 && EVP_PKEY_CTX_set_hkdf_md(k, EVP_sha256()) > 0 &&
	     EVP_PKEY_CTX_set1_hkdf_salt(k, binding, (int)binding_len) > 0 &&
	     EVP_PKEY_CTX_set1_hkdf_key(k, ikm, (int)sizeof(ikm)) > 0 &&
	     EVP_PKEY_CTX_add1_hkdf_info(k, (const unsigned char *)INFO, (int)strlen(INFO)) > 0 &&
	     EVP_PKEY_derive(k, key, &len) > 0 && len == PL_CIPHER_KEY_LEN;
	EVP_PKEY_CTX_free(k);
	memset(ikm, 0, sizeof(ikm));
	if (!ok)
		return pl_wire_fail(err, errlen, "libcrypto cannot derive the channel's key");
	return 0;
}

int pl_cipher_init(struct pl_cipher *c, const uint8_t key[PL_CIPHER_KEY_LEN], uint32_t dir,
		   char *err, size_t errlen)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();

	memset(c, 0, sizeof(*c));
	if (!ctx || EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, -1) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
	    EVP_CipherInit_ex(ctx, NULL, NULL, key, NULL, -1) != 1) {
		EVP_CIPHER_CTX_free(ctx);
		return pl_wire_fail(err, errlen, "libcrypto cannot start AES-256-GCM");
	}
	c->ctx = ctx;
	c->dir = dir;
	return 0;
}

void pl_cipher_free(struct pl_cipher *c)
{
	EVP_CIPHER_CTX_free(c->ctx);
	memset(c, 0, sizeof(*c));
}

/* The nonce of the next record; false once the counter is used up (a nonce is never reused). */
static bool next_nonce(struct pl_cipher *c, uint8_t nonce[NONCE_LEN])
{
	if (c->seq == UINT64_MAX)
		return false;
	pl_put_be32(nonce, c->dir);
	pl_put_be32(nonce + 4, (uint32_t)(c->seq >> 32));
	pl_put_be32(nonce + 8, (uint32_t)c->seq);
	c->seq++;
	return true;
}

int pl_cipher_seal(struct pl_cipher *c, const void *in, size_t n, uint8_t *out, size_t cap,
		   size_t *len, char *err, size_t errlen)
{
	uint8_t nonce[NONCE_LEN];
	int outl = 0, finl = 0;

	if (!c->ctx || c->failed)
		return pl_wire_fail(err, errlen, "the channel is closed");
	if (n == 0 || n > PL_CIPHER_RECORD_MAX)
		return pl_wire_fail(err, errlen, "record of %zu bytes (1 to %u allowed)", n,
				    PL_CIPHER_RECORD_MAX);
	if (cap < n + PL_CIPHER_OVERHEAD)
		return pl_wire_fail(err, errlen, "record needs %zu bytes, the buffer has %zu",
				    n + PL_CIPHER_OVERHEAD, cap);
	if (!next_nonce(c, nonce)) {
		c->failed = true;
		return pl_wire_fail(err, errlen, "the channel's record counter is used up");
	}
	pl_put_be32(out, (uint32_t)n);
	if (EVP_EncryptInit_ex(c->ctx, NULL, NULL, NULL, nonce) != 1 ||
	    EVP_EncryptUpdate(c->ctx, NULL, &outl, out, PL_CIPHER_HEAD_LEN) != 1 ||
	    EVP_EncryptUpdate(c->ctx, out + PL_CIPHER_HEAD_LEN, &outl, in, (int)n) != 1 ||
	    EVP_EncryptFinal_ex(c->ctx, out + PL_CIPHER_HEAD_LEN + outl, &finl) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c->ctx, EVP_CTRL_GCM_GET_TAG, PL_CIPHER_TAG_LEN,
				out + PL_CIPHER_HEAD_LEN + n) != 1) {
		c->failed = true;
		return pl_wire_fail(err, errlen, "libcrypto cannot encrypt a record");
	}
	*len = n + PL_CIPHER_OVERHEAD;
	return 0;
}

/* Decrypts the complete record in r->buf in place; the plaintext stays at buf + HEAD_LEN. */
static int open_record(struct pl_cipher *c, uint8_t *rec, size_t n, char *err, size_t errlen)
{
	uint8_t nonce[NONCE_LEN];
	uint8_t *body = rec + PL_CIPHER_HEAD_LEN;
	int outl = 0, finl = 0;
	uint64_t seq = c->seq;

	if (!next_nonce(c, nonce))
		return pl_wire_fail(err, errlen, "the channel's record counter is used up");
	if (EVP_DecryptInit_ex(c->ctx, NULL, NULL, NULL, nonce) != 1 ||
	    EVP_DecryptUpdate(c->ctx, NULL, &outl, rec, PL_CIPHER_HEAD_LEN) != 1 ||
	    EVP_DecryptUpdate(c->ctx, body, &outl, body, (int)n) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c->ctx, EVP_CTRL_GCM_SET_TAG, PL_CIPHER_TAG_LEN, body + n) != 1 ||
	    EVP_DecryptFinal_ex(c->ctx, body + outl, &finl) != 1)
		return pl_wire_fail(
		    err, errlen,
		    "record %llu of the channel failed its authentication (changed, "
		    "replayed, reordered or not from the parent)",
		    (unsigned long long)seq);
	return 0;
}

int pl_cipher_reader_init(struct pl_cipher_reader *r, const uint8_t key[PL_CIPHER_KEY_LEN],
			  uint32_t dir, char *err, size_t errlen)
{
	r->have = 0;
	r->need = PL_CIPHER_HEAD_LEN;
	r->in_body = false;
	return pl_cipher_init(&r->c, key, dir, err, errlen);
}

void pl_cipher_reader_free(struct pl_cipher_reader *r)
{
	pl_cipher_free(&r->c);
	r->have = 0;
	r->need = PL_CIPHER_HEAD_LEN;
	r->in_body = false;
}

size_t pl_cipher_reader_pending(const struct pl_cipher_reader *r)
{
	return r->have;
}

static int reader_fail(struct pl_cipher_reader *r)
{
	r->c.failed = true;
	return -1;
}

/* The head is in: the record's length says how much follows. */
static int start_body(struct pl_cipher_reader *r, char *err, size_t errlen)
{
	uint32_t n = pl_get_be32(r->buf);

	if (n == 0 || n > PL_CIPHER_RECORD_MAX) {
		pl_wire_fail(err, errlen, "record of %u bytes on the channel (1 to %u allowed)", n,
			     PL_CIPHER_RECORD_MAX);
		return reader_fail(r);
	}
	r->in_body = true;
	r->need = PL_CIPHER_HEAD_LEN + n + PL_CIPHER_TAG_LEN;
	return 0;
}

int pl_cipher_reader_feed(struct pl_cipher_reader *r, const uint8_t *in, size_t len, size_t *used,
			  const uint8_t **plain, size_t *plain_len, char *err, size_t errlen)
{
	size_t pos = 0;

	*used = 0;
	if (!r->c.ctx || r->c.failed)
		return pl_wire_fail(err, errlen, "the channel is closed");
	while (pos < len && r->have < r->need) {
		size_t take = r->need - r->have;

		if (take > len - pos)
			take = len - pos;
		memcpy(r->buf + r->have, in + pos, take);
		r->have += take;
		pos += take;
		if (!r->in_body && r->have == r->need && start_body(r, err, errlen) < 0) {
			*used = pos;
			return -1;
		}
	}
	*used = pos;
	if (!r->in_body || r->have < r->need)
		return 0;
	*plain_len = r->need - PL_CIPHER_OVERHEAD;
	if (open_record(&r->c, r->buf, *plain_len, err, errlen) < 0)
		return reader_fail(r);
	*plain = r->buf + PL_CIPHER_HEAD_LEN;
	r->have = 0;
	r->need = PL_CIPHER_HEAD_LEN;
	r->in_body = false;
	return 1;
}
