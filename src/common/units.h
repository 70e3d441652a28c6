/* Parsers of the human-written values of the site configuration and the plugstack.conf line.
 * Pure: no allocation, no I/O, no locale (a site's LC_NUMERIC must not change what "0.5" means).
 * Every parser takes the whole string: no leading or trailing space, no sign, no empty string.
 * Each returns 0, or -1 with errno EINVAL (malformed) or ERANGE (well-formed, out of range);
 * the outputs are written only on success. */
#ifndef PL_UNITS_H
#define PL_UNITS_H

#include <stdbool.h>
#include <stdint.h>

/* Bytes: decimal digits and an optional unit K, M, G or T, which may be followed by B or iB,
 * in any case: "1024", "1024B", "512K", "16M", "16G", "16GiB", "16GB", "16g", "1T".
 * Every unit is a binary multiple, as Slurm's memory sizes are: "1GB" is 2^30 bytes like "1GiB".
 * No fractions ("1.5G"): write "1536M". ERANGE when the value does not fit in 64 bits. */
int pl_parse_size(const char *s, uint64_t *out);

/* Seconds: decimal digits and an optional unit s, m or h (lower case): "30", "30s", "5m", "2h".
 * 0 is returned as 0; whether it is allowed is the caller's business. ERANGE above UINT_MAX s. */
int pl_parse_duration(const char *s, unsigned *seconds);

/* The YAML 1.1 booleans users write (`default: on`), in any case: yes/no, true/false, on/off,
 * 1/0. The one-letter forms y/n are refused: too easily a typo. */
int pl_parse_bool(const char *s, bool *out);

/* "LO-HI" with 1024 <= LO <= HI <= 65535, e.g. "47000-47999"; a single port "P" means P-P.
 * EINVAL when LO > HI, ERANGE when a port is outside 1024..65535 (privileged ports are the
 * system's, and a job's user must be able to bind them). */
int pl_parse_port_range(const char *s, unsigned *lo, unsigned *hi);

/* Decimal integer in min..max (ERANGE outside). */
int pl_parse_uint(const char *s, unsigned min, unsigned max, unsigned *out);

/* A fraction in 0..1 (ERANGE outside): "0", "1", "0.25", "1.0" or a percentage "25%", "12.5%".
 * A decimal point needs digits on both sides (".5" and "1." are refused); no exponents, no
 * "nan" or "inf". Digits beyond the 17th significant one are read but ignored. */
int pl_parse_ratio(const char *s, double *out);

#endif
