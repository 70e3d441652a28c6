/* Unit tests of src/tree/tree_ring.c: the bytes a node holds of a fan-out stream. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above first. */
#include <cmocka.h>

#include <string.h>

#include "tree_ring.h"

static void fill_pattern(uint8_t *buf, size_t n, uint64_t offset)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = (uint8_t)((offset + i) * 131 + 7);
}

/* Every byte of [from, to) reads back as the pattern at its offset, across the wrap. */
static void assert_holds_pattern(const struct pl_ring *r, uint64_t from, uint64_t to)
{
	uint64_t off = from;

	while (off < to) {
		const uint8_t *p;
		uint8_t want[64];
		size_t n = pl_ring_peek(r, off, &p);

		assert_true(n > 0);
		if (n > to - off)
			n = (size_t)(to - off);
		if (n > sizeof(want))
			n = sizeof(want);
		fill_pattern(want, n, off);
		assert_memory_equal(p, want, n);
		off += n;
	}
}

static void test_append_and_peek_across_the_wrap(void **state)
{
	struct pl_ring r;
	uint8_t chunk[70];

	(void)state;
	assert_int_equal(pl_ring_init(&r, 100, false), 0);
	for (uint64_t off = 0; off < 1000; off += sizeof(chunk)) {
		fill_pattern(chunk, sizeof(chunk), off);
		/* Every consumer is up to date: old bytes may go. */
		assert_int_equal(pl_ring_append(&r, chunk, sizeof(chunk), r.hi), sizeof(chunk));
		assert_true(r.hi - r.lo <= 100);
		assert_holds_pattern(&r, r.lo, r.hi);
	}
	/* As much history as fits is kept, for a node that re-attaches. */
	assert_int_equal(r.hi - r.lo, 100);
	assert_true(pl_ring_holds(&r, r.hi - 100));
	assert_false(pl_ring_holds(&r, r.hi - 101));
	assert_false(pl_ring_holds(&r, r.hi + 1));
	pl_ring_free(&r);
}

static void test_a_slow_consumer_holds_the_upstream_back(void **state)
{
	struct pl_ring r;
	uint8_t chunk[60];

	(void)state;
	assert_int_equal(pl_ring_init(&r, 100, false), 0);
	fill_pattern(chunk, sizeof(chunk), 0);
	assert_int_equal(pl_ring_append(&r, chunk, 60, 0), 60);
	/* The consumer is still at 0: only 40 bytes fit. */
	assert_int_equal(pl_ring_room(&r, 0), 40);
	fill_pattern(chunk, sizeof(chunk), 60);
	assert_int_equal(pl_ring_append(&r, chunk, 60, 0), 40);
	assert_int_equal(pl_ring_room(&r, 0), 0);
	assert_int_equal(pl_ring_append(&r, chunk, 10, 0), 0);
	assert_holds_pattern(&r, 0, 100);
	/* It moves on 30 bytes: 30 bytes of room, and nothing it still needs is dropped. */
	assert_int_equal(pl_ring_room(&r, 30), 30);
	fill_pattern(chunk, sizeof(chunk), 100);
	assert_int_equal(pl_ring_append(&r, chunk, 50, 30), 30);
	assert_int_equal(r.lo, 30);
	assert_holds_pattern(&r, 30, 130);
	pl_ring_free(&r);
}

static void test_a_growing_ring_keeps_everything(void **state)
{
	struct pl_ring r;
	uint8_t chunk[1000];

	(void)state;
	assert_int_equal(pl_ring_init(&r, 16, true), 0);
	for (uint64_t off = 0; off < 10000; off += sizeof(chunk)) {
		fill_pattern(chunk, sizeof(chunk), off);
		assert_int_equal(pl_ring_append(&r, chunk, sizeof(chunk), r.hi), sizeof(chunk));
	}
	assert_int_equal(r.lo, 0);
	assert_int_equal(r.hi, 10000);
	assert_holds_pattern(&r, 0, 10000);
	pl_ring_free(&r);
}

static void test_peek_at_the_end_gives_nothing(void **state)
{
	struct pl_ring r;
	const uint8_t *p = NULL;

	(void)state;
	assert_int_equal(pl_ring_init(&r, 8, false), 0);
	assert_int_equal(pl_ring_peek(&r, 0, &p), 0);
	assert_int_equal(pl_ring_append(&r, (const uint8_t *)"abc", 3, 0), 3);
	assert_int_equal(pl_ring_peek(&r, 3, &p), 0);
	assert_int_equal(pl_ring_peek(&r, 1, &p), 2);
	assert_memory_equal(p, "bc", 2);
	pl_ring_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_append_and_peek_across_the_wrap),
	    cmocka_unit_test(test_a_slow_consumer_holds_the_upstream_back),
	    cmocka_unit_test(test_a_growing_ring_keeps_everything),
	    cmocka_unit_test(test_peek_at_the_end_gives_nothing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
