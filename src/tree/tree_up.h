/* The upstream half of a node (tree_up.c): the parent it receives the session from, an ancestor
 * it re-attaches to, or, on the root, its reader of the shared file system. Only the loop
 * (tree_run.c) calls it; it reaches the downstream half only through tree_node.h. */
#ifndef PL_TREE_UP_H
#define PL_TREE_UP_H

#include <stddef.h>

#include "tree_node.h"

int pl_up_start(struct pl_node *node, char *err, size_t errlen);
void pl_up_poll_fd(const struct pl_node *node, int *fd, short *events);
void pl_up_step(struct pl_node *node, short revents);
void pl_up_source_end(struct pl_node *node);

#endif
