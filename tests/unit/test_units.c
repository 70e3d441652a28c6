/* Unit tests of src/common/units.c: every form a site may write, and every one it must not. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* after the four above, which it needs and does not include */
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdbool.h>

#include "units.h"

/* What a failed parse must leave in the output. */
#define UNTOUCHED 12345u

static void assert_size(const char *s, uint64_t want)
{
	uint64_t got = UNTOUCHED;

	assert_int_equal(pl_parse_size(s, &got), 0);
	assert_true(got == want);
}

static void assert_size_fails(const char *s, int errnum)
{
	uint64_t got = UNTOUCHED;

	errno = 0;
	assert_int_equal(pl_parse_size(s, &got), -1);
	assert_int_equal(errno, errnum);
	assert_true(got == UNTOUCHED);
}

static void test_size_plain_and_units(void **state)
{
	(void)state;
	assert_size("0", 0);
	assert_size("1024", 1024);
	assert_size("1024B", 1024);
	assert_size("1024b", 1024);
	assert_size("512K", 512ULL << 10);
	assert_size("512k", 512ULL << 10);
	assert_size("16M", 16ULL << 20);
	assert_size("16G", 16ULL << 30);
	assert_size("1T", 1ULL << 40);
	assert_size("007K", 7ULL << 10);
}

static void test_size_suffix_spellings_are_binary(void **state)
{
	(void)state;
	assert_size("16GiB", 16ULL << 30);
	assert_size("16GB", 16ULL << 30);
	assert_size("16g", 16ULL << 30);
	assert_size("16gb", 16ULL << 30);
	assert_size("16gib", 16ULL << 30);
	assert_size("16GIB", 16ULL << 30);
	assert_size("1KB", 1024);
	assert_size("1MiB", 1ULL << 20);
	assert_size("2tb", 2ULL << 40);
}

static void test_size_limits(void **state)
{
	(void)state;
	assert_size("18446744073709551615", UINT64_MAX);
	assert_size("16777215T", 16777215ULL << 40);
	assert_size_fails("18446744073709551616", ERANGE);
	assert_size_fails("99999999999999999999999999", ERANGE);
	assert_size_fails("16777216T", ERANGE);
	assert_size_fails("17179869184G", ERANGE);
}

static void test_size_rejects_malformed(void **state)
{
	(void)state;
	assert_size_fails(NULL, EINVAL);
	assert_size_fails("", EINVAL);
	assert_size_fails("-1", EINVAL);
	assert_size_fails("+1", EINVAL);
	assert_size_fails(" 1", EINVAL);
	assert_size_fails("1 ", EINVAL);
	assert_size_fails("16 G", EINVAL);
	assert_size_fails("1.5G", EINVAL);
	assert_size_fails("G", EINVAL);
	assert_size_fails("1P", EINVAL);
	assert_size_fails("1GG", EINVAL);
	assert_size_fails("1Gi", EINVAL);
	assert_size_fails("1iB", EINVAL);
	assert_size_fails("1KBB", EINVAL);
	assert_size_fails("1GiBx", EINVAL);
	assert_size_fails("0x10", EINVAL);
	assert_size_fails("1e3", EINVAL);
	/* Junk wins over overflow: the string is malformed whatever its digits say. */
	assert_size_fails("99999999999999999999999x", EINVAL);
}

static void assert_duration(const char *s, unsigned want)
{
	unsigned got = UNTOUCHED;

	assert_int_equal(pl_parse_duration(s, &got), 0);
	assert_int_equal(got, want);
}

static void assert_duration_fails(const char *s, int errnum)
{
	unsigned got = UNTOUCHED;

	errno = 0;
	assert_int_equal(pl_parse_duration(s, &got), -1);
	assert_int_equal(errno, errnum);
	assert_int_equal(got, UNTOUCHED);
}

static void test_duration_forms(void **state)
{
	(void)state;
	assert_duration("0", 0);
	assert_duration("0s", 0);
	assert_duration("30", 30);
	assert_duration("30s", 30);
	assert_duration("5m", 300);
	assert_duration("2h", 7200);
	assert_duration("090", 90);
}

static void test_duration_limits(void **state)
{
	(void)state;
	assert_duration("4294967295", UINT_MAX);
	assert_duration("71582788m", 71582788u * 60u);
	assert_duration("1193046h", 1193046u * 3600u);
	assert_duration_fails("4294967296", ERANGE);
	assert_duration_fails("71582789m", ERANGE);
	assert_duration_fails("1193047h", ERANGE);
	assert_duration_fails("99999999999999999999999h", ERANGE);
}

static void test_duration_rejects_malformed(void **state)
{
	(void)state;
	assert_duration_fails(NULL, EINVAL);
	assert_duration_fails("", EINVAL);
	assert_duration_fails("s", EINVAL);
	assert_duration_fails("-5", EINVAL);
	assert_duration_fails("5 m", EINVAL);
	assert_duration_fails("5M", EINVAL);
	assert_duration_fails("5H", EINVAL);
	assert_duration_fails("5ms", EINVAL);
	assert_duration_fails("5d", EINVAL);
	assert_duration_fails("1h30m", EINVAL);
	assert_duration_fails("1.5h", EINVAL);
	assert_duration_fails("30s ", EINVAL);
}

static void assert_bool(const char *s, bool want)
{
	bool got = !want;

	assert_int_equal(pl_parse_bool(s, &got), 0);
	assert_int_equal(got, want);
}

static void assert_bool_fails(const char *s)
{
	bool got = true;

	errno = 0;
	assert_int_equal(pl_parse_bool(s, &got), -1);
	assert_int_equal(errno, EINVAL);
	assert_true(got);
}

static void test_bool_yaml11_words(void **state)
{
	(void)state;
	assert_bool("yes", true);
	assert_bool("no", false);
	assert_bool("true", true);
	assert_bool("false", false);
	assert_bool("on", true);
	assert_bool("off", false);
	assert_bool("1", true);
	assert_bool("0", false);
}

static void test_bool_any_case(void **state)
{
	(void)state;
	assert_bool("YES", true);
	assert_bool("No", false);
	assert_bool("True", true);
	assert_bool("FALSE", false);
	assert_bool("On", true);
	assert_bool("oFF", false);
}

static void test_bool_rejects_others(void **state)
{
	(void)state;
	assert_bool_fails(NULL);
	assert_bool_fails("");
	assert_bool_fails("y");
	assert_bool_fails("n");
	assert_bool_fails("2");
	assert_bool_fails("onn");
	assert_bool_fails("o");
	assert_bool_fails("yes ");
	assert_bool_fails(" no");
	assert_bool_fails("truee");
	assert_bool_fails("01");
}

static void assert_ports(const char *s, unsigned want_lo, unsigned want_hi)
{
	unsigned lo = UNTOUCHED, hi = UNTOUCHED;

	assert_int_equal(pl_parse_port_range(s, &lo, &hi), 0);
	assert_int_equal(lo, want_lo);
	assert_int_equal(hi, want_hi);
}

static void assert_ports_fail(const char *s, int errnum)
{
	unsigned lo = UNTOUCHED, hi = UNTOUCHED;

	errno = 0;
	assert_int_equal(pl_parse_port_range(s, &lo, &hi), -1);
	assert_int_equal(errno, errnum);
	assert_int_equal(lo, UNTOUCHED);
	assert_int_equal(hi, UNTOUCHED);
}

static void test_port_range_accepts(void **state)
{
	(void)state;
	assert_ports("47000-47999", 47000, 47999);
	assert_ports("1024-65535", 1024, 65535);
	assert_ports("5000-5000", 5000, 5000);
	assert_ports("5000", 5000, 5000);
}

static void test_port_range_bounds(void **state)
{
	(void)state;
	assert_ports_fail("1023-2000", ERANGE);
	assert_ports_fail("0-2000", ERANGE);
	assert_ports_fail("2000-65536", ERANGE);
	assert_ports_fail("80", ERANGE);
	assert_ports_fail("99999999999999999999999-1", ERANGE);
	assert_ports_fail("2000-1999", EINVAL);
}

static void test_port_range_rejects_malformed(void **state)
{
	(void)state;
	assert_ports_fail(NULL, EINVAL);
	assert_ports_fail("", EINVAL);
	assert_ports_fail("-", EINVAL);
	assert_ports_fail("2000-", EINVAL);
	assert_ports_fail("-2000", EINVAL);
	assert_ports_fail("2000--3000", EINVAL);
	assert_ports_fail("2000-3000-4000", EINVAL);
	assert_ports_fail("2000 - 3000", EINVAL);
	assert_ports_fail("2000-3000x", EINVAL);
	assert_ports_fail("a-b", EINVAL);
	assert_ports_fail("2000:3000", EINVAL);
}

static void assert_uint(const char *s, unsigned min, unsigned max, unsigned want)
{
	unsigned got = UNTOUCHED;

	assert_int_equal(pl_parse_uint(s, min, max, &got), 0);
	assert_int_equal(got, want);
}

static void assert_uint_fails(const char *s, unsigned min, unsigned max, int errnum)
{
	unsigned got = UNTOUCHED;

	errno = 0;
	assert_int_equal(pl_parse_uint(s, min, max, &got), -1);
	assert_int_equal(errno, errnum);
	assert_int_equal(got, UNTOUCHED);
}

static void test_uint_bounds(void **state)
{
	(void)state;
	assert_uint("1", 1, 64, 1);
	assert_uint("64", 1, 64, 64);
	assert_uint("08", 1, 64, 8);
	assert_uint("4294967295", 0, UINT_MAX, UINT_MAX);
	assert_uint("0", 0, 0, 0);
	assert_uint_fails("0", 1, 64, ERANGE);
	assert_uint_fails("65", 1, 64, ERANGE);
	assert_uint_fails("4294967296", 0, UINT_MAX, ERANGE);
	assert_uint_fails("18446744073709551616", 0, UINT_MAX, ERANGE);
}

static void test_uint_rejects_malformed(void **state)
{
	(void)state;
	assert_uint_fails(NULL, 0, 10, EINVAL);
	assert_uint_fails("", 0, 10, EINVAL);
	assert_uint_fails("-1", 0, 10, EINVAL);
	assert_uint_fails("+1", 0, 10, EINVAL);
	assert_uint_fails(" 1", 0, 10, EINVAL);
	assert_uint_fails("1 ", 0, 10, EINVAL);
	assert_uint_fails("1x", 0, 10, EINVAL);
	assert_uint_fails("0x1", 0, 10, EINVAL);
	assert_uint_fails("1.0", 0, 10, EINVAL);
}

static void assert_ratio(const char *s, double want)
{
	double got = -1.0;

	assert_int_equal(pl_parse_ratio(s, &got), 0);
	/* Exact: a ratio is one correctly rounded division, as the compiler's literal is. */
	assert_true(got == want);
}

static void assert_ratio_fails(const char *s, int errnum)
{
	double got = -1.0;

	errno = 0;
	assert_int_equal(pl_parse_ratio(s, &got), -1);
	assert_int_equal(errno, errnum);
	assert_true(got == -1.0);
}

static void test_ratio_decimal(void **state)
{
	(void)state;
	assert_ratio("0", 0.0);
	assert_ratio("1", 1.0);
	assert_ratio("0.25", 0.25);
	assert_ratio("1.0", 1.0);
	assert_ratio("1.000", 1.0);
	assert_ratio("0.1", 0.1);
	assert_ratio("0.3", 0.3);
	assert_ratio("000.5", 0.5);
	assert_ratio("0.123456789", 0.123456789);
}

static void test_ratio_percent(void **state)
{
	(void)state;
	assert_ratio("25%", 0.25);
	assert_ratio("100%", 1.0);
	assert_ratio("0%", 0.0);
	assert_ratio("12.5%", 0.125);
	assert_ratio("1%", 0.01);
	assert_ratio("100.0%", 1.0);
}

static void test_ratio_many_digits(void **state)
{
	double got = -1.0;

	(void)state;
	/* Digits past the 17th significant one are read but make no difference. */
	assert_ratio("1.00000000000000000000001", 1.0);
	assert_int_equal(pl_parse_ratio("0.0000000000000000000001", &got), 0);
	assert_true(got > 0.99e-22 && got < 1.01e-22);
	assert_ratio("0.33333333333333333333333333", 0.33333333333333333);
}

static void test_ratio_out_of_range(void **state)
{
	(void)state;
	assert_ratio_fails("1.01", ERANGE);
	assert_ratio_fails("1.0000001", ERANGE);
	assert_ratio_fails("2", ERANGE);
	assert_ratio_fails("101%", ERANGE);
	assert_ratio_fails("100000000000000000000000", ERANGE);
	assert_ratio_fails("100000000000000000000000.5%", ERANGE);
}

static void test_ratio_rejects_malformed(void **state)
{
	(void)state;
	assert_ratio_fails(NULL, EINVAL);
	assert_ratio_fails("", EINVAL);
	assert_ratio_fails(".5", EINVAL);
	assert_ratio_fails("1.", EINVAL);
	assert_ratio_fails("0.5.", EINVAL);
	assert_ratio_fails("-0.5", EINVAL);
	assert_ratio_fails("+0.5", EINVAL);
	assert_ratio_fails("nan", EINVAL);
	assert_ratio_fails("inf", EINVAL);
	assert_ratio_fails("0x1p-1", EINVAL);
	assert_ratio_fails("5e-1", EINVAL);
	assert_ratio_fails("50 %", EINVAL);
	assert_ratio_fails("%", EINVAL);
	assert_ratio_fails("0,5", EINVAL);
	assert_ratio_fails("1%%", EINVAL);
	assert_ratio_fails(" 0.5", EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_size_plain_and_units),
	    cmocka_unit_test(test_size_suffix_spellings_are_binary),
	    cmocka_unit_test(test_size_limits),
	    cmocka_unit_test(test_size_rejects_malformed),
	    cmocka_unit_test(test_duration_forms),
	    cmocka_unit_test(test_duration_limits),
	    cmocka_unit_test(test_duration_rejects_malformed),
	    cmocka_unit_test(test_bool_yaml11_words),
	    cmocka_unit_test(test_bool_any_case),
	    cmocka_unit_test(test_bool_rejects_others),
	    cmocka_unit_test(test_port_range_accepts),
	    cmocka_unit_test(test_port_range_bounds),
	    cmocka_unit_test(test_port_range_rejects_malformed),
	    cmocka_unit_test(test_uint_bounds),
	    cmocka_unit_test(test_uint_rejects_malformed),
	    cmocka_unit_test(test_ratio_decimal),
	    cmocka_unit_test(test_ratio_percent),
	    cmocka_unit_test(test_ratio_many_digits),
	    cmocka_unit_test(test_ratio_out_of_range),
	    cmocka_unit_test(test_ratio_rejects_malformed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
