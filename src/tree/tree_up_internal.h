/* Internal to a node's upstream half: tree_up.c (the loop's entries) uses tree_up_stream.c
 * (the session as it arrives), and both use tree_up_attach.c (the connection and its answer);
 * never the other way. The loop uses tree_up.h. */
#ifndef PL_TREE_UP_INTERNAL_H
#define PL_TREE_UP_INTERNAL_H

#include "tree_up.h"

#define RETRY_MS 100

/* tree_up_attach.c */
void up_close(struct pl_upstream *up);
void up_fail(struct pl_node *node, const char *why);
void up_broken(struct pl_node *node, const char *why);
void up_next_ancestor(struct pl_node *node, const char *why);
void up_next_candidate(struct pl_node *node, const char *why);
void up_lost(struct pl_node *node, const char *why);
void up_try_connect(struct pl_node *node);
void up_connected(struct pl_node *node);
bool up_reason_complete(const struct pl_upstream *up);
size_t up_take_reply(struct pl_node *node, const uint8_t *in, size_t n);

/* tree_up_stream.c */
void up_take_bytes(struct pl_node *node, const uint8_t *in, size_t n);
void up_take_records(struct pl_node *node, const uint8_t *in, size_t n);

#endif
