/* Unit tests of src/common/sha256.c (libcrypto): FIPS 180-4 test vectors, streaming, restarting,
 * freeing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above first. */
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sha256.h"

static void assert_hex_of(const void *data, size_t len, const char *want)
{
	uint8_t digest[PL_SHA256_LEN];
	char hex[PL_SHA256_HEX_LEN + 1];

	pl_sha256(data, len, digest);
	pl_sha256_hex(digest, hex);
	assert_string_equal(hex, want);
}

static void assert_text_hashes_to(const char *text, const char *want)
{
	assert_hex_of(text, strlen(text), want);
}

/* Bytes 0, 1, 2, ... 250, 0, 1, ...: no block of it repeats another. */
static uint8_t *pattern(size_t len)
{
	uint8_t *p = malloc(len ? len : 1);

	assert_non_null(p);
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i % 251);
	return p;
}

static void test_fips_vectors(void **state)
{
	(void)state;
	assert_text_hashes_to("",
			      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	assert_text_hashes_to("abc",
			      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	assert_text_hashes_to("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
			      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	assert_text_hashes_to(
	    "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnop"
	    "jklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
	    "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

static void test_one_million_a(void **state)
{
	const char *want = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
	char *a = malloc(1000000);
	struct pl_sha256 ctx = {0};
	uint8_t digest[PL_SHA256_LEN];
	char hex[PL_SHA256_HEX_LEN + 1];

	(void)state;
	assert_non_null(a);
	memset(a, 'a', 1000000);
	assert_hex_of(a, 1000000, want);
	/* The same fed 1000 bytes at a time. */
	pl_sha256_init(&ctx);
	for (int i = 0; i < 1000; i++)
		pl_sha256_update(&ctx, a, 1000);
	pl_sha256_final(&ctx, digest);
	pl_sha256_hex(digest, hex);
	assert_string_equal(hex, want);
	free(a);
}

/* Lengths around the padding boundaries (55/56 bytes: the length field fits in the last block or
 * not); digests from Python's hashlib. */
static void test_padding_boundaries(void **state)
{
	static const struct {
		size_t len;
		const char *hex;
	} cases[] = {
	    {55, "463eb28e72f82e0a96c0a4cc53690c571281131f672aa229e0d45ae59b598b59"},
	    {56, "da2ae4d6b36748f2a318f23e7ab1dfdf45acdc9d049bd80e59de82a60895f562"},
	    {57, "2fe741af801cc238602ac0ec6a7b0c3a8a87c7fc7d7f02a3fe03d1c12eac4d8f"},
	    {63, "29af2686fd53374a36b0846694cc342177e428d1647515f078784d69cdb9e488"},
	    {64, "fdeab9acf3710362bd2658cdc9a29e8f9c757fcf9811603a8c447cd1d9151108"},
	    {65, "4bfd2c8b6f1eec7a2afeb48b934ee4b2694182027e6d0fc075074f2fabb31781"},
	    {119, "da18797ed7c3a777f0847f429724a2d8cd5138e6ed2895c3fa1a6d39d18f7ec6"},
	    {120, "f52b23db1fbb6ded89ef42a23ce0c8922c45f25c50b568a93bf1c075420bbb7c"},
	    {128, "471fb943aa23c511f6f72f8d1652d9c880cfa392ad80503120547703e56a2be5"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t *p = pattern(cases[i].len);

		assert_hex_of(p, cases[i].len, cases[i].hex);
		free(p);
	}
}

static void digest_in_chunks(const uint8_t *p, size_t len, size_t chunk, uint8_t *digest)
{
	struct pl_sha256 ctx = {0};

	pl_sha256_init(&ctx);
	for (size_t off = 0; off < len; off += chunk)
		pl_sha256_update(&ctx, p + off, len - off < chunk ? len - off : chunk);
	pl_sha256_final(&ctx, digest);
}

static void test_streaming_equals_one_shot(void **state)
{
	static const size_t chunks[] = {1, 3, 7, 63, 64, 65, 127, 1000, 4099, 65537};
	const size_t len = 200003;
	uint8_t *p = pattern(len);
	uint8_t want[PL_SHA256_LEN], got[PL_SHA256_LEN];

	(void)state;
	pl_sha256(p, len, want);
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		digest_in_chunks(p, len, chunks[i], got);
		assert_memory_equal(got, want, PL_SHA256_LEN);
	}
	free(p);
}

static void test_empty_updates_change_nothing(void **state)
{
	struct pl_sha256 ctx = {0};
	uint8_t digest[PL_SHA256_LEN];
	char hex[PL_SHA256_HEX_LEN + 1];

	(void)state;
	pl_sha256_init(&ctx);
	pl_sha256_update(&ctx, NULL, 0);
	pl_sha256_update(&ctx, "ab", 2);
	pl_sha256_update(&ctx, "", 0);
	pl_sha256_update(&ctx, "c", 1);
	pl_sha256_final(&ctx, digest);
	pl_sha256_hex(digest, hex);
	assert_string_equal(hex,
			    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

/* A context restarts after its final and after being given up mid-message; freeing a freed or
 * zeroed one is harmless (valgrind and ASan see no leak). */
static void test_restart_and_free(void **state)
{
	struct pl_sha256 ctx = {0};
	uint8_t a[PL_SHA256_LEN], want[PL_SHA256_LEN];

	(void)state;
	pl_sha256_free(&ctx);
	pl_sha256_init(&ctx);
	pl_sha256_update(&ctx, "given up", 8);
	pl_sha256_init(&ctx); /* restarts: the bytes above are gone */
	pl_sha256_update(&ctx, "abc", 3);
	assert_int_equal(pl_sha256_final(&ctx, a), 0);
	assert_null(ctx.md);
	assert_int_equal(pl_sha256("abc", 3, want), 0);
	assert_memory_equal(a, want, PL_SHA256_LEN);
	pl_sha256_init(&ctx);
	pl_sha256_update(&ctx, "abandoned", 9);
	pl_sha256_free(&ctx);
	pl_sha256_free(&ctx);
	assert_null(ctx.md);
}

/* A context that libcrypto failed gives a digest of zeros and -1: never one that matches. */
static void test_a_failed_context_matches_nothing(void **state)
{
	struct pl_sha256 ctx = {0};
	uint8_t d[PL_SHA256_LEN], zero[PL_SHA256_LEN] = {0};

	(void)state;
	pl_sha256_init(&ctx);
	ctx.failed = true;
	pl_sha256_update(&ctx, "abc", 3);
	assert_int_equal(pl_sha256_final(&ctx, d), -1);
	assert_memory_equal(d, zero, PL_SHA256_LEN);
	assert_null(ctx.md);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fips_vectors),
	    cmocka_unit_test(test_one_million_a),
	    cmocka_unit_test(test_padding_boundaries),
	    cmocka_unit_test(test_streaming_equals_one_shot),
	    cmocka_unit_test(test_empty_updates_change_nothing),
	    cmocka_unit_test(test_restart_and_free),
	    cmocka_unit_test(test_a_failed_context_matches_nothing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
