#include "tree_ring.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int pl_ring_init(struct pl_ring *r, size_t cap, bool grow)
{
	memset(r, 0, sizeof(*r));
	r->buf = malloc(cap);
	if (!r->buf)
		return -1;
	r->cap = cap;
	r->grow = grow;
	return 0;
}

void pl_ring_free(struct pl_ring *r)
{
	free(r->buf);
	memset(r, 0, sizeof(*r));
}

static uint64_t droppable_to(const struct pl_ring *r, uint64_t keep_from)
{
	uint64_t to = keep_from < r->hi ? keep_from : r->hi;

	return to > r->lo ? to : r->lo;
}

size_t pl_ring_room(const struct pl_ring *r, uint64_t keep_from)
{
	if (r->grow)
		return SIZE_MAX;
	return r->cap - (size_t)(r->hi - droppable_to(r, keep_from));
}

/* A growing ring never drops and so never wraps: offset = index. */
static int grow_for(struct pl_ring *r, size_t n)
{
	size_t need = (size_t)r->hi + n;
	size_t cap = r->cap;
	uint8_t *buf;

	if (need <= cap)
		return 0;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	buf = realloc(r->buf, cap);
	if (!buf) {
		errno = ENOMEM;
		return -1;
	}
	r->buf = buf;
	r->cap = cap;
	return 0;
}

static void copy_in(struct pl_ring *r, const uint8_t *in, size_t n)
{
	size_t at = (size_t)(r->hi % r->cap);
	size_t first = r->cap - at < n ? r->cap - at : n;

	memcpy(r->buf + at, in, first);
	memcpy(r->buf, in + first, n - first);
	r->hi += n;
}

long pl_ring_append(struct pl_ring *r, const uint8_t *in, size_t n, uint64_t keep_from)
{
	size_t room;

	if (r->grow) {
		if (grow_for(r, n) < 0)
			return -1;
		memcpy(r->buf + r->hi, in, n);
		r->hi += n;
		return (long)n;
	}
	room = pl_ring_room(r, keep_from);
	if (n > room)
		n = room;
	/* Keep as much history as the space allows: drop only what the new bytes displace. */
	if (r->hi + n - r->lo > r->cap)
		r->lo = r->hi + n - r->cap;
	copy_in(r, in, n);
	return (long)n;
}

size_t pl_ring_peek(const struct pl_ring *r, uint64_t off, const uint8_t **p)
{
	size_t at;
	size_t n;

	if (off < r->lo || off >= r->hi)
		return 0;
	at = (size_t)(off % r->cap);
	n = (size_t)(r->hi - off);
	if (n > r->cap - at)
		n = r->cap - at;
	*p = r->buf + at;
	return n;
}

bool pl_ring_holds(const struct pl_ring *r, uint64_t off)
{
	return off >= r->lo && off <= r->hi;
}
