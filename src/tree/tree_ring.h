/* The bytes of a fan-out stream that a node holds: what it received and has not yet passed to all
 * of its consumers (its own extraction, its children), plus as much of the recent past as fits,
 * so that a node whose parent failed can continue from its byte offset here (tree_frame.h).
 *
 * Offsets are stream offsets (0 = the first byte of the session). The ring holds [lo, hi); it
 * never drops a byte that a live consumer still needs (below keep_from), so a slow consumer
 * holds the upstream back instead of losing data: that is the flow control of the tree. A ring
 * made to grow never drops anything and holds the whole stream (store-and-forward mode). */
#ifndef PL_TREE_RING_H
#define PL_TREE_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pl_ring {
	uint8_t *buf;
	size_t cap;
	bool grow;
	uint64_t lo, hi;
};

int pl_ring_init(struct pl_ring *r, size_t cap, bool grow);
void pl_ring_free(struct pl_ring *r);

/* Appends in[0..n) if it fits: returns how many bytes were taken (all of them, or as many as
 * fit once every byte below keep_from may go). A growing ring takes all or fails (-1, ENOMEM). */
long pl_ring_append(struct pl_ring *r, const uint8_t *in, size_t n, uint64_t keep_from);

/* Free space for an append after dropping what is below keep_from (a growing ring: unbounded). */
size_t pl_ring_room(const struct pl_ring *r, uint64_t keep_from);

/* Contiguous bytes at offset off (lo <= off <= hi): sets *p and returns their number (0 when
 * off == hi: nothing yet). */
size_t pl_ring_peek(const struct pl_ring *r, uint64_t off, const uint8_t **p);

/* Does the ring still hold offset off (a re-attaching node's)? */
bool pl_ring_holds(const struct pl_ring *r, uint64_t off);

#endif
