/* The channel binding of a tree connection: what its credentials say it is (tree_auth.h).
 * Both ends compute it from their own socket, so a credential relayed from another connection
 * names the wrong one. */
#ifndef PL_TREE_BIND_H
#define PL_TREE_BIND_H

#include <stdbool.h>
#include <stdint.h>

#include "sha256.h"

/* SHA-256 of "CHILD-ADDRESS CHILD-PORT PARENT-ADDRESS PARENT-PORT" (IPv4-mapped IPv6 addresses
 * as IPv4) of connected socket fd, as the child (local = child) or the parent (local = parent)
 * sees it; -1 if the socket cannot tell. */
int pl_channel_binding(int fd, bool parent_side, uint8_t out[PL_SHA256_LEN]);

#endif
