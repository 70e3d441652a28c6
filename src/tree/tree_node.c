/* One node's part in a fan-out session: the state its upstream side (tree_up.c), its downstream
 * side (tree_down.c) and its own extraction share, and what either half may ask of the node. The
 * halves never call each other: they talk through this interface, and the loop that drives both
 * (tree_run.c) wires them together. */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "tree_node.h"

long long pl_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void pl_text(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

const char *pl_node_name(const struct pl_node *node, size_t i)
{
	return i < node->plan->nodes->n ? node->plan->nodes->names[i] : "-";
}

/* A child whose prolog starts late asks for offset 0: until it attaches or its deadline passes,
 * nothing may be dropped, so a full ring holds the upstream (and the root's reader) back. */
static bool child_awaited(const struct pl_node *node)
{
	long long now = pl_now_ms();

	for (size_t i = 0; i < node->plan->nodes->n; i++)
		if (node->first_until[i] > now)
			return true;
	return false;
}

uint64_t pl_node_keep_from(const struct pl_node *node)
{
	uint64_t keep = node->ring.hi;

	if (child_awaited(node))
		return 0;

	if (node->ex.fd >= 0 && node->ex.pos < keep)
		keep = node->ex.pos;
	for (size_t i = 0; i < PL_TREE_MAX_PEERS; i++) {
		const struct pl_peer *p = &node->peers[i];

		if ((p->state == PEER_WAIT || p->state == PEER_SEND || p->state == PEER_STREAM) &&
		    p->pos < keep)
			keep = p->pos;
	}
	return keep;
}

void pl_node_abandon(struct pl_node *node, bool whole_tree_off, const char *why)
{
	node->abandon_downstream(node, whole_tree_off, why);
}
