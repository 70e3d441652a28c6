/* What the tree's wire formats share (tree_frame.c, tree_auth.c, tree_cipher.c): big-endian
 * integers, and the one-line reason a rule writes before it fails. */
#ifndef PL_TREE_WIRE_H
#define PL_TREE_WIRE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

static inline void pl_put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void pl_put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline void pl_put_be64(uint8_t *p, uint64_t v)
{
	pl_put_be32(p, (uint32_t)(v >> 32));
	pl_put_be32(p + 4, (uint32_t)v);
}

static inline uint16_t pl_get_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t pl_get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t pl_get_be64(const uint8_t *p)
{
	return (uint64_t)pl_get_be32(p) << 32 | pl_get_be32(p + 4);
}

/* Writes the reason into err and returns -1. */
static inline int pl_wire_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static inline int pl_wire_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

#endif
