/* The tree channel's CPU cost: seals and opens GB of 64 KiB records with src/tree/tree_cipher.c
 * (AES-256-GCM) on one core, and, for the choice of cipher, ChaCha20-Poly1305 on the same
 * records through libcrypto directly. Writes JSON (CPU seconds per GB, GB/s) to the path given
 * (default bench/results/tree_cipher.json) and a line per measure on stdout.
 *
 *   make bench/tree_cipher && ./bench/tree_cipher [OUT.json] [GB]  */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tree_cipher.h"

#define GB 1e9

static double cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *err)
{
	fprintf(stderr, "pylaunch: tree_cipher bench: %s: %s\n", what, err);
	exit(1);
}

/* CPU seconds to seal, and to open, bytes of records (the receiver's path: reader_feed). */
static void measure_aes(size_t records, double *seal_s, double *open_s)
{
	static uint8_t text[PL_CIPHER_RECORD_MAX], rec[PL_CIPHER_RECORD_WIRE_MAX];
	uint8_t key[PL_CIPHER_KEY_LEN], s1[32], s2[32], binding[32];
	static struct pl_cipher_reader rx;
	struct pl_cipher tx;
	char err[256];
	double t;

	memset(text, 'x', sizeof(text));
	memset(binding, 1, sizeof(binding));
	if (pl_cipher_secret(s1, err, sizeof(err)) < 0 ||
	    pl_cipher_secret(s2, err, sizeof(err)) < 0 ||
	    pl_cipher_derive(s1, s2, binding, sizeof(binding), key, err, sizeof(err)) < 0 ||
	    pl_cipher_init(&tx, key, PL_CIPHER_DOWN, err, sizeof(err)) < 0 ||
	    pl_cipher_reader_init(&rx, key, PL_CIPHER_DOWN, err, sizeof(err)) < 0)
		die("setup", err);
	*seal_s = *open_s = 0;
	for (size_t i = 0; i < records; i++) {
		const uint8_t *plain;
		size_t len, used, plain_len;

		t = cpu_now();
		if (pl_cipher_seal(&tx, text, sizeof(text), rec, sizeof(rec), &len, err,
				   sizeof(err)) < 0)
			die("seal", err);
		*seal_s += cpu_now() - t;
		t = cpu_now();
		if (pl_cipher_reader_feed(&rx, rec, len, &used, &plain, &plain_len, err,
					  sizeof(err)) != 1)
			die("open", err);
		*open_s += cpu_now() - t;
	}
	pl_cipher_free(&tx);
	pl_cipher_reader_free(&rx);
}

static double measure_chacha(size_t records)
{
	static uint8_t text[PL_CIPHER_RECORD_MAX], out[PL_CIPHER_RECORD_MAX];
	uint8_t key[32] = {1}, nonce[12] = {0}, tag[16];
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	double t = cpu_now();
	int n;

	memset(text, 'x', sizeof(text));
	if (!c || EVP_EncryptInit_ex(c, EVP_chacha20_poly1305(), NULL, key, NULL) != 1)
		die("chacha20-poly1305", "cannot start");
	for (size_t i = 0; i < records; i++) {
		nonce[11] = (uint8_t)i, nonce[10] = (uint8_t)(i >> 8),
		nonce[9] = (uint8_t)(i >> 16);
		if (EVP_EncryptInit_ex(c, NULL, NULL, NULL, nonce) != 1 ||
		    EVP_EncryptUpdate(c, out, &n, text, (int)sizeof(text)) != 1 ||
		    EVP_EncryptFinal_ex(c, out + n, &n) != 1 ||
		    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, 16, tag) != 1)
			die("chacha20-poly1305", "encrypt");
	}
	t = cpu_now() - t;
	EVP_CIPHER_CTX_free(c);
	return t;
}

int main(int argc, char **argv)
{
	const char *path = argc > 1 ? argv[1] : "bench/results/tree_cipher.json";
	double gb = argc > 2 ? atof(argv[2]) : 2.0;
	size_t records = (size_t)(gb * GB / PL_CIPHER_RECORD_MAX);
	double bytes = (double)records * PL_CIPHER_RECORD_MAX;
	double seal_s, open_s, chacha_s;
	FILE *f;

	if (records == 0)
		die("size", "give at least 0.001 GB");
	measure_aes(records, &seal_s, &open_s);
	chacha_s = measure_chacha(records);
	printf("AES-256-GCM seal (parent, per child): %.3f CPU s/GB (%.2f GB/s)\n",
	       seal_s * GB / bytes, bytes / seal_s / GB);
	printf("AES-256-GCM open (child):             %.3f CPU s/GB (%.2f GB/s)\n",
	       open_s * GB / bytes, bytes / open_s / GB);
	printf("ChaCha20-Poly1305 seal (comparison):  %.3f CPU s/GB (%.2f GB/s)\n",
	       chacha_s * GB / bytes, bytes / chacha_s / GB);
	f = fopen(path, "w");
	if (!f) {
		perror(path);
		return 1;
	}
	fprintf(f,
		"{\n  \"what\": \"tree channel records of %u bytes, one core\",\n"
		"  \"openssl\": \"%s\",\n  \"bytes\": %.0f,\n"
		"  \"aes256gcm_seal_cpu_s_per_gb\": %.4f,\n"
		"  \"aes256gcm_open_cpu_s_per_gb\": %.4f,\n"
		"  \"chacha20poly1305_seal_cpu_s_per_gb\": %.4f\n}\n",
		PL_CIPHER_RECORD_MAX, OpenSSL_version(OPENSSL_VERSION), bytes, seal_s * GB / bytes,
		open_s * GB / bytes, chacha_s * GB / bytes);
	return fclose(f) == 0 ? 0 : 1;
}
