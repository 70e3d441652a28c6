/* Attaching upstream: the connection's state (closed, failed, broken), whom to ask (the
 * parent, then each ancestor and its port candidates), the HELLO, and the answer (the OPEN
 * credential and the channel, or a refusal and its reason). */
#include "tree_up_internal.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "tree_bind.h"
#include "tree_net.h"

void up_close(struct pl_upstream *up)
{
	if (up->fd >= 0)
		close(up->fd);
	up->fd = -1;
	if (up->rx_on)
		pl_cipher_reader_free(&up->rx);
	up->rx_on = false;
}

/* The stream can no longer come through the tree. */
void up_fail(struct pl_node *node, const char *why)
{
	struct pl_upstream *up = &node->up;

	up_close(up);
	up->state = UP_FAILED;
	if (why)
		pl_text(up->why, sizeof(up->why), "%s", why);
}

void up_broken(struct pl_node *node, const char *why)
{
	node->stream_broken = true;
	pl_text(node->broken_why, sizeof(node->broken_why), "%s", why);
	up_fail(node, why);
}

/* ------------------------------------------------------------------ choosing whom to ask */

/* On to the next ancestor (after a refusal or a timeout), or the end of the tree. */
void up_next_ancestor(struct pl_node *node, const char *why)
{
	struct pl_upstream *up = &node->up;

	up_close(up);
	pl_debug("%s job %u on %s: tree: %s: %s", node->plan->context, node->plan->job_id,
		 pl_node_name(node, node->self), pl_node_name(node, up->ancestors[up->which]), why);
	pl_text(up->why, sizeof(up->why), "%s: %s", pl_node_name(node, up->ancestors[up->which]),
		why);
	up->which++;
	up->attempt = 0;
	up->until = pl_now_ms() + (long long)node->plan->cfg->tree_connect_timeout * 1000;
	if (up->which >= up->nancestors) {
		char last[PL_ERRLEN];

		pl_text(last, sizeof(last), "no ancestor could serve the stream (last: %s)",
			up->why);
		up_fail(node, last);
		return;
	}
	up->state = UP_IDLE;
}

/* On to the next port candidate of the same ancestor (nothing there, or someone else's). */
void up_next_candidate(struct pl_node *node, const char *why)
{
	struct pl_upstream *up = &node->up;

	up_close(up);
	up->attempt++;
	if (up->attempt < PL_TREE_PORT_ATTEMPTS) {
		up->state = UP_IDLE;
		return;
	}
	up->attempt = 0;
	if (pl_now_ms() >= up->until) {
		up_next_ancestor(node, why);
		return;
	}
	up->state = UP_IDLE;
	up->retry_at = pl_now_ms() + RETRY_MS;
}

/* The session was lost mid-way: ask again from the parent up, at the byte where it stopped. */
void up_lost(struct pl_node *node, const char *why)
{
	struct pl_upstream *up = &node->up;

	pl_info("%s job %u on %s: tree: lost %s at offset %llu: %s; re-attaching",
		node->plan->context, node->plan->job_id, pl_node_name(node, node->self),
		pl_node_name(node, up->serving), (unsigned long long)node->ring.hi, why);
	pl_text(up->why, sizeof(up->why), "%s", why);
	up_close(up);
	up->reattached = true;
	up->which = 0;
	up->attempt = 0;
	up->state = UP_IDLE;
	up->until = pl_now_ms() + (long long)node->plan->cfg->tree_connect_timeout * 1000;
}

static int send_hello(struct pl_node *node, char *err, size_t errlen)
{
	struct pl_upstream *up = &node->up;
	struct pl_auth_claim claim = {.role = PL_AUTH_HELLO,
				      .job_id = node->plan->job_id,
				      .size = node->ring.hi,
				      .channel = PL_CHANNEL_BUILD};
	uint8_t wire[PL_AUTH_CRED_MAX + 2];
	char *cred = NULL;
	size_t len;
	ssize_t n;

	snprintf(claim.key, sizeof(claim.key), "%s", node->plan->key);
	snprintf(claim.sender, sizeof(claim.sender), "%s", pl_node_name(node, node->self));
	snprintf(claim.receiver, sizeof(claim.receiver), "%s",
		 pl_node_name(node, up->ancestors[up->which]));
	if (node->header_known)
		memcpy(claim.digest, node->dec.d.header, PL_SHA256_LEN);
	memcpy(claim.binding, up->binding, PL_SHA256_LEN);
	if (pl_cipher_secret(up->secret, err, errlen) < 0)
		return -1;
	memcpy(claim.secret, up->secret, PL_CIPHER_SECRET_LEN);
	n = pl_auth_make(&node->auth, &claim, &cred, err, errlen);
	memset(claim.secret, 0, sizeof(claim.secret));
	if (n < 0)
		return -1;
	n = pl_auth_wire_encode(cred, wire, sizeof(wire), &len, err, errlen);
	free(cred);
	if (n < 0)
		return -1;
	/* A fresh connection's send buffer takes a credential whole. */
	n = send(up->fd, wire, len, MSG_NOSIGNAL);
	if (n != (ssize_t)len) {
		snprintf(err, errlen, "sending HELLO: %s", n < 0 ? strerror(errno) : "short write");
		return -1;
	}
	return 0;
}

void up_try_connect(struct pl_node *node)
{
	struct pl_upstream *up = &node->up;
	const struct pl_config *cfg = node->plan->cfg;
	const char *name = pl_node_name(node, up->ancestors[up->which]);
	struct sockaddr_storage addr;
	socklen_t alen;
	char err[PL_ERRLEN];

	if (pl_now_ms() < up->retry_at)
		return;
	if (pl_node_address(name, &addr, &alen, err, sizeof(err)) < 0) {
		up_next_ancestor(node, err);
		return;
	}
	up->fd = pl_tree_connect_start(
	    &addr, alen,
	    pl_tree_port(node->plan->job_id, up->attempt, cfg->tree_port_min, cfg->tree_port_max),
	    err, sizeof(err));
	if (up->fd < 0) {
		up_next_candidate(node, err);
		return;
	}
	up->state = UP_CONNECTING;
}

void up_connected(struct pl_node *node)
{
	struct pl_upstream *up = &node->up;
	char err[PL_ERRLEN];

	if (pl_connect_result(up->fd, err, sizeof(err)) < 0) {
		up_next_candidate(node, err);
		return;
	}
	if (pl_channel_binding(up->fd, false, up->binding) < 0) {
		up_next_candidate(node, "the connection's addresses are unknown");
		return;
	}
	if (send_hello(node, err, sizeof(err)) < 0) {
		up_next_candidate(node, err);
		return;
	}
	up->state = UP_REPLY;
	up->reply = 0;
	up->reason_have = 0;
	up->reason_len = 0;
	pl_auth_reader_init(&up->cred);
	up->last_io = pl_now_ms();
}

/* ------------------------------------------------------------------ the answer */

/* After the OPEN, everything from the parent comes in records under the connection's key: our
 * half from the HELLO, the parent's from its OPEN (tree_cipher.h). */
static int start_channel(struct pl_node *node, char *err, size_t errlen)
{
	struct pl_upstream *up = &node->up;
	uint8_t key[PL_CIPHER_KEY_LEN];
	int rc;

	if (PL_CHANNEL_BUILD == PL_CHANNEL_CLEAR)
		return 0;
	rc = pl_cipher_derive(up->secret, up->open.secret, up->binding, sizeof(up->binding), key,
			      err, errlen);
	if (rc == 0)
		rc = pl_cipher_reader_init(&up->rx, key, PL_CIPHER_DOWN, err, errlen);
	memset(key, 0, sizeof(key));
	memset(up->secret, 0, sizeof(up->secret));
	up->rx_on = rc == 0;
	return rc;
}

static void check_open(struct pl_node *node)
{
	struct pl_upstream *up = &node->up;
	const char *from = pl_node_name(node, up->ancestors[up->which]);
	struct pl_auth_expect want = {.role = PL_AUTH_OPEN,
				      .job_id = node->plan->job_id,
				      .key = node->plan->key,
				      .self = pl_node_name(node, node->self),
				      .nodes = node->plan->nodes,
				      .sender = from,
				      .slurm_uid = node->plan->slurm_uid,
				      .check_content = node->header_known,
				      .digest = node->dec.d.header,
				      .size = node->ring.hi,
				      .binding = up->binding,
				      .channel = PL_CHANNEL_BUILD};
	char err[PL_ERRLEN] = "";

	if (pl_auth_verify(&node->auth, up->cred.text, &want, &up->open, err, sizeof(err)) < 0 ||
	    (!node->header_known && up->open.size != 0) ||
	    start_channel(node, err, sizeof(err)) < 0) {
		pl_error("%s job %u on %s: tree: refused the stream of %s: %s", node->plan->context,
			 node->plan->job_id, pl_node_name(node, node->self), from,
			 err[0] ? err : "it starts at another offset");
		/* Maybe not our parent but a squatter on its port: try the next candidate. */
		up_next_candidate(node, "its OPEN credential was refused");
		return;
	}
	up->open_checked = node->header_known;
	if (up->serving != PL_TREE_NONE || up->which > 0)
		up->reattached = true;
	up->serving = up->ancestors[up->which];
	up->state = UP_STREAM;
	up->last_io = pl_now_ms();
	if (node->connect_s == 0)
		node->connect_s = (double)(pl_now_ms() - node->t0) / 1000.0;
}

/* A refusal's reason: u8 length, text. Returns bytes consumed. */
static size_t take_reason(struct pl_node *node, const uint8_t *in, size_t n)
{
	struct pl_upstream *up = &node->up;
	size_t used = 0;

	if (up->reason_have == 0 && up->reason_len == 0 && n > 0) {
		up->reason_len = in[0];
		used = 1;
		if (up->reason_len == 0)
			up->reason_len = 1, up->reason[0] = '?', up->reason_have = 1;
	}
	while (used < n && up->reason_have < up->reason_len)
		up->reason[up->reason_have++] = (char)in[used++];
	up->reason[up->reason_have] = '\0';
	return used;
}

static void refused(struct pl_node *node)
{
	struct pl_upstream *up = &node->up;
	char why[300];

	for (size_t i = 0; i < up->reason_have; i++)
		if (up->reason[i] < ' ' || up->reason[i] > '~')
			up->reason[i] = '?';
	pl_text(why, sizeof(why), "refused: %s", up->reason);
	if (up->reply == PL_REPLY_DIRECT) {
		up->direct_asked = true;
		pl_node_abandon(node, true, up->reason);
		up_fail(node, why);
	} else {
		up_next_ancestor(node, why);
	}
}

bool up_reason_complete(const struct pl_upstream *up)
{
	return up->reason_len && up->reason_have == up->reason_len;
}

/* A refusal counts only with the parent's REFUSE credential for this connection, code and
 * reason: a squatter's N or D on the parent's port is ignored (the next candidate is tried). */
static void check_refusal(struct pl_node *node)
{
	struct pl_upstream *up = &node->up;
	uint8_t digest[PL_SHA256_LEN];
	struct pl_auth_expect want = {.role = PL_AUTH_REFUSE,
				      .job_id = node->plan->job_id,
				      .key = node->plan->key,
				      .self = pl_node_name(node, node->self),
				      .nodes = node->plan->nodes,
				      .sender = pl_node_name(node, up->ancestors[up->which]),
				      .slurm_uid = node->plan->slurm_uid,
				      .check_content = true,
				      .digest = digest,
				      .size = up->reply,
				      .binding = up->binding,
				      .channel = PL_CHANNEL_BUILD};
	struct pl_auth_claim claim;
	char err[PL_ERRLEN];

	pl_sha256(up->reason, up->reason_have, digest);
	if (pl_auth_verify(&node->auth, up->cred.text, &want, &claim, err, sizeof(err)) < 0) {
		pl_text(up->why, sizeof(up->why), "a refusal without a valid credential: %s", err);
		up_next_candidate(node, up->why);
		return;
	}
	refused(node);
}

/* Bytes of the answer: the status byte, then the credential or the reason. */
size_t up_take_reply(struct pl_node *node, const uint8_t *in, size_t n)
{
	struct pl_upstream *up = &node->up;
	size_t used = 0;
	char err[PL_ERRLEN];
	int rc;

	if (up->reply == 0) {
		up->reply = in[0];
		used = 1;
		if (up->reply != PL_REPLY_OPEN && up->reply != PL_REPLY_NOT_HERE &&
		    up->reply != PL_REPLY_DIRECT) {
			up_next_candidate(node, "not a pylaunch tree of this job");
			return n;
		}
	}
	size_t took = 0;
	if (up->reply != PL_REPLY_OPEN && !up_reason_complete(up)) {
		used += take_reason(node, in + used, n - used);
		return used;
	}
	rc = pl_auth_reader_feed(&up->cred, in + used, n - used, &took, err, sizeof(err));
	used += took;
	if (rc < 0)
		up_next_candidate(node, err);
	else if (rc == 1 && up->reply == PL_REPLY_OPEN)
		check_open(node);
	else if (rc == 1)
		check_refusal(node);
	return used;
}
