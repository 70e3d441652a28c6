/* Unit tests of src/tree/tree_cipher.c: the records of the tree's channel, with the real libcrypto.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above first. */
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "tree_cipher.h"

#define MARKER "PYLAUNCH-SECRET-MARKER"

struct pair {
	uint8_t key[PL_CIPHER_KEY_LEN];
	struct pl_cipher tx;
	struct pl_cipher_reader *rx;
};

static void derive(const char *seed, uint8_t key[PL_CIPHER_KEY_LEN])
{
	uint8_t child[PL_CIPHER_SECRET_LEN], parent[PL_CIPHER_SECRET_LEN], binding[32];
	char err[256];

	memset(child, seed[0], sizeof(child));
	memset(parent, seed[1], sizeof(parent));
	memset(binding, seed[2], sizeof(binding));
	assert_int_equal(
	    pl_cipher_derive(child, parent, binding, sizeof(binding), key, err, sizeof(err)), 0);
}

static void pair_open(struct pair *p, const char *seed)
{
	char err[256];

	derive(seed, p->key);
	p->rx = calloc(1, sizeof(*p->rx));
	assert_non_null(p->rx);
	assert_int_equal(pl_cipher_init(&p->tx, p->key, PL_CIPHER_DOWN, err, sizeof(err)), 0);
	assert_int_equal(pl_cipher_reader_init(p->rx, p->key, PL_CIPHER_DOWN, err, sizeof(err)), 0);
}

static void pair_close(struct pair *p)
{
	pl_cipher_free(&p->tx);
	pl_cipher_reader_free(p->rx);
	free(p->rx);
}

/* A record of text, sealed into rec (returns its wire length). */
static size_t seal(struct pl_cipher *c, const void *text, size_t n, uint8_t *rec, size_t cap)
{
	char err[256];
	size_t len = 0;

	assert_int_equal(pl_cipher_seal(c, text, n, rec, cap, &len, err, sizeof(err)), 0);
	assert_int_equal(len, n + PL_CIPHER_OVERHEAD);
	return len;
}

/* Feeds rec[0..len) in pieces of step bytes: the reader's result for the last piece. */
static int feed(struct pl_cipher_reader *r, const uint8_t *rec, size_t len, size_t step,
		const uint8_t **plain, size_t *plain_len, char *err, size_t errlen)
{
	size_t pos = 0;
	int rc = 0;

	while (pos < len) {
		size_t n = len - pos < step ? len - pos : step, used = 0;

		rc = pl_cipher_reader_feed(r, rec + pos, n, &used, plain, plain_len, err, errlen);
		if (rc < 0)
			return rc;
		assert_int_equal(used, n); /* records are fed one at a time here */
		pos += used;
	}
	return rc;
}

static void test_records_round_trip_in_any_pieces(void **state)
{
	static uint8_t text[PL_CIPHER_RECORD_MAX], rec[PL_CIPHER_RECORD_WIRE_MAX];
	const size_t sizes[] = {1, 7, 4096, PL_CIPHER_RECORD_MAX};
	const size_t steps[] = {1, 5, 1000, PL_CIPHER_RECORD_WIRE_MAX};
	struct pair p;
	char err[256];

	for (size_t i = 0; i < sizeof(text); i++)
		text[i] = (uint8_t)(i * 131 + 7);
	pair_open(&p, "abc");
	for (size_t s = 0; s < 4; s++) {
		const uint8_t *plain = NULL;
		size_t plain_len = 0;
		size_t len = seal(&p.tx, text, sizes[s], rec, sizeof(rec));

		assert_int_equal(
		    feed(p.rx, rec, len, steps[s], &plain, &plain_len, err, sizeof(err)), 1);
		assert_int_equal(plain_len, sizes[s]);
		assert_memory_equal(plain, text, sizes[s]);
		assert_int_equal(pl_cipher_reader_pending(p.rx), 0);
	}
	assert_int_equal(p.tx.seq, 4);
	pair_close(&p);
}

/* Nothing of the plaintext is on the wire. */
static void test_the_wire_carries_no_plaintext(void **state)
{
	uint8_t rec[256];
	struct pair p;
	size_t len;

	pair_open(&p, "abc");
	len = seal(&p.tx, MARKER MARKER, 2 * strlen(MARKER), rec, sizeof(rec));
	assert_null(memmem(rec, len, MARKER, strlen(MARKER)));
	assert_null(memmem(rec, len, "PYLAUNCH", 8));
	pair_close(&p);
}

/* Any bit changed, in the length, the body or the tag, fails the record and the channel. */
static void test_a_changed_bit_anywhere_is_refused(void **state)
{
	uint8_t text[100], rec[200], bad[200];
	size_t len;
	struct pair p;

	memset(text, 'x', sizeof(text));
	pair_open(&p, "abc");
	len = seal(&p.tx, text, sizeof(text), rec, sizeof(rec));
	pair_close(&p);
	for (size_t at = 0; at < len; at++) {
		const uint8_t *plain = NULL;
		size_t plain_len = 0;
		char err[256] = "";
		int rc;

		pair_open(&p, "abc");
		memcpy(bad, rec, len);
		bad[at] ^= 0x10;
		rc = feed(p.rx, bad, len, len, &plain, &plain_len, err, sizeof(err));
		if (at < PL_CIPHER_HEAD_LEN && rc == 0) {
			/* a longer length: the record is not complete yet, and its tag will fail */
			pair_close(&p);
			continue;
		}
		assert_int_equal(rc, -1);
		assert_true(strstr(err, "authentication") || strstr(err, "allowed"));
		/* the channel stays closed, even to the genuine record */
		assert_int_equal(feed(p.rx, rec, len, len, &plain, &plain_len, err, sizeof(err)),
				 -1);
		pair_close(&p);
	}
}

/* A record replayed, dropped or reordered fails: the nonce is the receiver's own count. */
static void test_replayed_and_reordered_records_are_refused(void **state)
{
	uint8_t r0[64], r1[64];
	size_t n0, n1;
	const uint8_t *plain;
	size_t plain_len;
	char err[256];
	struct pair p;

	pair_open(&p, "abc");
	n0 = seal(&p.tx, "first", 5, r0, sizeof(r0));
	n1 = seal(&p.tx, "second", 6, r1, sizeof(r1));
	assert_int_equal(feed(p.rx, r0, n0, n0, &plain, &plain_len, err, sizeof(err)), 1);
	assert_int_equal(feed(p.rx, r0, n0, n0, &plain, &plain_len, err, sizeof(err)), -1);
	pair_close(&p);

	pair_open(&p, "abc");
	n0 = seal(&p.tx, "first", 5, r0, sizeof(r0));
	n1 = seal(&p.tx, "second", 6, r1, sizeof(r1));
	assert_int_equal(feed(p.rx, r1, n1, n1, &plain, &plain_len, err, sizeof(err)), -1);
	pair_close(&p);
}

/* Another connection's key (another secret, or another binding) opens nothing. */
static void test_another_key_opens_nothing(void **state)
{
	const char *others[] = {"xbc", "axc", "abx"};
	uint8_t rec[64];
	size_t n;

	for (size_t i = 0; i < 3; i++) {
		struct pair a, b;
		const uint8_t *plain;
		size_t plain_len;
		char err[256];

		pair_open(&a, "abc");
		pair_open(&b, others[i]);
		assert_memory_not_equal(a.key, b.key, PL_CIPHER_KEY_LEN);
		n = seal(&a.tx, "hello", 5, rec, sizeof(rec));
		assert_int_equal(feed(b.rx, rec, n, n, &plain, &plain_len, err, sizeof(err)), -1);
		pair_close(&a);
		pair_close(&b);
	}
}

/* The other direction's nonces are not this one's: a record sent back is refused. */
static void test_a_record_of_the_other_direction_is_refused(void **state)
{
	struct pl_cipher up;
	uint8_t rec[64];
	const uint8_t *plain;
	size_t plain_len, n;
	char err[256];
	struct pair p;

	pair_open(&p, "abc");
	assert_int_equal(pl_cipher_init(&up, p.key, PL_CIPHER_UP, err, sizeof(err)), 0);
	n = seal(&up, "hello", 5, rec, sizeof(rec));
	assert_int_equal(feed(p.rx, rec, n, n, &plain, &plain_len, err, sizeof(err)), -1);
	pl_cipher_free(&up);
	pair_close(&p);
}

/* A sender whose counter is used up refuses to seal: a nonce is never reused. */
static void test_the_counter_never_wraps(void **state)
{
	uint8_t rec[64];
	size_t len;
	char err[256];
	struct pair p;

	pair_open(&p, "abc");
	p.tx.seq = UINT64_MAX - 1;
	seal(&p.tx, "last", 4, rec, sizeof(rec));
	assert_int_equal(pl_cipher_seal(&p.tx, "more", 4, rec, sizeof(rec), &len, err, sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "used up"));
	/* and stays refused */
	p.tx.seq = 0;
	assert_int_equal(pl_cipher_seal(&p.tx, "more", 4, rec, sizeof(rec), &len, err, sizeof(err)),
			 -1);
	pair_close(&p);
}

static void test_bad_lengths_are_refused(void **state)
{
	static uint8_t big[PL_CIPHER_RECORD_MAX + 1], rec[PL_CIPHER_RECORD_WIRE_MAX + 1];
	const uint8_t zero[4] = {0, 0, 0, 0}, huge[4] = {0, 1, 0, 1};
	const uint8_t *plain;
	size_t len, used, plain_len;
	char err[256];
	struct pair p;

	pair_open(&p, "abc");
	assert_int_equal(pl_cipher_seal(&p.tx, big, 0, rec, sizeof(rec), &len, err, sizeof(err)),
			 -1);
	assert_int_equal(
	    pl_cipher_seal(&p.tx, big, sizeof(big), rec, sizeof(rec), &len, err, sizeof(err)), -1);
	assert_int_equal(pl_cipher_seal(&p.tx, big, 10, rec, 29, &len, err, sizeof(err)), -1);
	assert_int_equal(
	    pl_cipher_reader_feed(p.rx, zero, 4, &used, &plain, &plain_len, err, sizeof(err)), -1);
	pair_close(&p);
	pair_open(&p, "abc");
	assert_int_equal(
	    pl_cipher_reader_feed(p.rx, huge, 4, &used, &plain, &plain_len, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "allowed"));
	pair_close(&p);
}

/* Two records back to back: the reader stops at the end of the first. */
static void test_the_reader_stops_at_a_record_end(void **state)
{
	uint8_t wire[128];
	const uint8_t *plain;
	size_t n0, n1, used, plain_len;
	char err[256];
	struct pair p;

	pair_open(&p, "abc");
	n0 = seal(&p.tx, "first", 5, wire, sizeof(wire));
	n1 = seal(&p.tx, "second", 6, wire + n0, sizeof(wire) - n0);
	assert_int_equal(
	    pl_cipher_reader_feed(p.rx, wire, n0 + n1, &used, &plain, &plain_len, err, sizeof(err)),
	    1);
	assert_int_equal(used, n0);
	assert_memory_equal(plain, "first", 5);
	assert_int_equal(
	    pl_cipher_reader_feed(p.rx, wire + n0, n1, &used, &plain, &plain_len, err, sizeof(err)),
	    1);
	assert_memory_equal(plain, "second", 6);
	pair_close(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_records_round_trip_in_any_pieces),
	    cmocka_unit_test(test_the_wire_carries_no_plaintext),
	    cmocka_unit_test(test_a_changed_bit_anywhere_is_refused),
	    cmocka_unit_test(test_replayed_and_reordered_records_are_refused),
	    cmocka_unit_test(test_another_key_opens_nothing),
	    cmocka_unit_test(test_a_record_of_the_other_direction_is_refused),
	    cmocka_unit_test(test_the_counter_never_wraps),
	    cmocka_unit_test(test_bad_lengths_are_refused),
	    cmocka_unit_test(test_the_reader_stops_at_a_record_end),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
