/* Internal to a node's downstream half: tree_down.c (accepting, serving the stream, the loop's
 * entries) uses tree_down_peer.c (a peer's admission), never the other way. The loop uses
 * tree_down.h. */
#ifndef PL_TREE_DOWN_INTERNAL_H
#define PL_TREE_DOWN_INTERNAL_H

#include "tree_node.h"

/* tree_down_peer.c */
const char *dn_ctx(const struct pl_node *node);
void dn_peer_free(struct pl_peer *p);
void dn_peer_refused(struct pl_node *node, struct pl_peer *p, const char *why);
int dn_queue_credential(struct pl_node *node, struct pl_peer *p, enum pl_auth_role role,
			uint64_t size, const uint8_t *digest, bool with_status);
void dn_queue_refusal(struct pl_node *node, struct pl_peer *p, uint8_t code, const char *why);
void dn_read_hello(struct pl_node *node, struct pl_peer *p);

#endif
