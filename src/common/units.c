#include "units.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <string.h>

#define DIGITS "0123456789"
#define PORT_MIN 1024
#define PORT_MAX 65535
/* Past this many significant digits a double cannot tell the difference anyway. */
#define RATIO_MANTISSA_LIMIT 10000000000000000ULL

/* Every parser checks the syntax of the whole string first and computes values second, so
 * "99999999999999999999x" is EINVAL (malformed), not ERANGE. */

static int fail(int errnum)
{
	errno = errnum;
	return -1;
}

/* ASCII only: tolower() and strcasecmp() follow the locale (in tr_TR, 'I' does not fold to 'i'). */
static char ascii_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static bool ascii_iequal(const char *a, const char *b)
{
	while (*a && ascii_lower(*a) == ascii_lower(*b)) {
		a++;
		b++;
	}
	return *a == '\0' && *b == '\0';
}

static size_t digit_span(const char *s)
{
	return s ? strspn(s, DIGITS) : 0;
}

/* Value of the n > 0 decimal digits at s. */
static int digits_value(const char *s, size_t n, uint64_t *val)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned d = (unsigned)(s[i] - '0');

		if (v > (UINT64_MAX - d) / 10)
			return fail(ERANGE);
		v = v * 10 + d;
	}
	*val = v;
	return 0;
}

/* The unit after the digits of a size: "", "B", or K/M/G/T alone or followed by "B" or "iB". */
static int size_unit_shift(const char *unit, unsigned *shift)
{
	static const char letters[] = "kmgt";
	const char *pos;

	if (*unit == '\0' || ascii_iequal(unit, "b")) {
		*shift = 0;
		return 0;
	}
	pos = strchr(letters, ascii_lower(*unit));
	if (!pos)
		return -1;
	if (unit[1] != '\0' && !ascii_iequal(unit + 1, "b") && !ascii_iequal(unit + 1, "ib"))
		return -1;
	*shift = 10 * (unsigned)(pos - letters + 1);
	return 0;
}

int pl_parse_size(const char *s, uint64_t *out)
{
	size_t n = digit_span(s);
	unsigned shift;
	uint64_t v;

	if (n == 0 || size_unit_shift(s + n, &shift) < 0)
		return fail(EINVAL);
	if (digits_value(s, n, &v) < 0)
		return -1;
	if (v > (UINT64_MAX >> shift))
		return fail(ERANGE);
	*out = v << shift;
	return 0;
}

static int duration_unit_seconds(const char *unit, unsigned *mult)
{
	if (strcmp(unit, "") == 0 || strcmp(unit, "s") == 0)
		*mult = 1;
	else if (strcmp(unit, "m") == 0)
		*mult = 60;
	else if (strcmp(unit, "h") == 0)
		*mult = 3600;
	else
		return -1;
	return 0;
}

int pl_parse_duration(const char *s, unsigned *seconds)
{
	size_t n = digit_span(s);
	unsigned mult;
	uint64_t v;

	if (n == 0 || duration_unit_seconds(s + n, &mult) < 0)
		return fail(EINVAL);
	if (digits_value(s, n, &v) < 0)
		return -1;
	if (v > UINT_MAX / mult)
		return fail(ERANGE);
	*seconds = (unsigned)v * mult;
	return 0;
}

int pl_parse_bool(const char *s, bool *out)
{
	static const struct {
		const char *text;
		bool value;
	} words[] = {
	    {"yes", true}, {"no", false},  {"true", true}, {"false", false},
	    {"on", true},  {"off", false}, {"1", true},	   {"0", false},
	};

	for (size_t i = 0; s && i < sizeof(words) / sizeof(words[0]); i++) {
		if (ascii_iequal(s, words[i].text)) {
			*out = words[i].value;
			return 0;
		}
	}
	return fail(EINVAL);
}

int pl_parse_uint(const char *s, unsigned min, unsigned max, unsigned *out)
{
	size_t n = digit_span(s);
	uint64_t v;

	if (n == 0 || s[n] != '\0')
		return fail(EINVAL);
	if (digits_value(s, n, &v) < 0)
		return -1;
	if (v < min || v > max)
		return fail(ERANGE);
	*out = (unsigned)v;
	return 0;
}

int pl_parse_port_range(const char *s, unsigned *lo, unsigned *hi)
{
	size_t n_lo = digit_span(s), n_hi = 0;
	uint64_t v_lo, v_hi;

	if (n_lo == 0)
		return fail(EINVAL);
	if (s[n_lo] == '-')
		n_hi = digit_span(s + n_lo + 1);
	if (s[n_lo] != '\0' && (n_hi == 0 || s[n_lo + 1 + n_hi] != '\0'))
		return fail(EINVAL);
	if (digits_value(s, n_lo, &v_lo) < 0)
		return -1;
	v_hi = v_lo;
	if (n_hi > 0 && digits_value(s + n_lo + 1, n_hi, &v_hi) < 0)
		return -1;
	if (v_lo < PORT_MIN || v_hi > PORT_MAX)
		return fail(ERANGE);
	if (v_lo > v_hi)
		return fail(EINVAL);
	*lo = (unsigned)v_lo;
	*hi = (unsigned)v_hi;
	return 0;
}

/* DIGITS[.DIGITS][%]: the length of the number part, 0 when malformed. */
static size_t ratio_syntax(const char *s, bool *percent)
{
	size_t n = digit_span(s);

	if (n == 0)
		return 0;
	if (s[n] == '.') {
		size_t frac = digit_span(s + n + 1);

		if (frac == 0)
			return 0;
		n += 1 + frac;
	}
	*percent = s[n] == '%';
	if (s[n + (*percent ? 1 : 0)] != '\0')
		return 0;
	return n;
}

static double power_of_ten(unsigned k)
{
	double p = 1.0;

	while (k-- > 0)
		p *= 10.0;
	return p;
}

int pl_parse_ratio(const char *s, double *out)
{
	bool percent = false, too_big = false, in_fraction = false;
	size_t n = ratio_syntax(s, &percent);
	uint64_t mantissa = 0;
	unsigned scale = 0;
	double value;

	if (n == 0)
		return fail(EINVAL);
	/* One division of exact integers: "0.1" gives the same double as the compiler's 0.1. */
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '.') {
			in_fraction = true;
		} else if (mantissa < RATIO_MANTISSA_LIMIT) {
			mantissa = mantissa * 10 + (unsigned)(s[i] - '0');
			scale += in_fraction ? 1 : 0;
		} else if (!in_fraction) {
			too_big = true;
		}
	}
	value = (double)mantissa / power_of_ten(scale + (percent ? 2 : 0));
	if (too_big || value > 1.0)
		return fail(ERANGE);
	*out = value;
	return 0;
}
