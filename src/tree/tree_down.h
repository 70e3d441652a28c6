/* The downstream half of a node (tree_down.c): its children and whoever re-attaches to it. Only
 * the loop (tree_run.c) calls it; it reaches the upstream half only through tree_node.h. */
#ifndef PL_TREE_DOWN_H
#define PL_TREE_DOWN_H

#include <stdbool.h>

#include "tree_node.h"

void pl_down_accept(struct pl_node *node);
void pl_down_poll_fd(const struct pl_node *node, const struct pl_peer *p, short *events);
void pl_down_step(struct pl_node *node, struct pl_peer *p, short revents);
/* The session here is over (broken or given up): tell those waiting and drop the rest. */
void pl_down_abandon(struct pl_node *node, bool whole_tree_off, const char *why);
bool pl_down_busy(const struct pl_node *node);

#endif
