/* One peer downstream, before it is served: freed or refused, its HELLO verified (a prolog of
 * this job's, for this session, from a node below this one), and the answer queued: the OPEN
 * credential and the channel, the seal, or a refusal with its reason. */
#include "tree_down_internal.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

const char *dn_ctx(const struct pl_node *node)
{
	return node->plan->context;
}

void dn_peer_free(struct pl_peer *p)
{
	if (p->fd >= 0)
		close(p->fd);
	if (p->tx_on)
		pl_cipher_free(&p->tx);
	free(p->rec);
	memset(p, 0, sizeof(*p));
	p->fd = -1;
	p->state = PEER_FREE;
}

/* Its subtree will come to us (or it will, again): wait for them a while. */
void dn_peer_refused(struct pl_node *node, struct pl_peer *p, const char *why)
{
	pl_info("%s job %u on %s: tree: refused a connection from %s: %s", dn_ctx(node),
		node->plan->job_id, pl_node_name(node, node->self), p->addr, why);
	dn_peer_free(p);
}

/* Connections from one address still to send their HELLO: a node's prolog has one at a time
 * (its children's come from their own addresses), so more are someone holding slots. */
/* ------------------------------------------------------------------ answers */

/* From its OPEN on, all a peer is sent goes in records under the connection's key: its half
 * from the HELLO, ours from the OPEN (tree_cipher.h). */
static int start_channel(struct pl_peer *p, const uint8_t *secret, char *err, size_t errlen)
{
	uint8_t key[PL_CIPHER_KEY_LEN];
	int rc;

	if (PL_CHANNEL_BUILD == PL_CHANNEL_CLEAR)
		return 0;
	p->rec = malloc(PL_CIPHER_RECORD_WIRE_MAX);
	if (!p->rec) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	rc = pl_cipher_derive(p->hello_secret, secret, p->binding, sizeof(p->binding), key, err,
			      errlen);
	if (rc == 0)
		rc = pl_cipher_init(&p->tx, key, PL_CIPHER_DOWN, err, errlen);
	memset(key, 0, sizeof(key));
	p->tx_on = rc == 0;
	return rc;
}

/* A credential queued after the OPEN (the SEAL) goes in a record of its own. */
static int seal_out(struct pl_peer *p, char *err, size_t errlen)
{
	uint8_t plain[sizeof(p->out)];
	size_t n = p->out_len;

	if (!p->tx_on)
		return 0;
	memcpy(plain, p->out, n);
	return pl_cipher_seal(&p->tx, plain, n, p->out, sizeof(p->out), &p->out_len, err, errlen);
}

int dn_queue_credential(struct pl_node *node, struct pl_peer *p, enum pl_auth_role role,
			uint64_t size, const uint8_t *digest, bool with_status)
{
	struct pl_auth_claim claim = {
	    .role = role, .job_id = node->plan->job_id, .size = size, .channel = PL_CHANNEL_BUILD};
	char err[PL_ERRLEN];
	char *cred = NULL;
	size_t at = with_status ? 1 : 0;
	size_t len = 0;
	int rc;

	snprintf(claim.key, sizeof(claim.key), "%s", node->plan->key);
	snprintf(claim.sender, sizeof(claim.sender), "%s", pl_node_name(node, node->self));
	snprintf(claim.receiver, sizeof(claim.receiver), "%s", pl_node_name(node, p->node));
	memcpy(claim.digest, digest, PL_SHA256_LEN);
	memcpy(claim.binding, p->binding, PL_SHA256_LEN);
	rc = role == PL_AUTH_OPEN ? pl_cipher_secret(claim.secret, err, sizeof(err)) : 0;
	if (rc == 0)
		rc = pl_auth_make(&node->auth, &claim, &cred, err, sizeof(err));
	if (rc == 0)
		rc = pl_auth_wire_encode(cred, p->out + at, sizeof(p->out) - at, &len, err,
					 sizeof(err));
	free(cred);
	p->out_len = at + len;
	if (rc == 0 && role == PL_AUTH_OPEN)
		rc = start_channel(p, claim.secret, err, sizeof(err));
	else if (rc == 0)
		rc = seal_out(p, err, sizeof(err));
	memset(claim.secret, 0, sizeof(claim.secret));
	if (rc < 0) {
		pl_error("%s job %u on %s: tree: cannot make a credential for %s: %s", dn_ctx(node),
			 node->plan->job_id, pl_node_name(node, node->self),
			 pl_node_name(node, p->node), err);
		return -1;
	}
	if (with_status)
		p->out[0] = PL_REPLY_OPEN;
	p->out_sent = 0;
	p->state = PEER_SEND;
	p->last_io = pl_now_ms();
	return 0;
}

/* N or D, its reason, and a REFUSE credential binding both to this connection: a refusal is
 * acted on (a node turned away, the tree off) only when it comes from the parent itself. */
void dn_queue_refusal(struct pl_node *node, struct pl_peer *p, uint8_t code, const char *why)
{
	uint8_t digest[PL_SHA256_LEN];
	uint8_t head[2 + 255];
	size_t n;

	if (!why[0])
		why = "?"; /* what a child reads an empty reason as */
	n = strlen(why);

	if (n > 255)
		n = 255;
	head[0] = code;
	head[1] = (uint8_t)n;
	memcpy(head + 2, why, n);
	pl_sha256(head + 2, n, digest);
	if (dn_queue_credential(node, p, PL_AUTH_REFUSE, code, digest, false) < 0 ||
	    p->out_len + n + 2 > sizeof(p->out)) {
		dn_peer_free(p);
		return;
	}
	memmove(p->out + n + 2, p->out, p->out_len);
	memcpy(p->out, head, n + 2);
	p->out_len += n + 2;
	p->closing = true;
}

/* ------------------------------------------------------------------ HELLO */

static bool is_below(const struct pl_node *node, size_t i)
{
	size_t anc[64];
	size_t n = pl_tree_ancestors(i, node->plan->cfg->tree_fanout, anc, 64);

	for (size_t j = 0; j < n && j < 64; j++)
		if (anc[j] == node->self)
			return true;
	return false;
}

static void hello_verified(struct pl_node *node, struct pl_peer *p,
			   const struct pl_auth_claim *claim)
{
	p->node = pl_hostlist_index(node->plan->nodes, claim->sender);
	p->pos = claim->size;
	memcpy(p->hello_secret, claim->secret, sizeof(p->hello_secret));
	if (!is_below(node, p->node)) {
		dn_peer_refused(node, p, "it is not below this node in the tree");
		return;
	}
	node->expect_until[p->node] = 0;
	node->first_until[p->node] = 0;
	if (claim->size > 0 &&
	    (!node->header_known || memcmp(claim->digest, node->dec.d.header, PL_SHA256_LEN))) {
		dn_queue_refusal(node, p, PL_REPLY_NOT_HERE,
				 "resuming a session this node does not have");
		return;
	}
	pl_debug("%s job %u on %s: tree: %s asks from offset %llu", dn_ctx(node),
		 node->plan->job_id, pl_node_name(node, node->self), claim->sender,
		 (unsigned long long)claim->size);
	p->state = PEER_WAIT;
}

void dn_read_hello(struct pl_node *node, struct pl_peer *p)
{
	struct pl_auth_expect want = {.role = PL_AUTH_HELLO,
				      .job_id = node->plan->job_id,
				      .key = node->plan->key,
				      .self = pl_node_name(node, node->self),
				      .nodes = node->plan->nodes,
				      .slurm_uid = node->plan->slurm_uid,
				      .binding = p->binding,
				      .channel = PL_CHANNEL_BUILD};
	uint8_t buf[512];
	size_t n = p->cred.need - p->cred.have;
	struct pl_auth_claim claim;
	char err[PL_ERRLEN];
	size_t used;
	ssize_t got;
	int rc;

	got = read(p->fd, buf, n < sizeof(buf) ? n : sizeof(buf));
	if (got < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (got <= 0) {
		dn_peer_refused(node, p, got < 0 ? strerror(errno) : "closed before its HELLO");
		return;
	}
	rc = pl_auth_reader_feed(&p->cred, buf, (size_t)got, &used, err, sizeof(err));
	if (rc == 0)
		return;
	if (rc < 0 ||
	    pl_auth_verify(&node->auth, p->cred.text, &want, &claim, err, sizeof(err)) < 0) {
		dn_peer_refused(node, p, err);
		return;
	}
	hello_verified(node, p, &claim);
}
