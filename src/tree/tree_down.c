/* The downstream side of a node: the connections of its children (and of nodes further down that
 * re-attach after losing their parent). Each gets the same stream, from the byte it asks for,
 * at its own pace within the ring; a HELLO that is not a prolog of this job's, for this session,
 * from a node below this one, gets nothing. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "tree_bind.h"
#include "tree_down.h"
#include "tree_net.h"
#include "tree_node.h"

static const char *ctx(const struct pl_node *node)
{
	return node->plan->context;
}

static void peer_free(struct pl_peer *p)
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
static void expect_subtree(struct pl_node *node, size_t child)
{
	const struct pl_config *cfg = node->plan->cfg;
	long long until =
	    pl_now_ms() +
	    (long long)(cfg->tree_stall_timeout + 2 * cfg->tree_connect_timeout) * 1000;
	size_t first;
	size_t n = pl_tree_children(child, node->plan->nodes->n, cfg->tree_fanout, &first);

	node->expect_until[child] = until;
	for (size_t i = 0; i < n; i++)
		node->expect_until[first + i] = until;
}

/* A verified peer went away before the end of the session. */
static void peer_lost(struct pl_node *node, struct pl_peer *p, const char *why)
{
	if (node->abandoned) {
		peer_free(p);
		return;
	}
	pl_info("%s job %u on %s: tree: dropped %s at offset %llu: %s", ctx(node),
		node->plan->job_id, pl_node_name(node, node->self), pl_node_name(node, p->node),
		(unsigned long long)p->pos, why);
	expect_subtree(node, p->node);
	peer_free(p);
}

static void peer_refused(struct pl_node *node, struct pl_peer *p, const char *why)
{
	pl_info("%s job %u on %s: tree: refused a connection from %s: %s", ctx(node),
		node->plan->job_id, pl_node_name(node, node->self), p->addr, why);
	peer_free(p);
}

/* Connections from one address still to send their HELLO: a node's prolog has one at a time
 * (its children's come from their own addresses), so more are someone holding slots. */
static size_t pending_from(const struct pl_node *node, const char *addr)
{
	const char *colon = strrchr(addr, ':'); /* "ADDRESS:PORT", the address may be IPv6 */
	size_t len = colon ? (size_t)(colon - addr) : strlen(addr);
	size_t n = 0;

	for (size_t i = 0; i < PL_TREE_MAX_PEERS; i++) {
		const struct pl_peer *p = &node->peers[i];

		if (p->state == PEER_HELLO && strncmp(p->addr, addr, len) == 0 &&
		    p->addr[len] == ':')
			n++;
	}
	return n;
}

void pl_down_accept(struct pl_node *node)
{
	const struct pl_config *cfg = node->plan->cfg;
	struct pl_peer *slot = NULL;
	char addr[64];
	long long hello_ms = (long long)cfg->tree_connect_timeout * 1000;
	int fd = accept4(node->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0)
		return;
	pl_peer_name(fd, addr, sizeof(addr));
	for (size_t i = 0; i < PL_TREE_MAX_PEERS && !slot; i++)
		if (node->peers[i].state == PEER_FREE)
			slot = &node->peers[i];
	if (!slot || pending_from(node, addr) >= PL_TREE_PENDING_PER_ADDRESS) {
		close(fd); /* it will move on up the tree */
		return;
	}
	peer_free(slot);
	slot->fd = fd;
	slot->state = PEER_HELLO;
	slot->node = PL_TREE_NONE;
	/* A HELLO is sent right after connect: a slot is not held long for one that is not. */
	slot->until = pl_now_ms() + (hello_ms < PL_TREE_HELLO_MS ? hello_ms : PL_TREE_HELLO_MS);
	snprintf(slot->addr, sizeof(slot->addr), "%s", addr);
	pl_auth_reader_init(&slot->cred);
	if (pl_channel_binding(fd, true, slot->binding) < 0)
		peer_refused(node, slot, "its addresses are unknown");
}

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

static int queue_credential(struct pl_node *node, struct pl_peer *p, enum pl_auth_role role,
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
		pl_error("%s job %u on %s: tree: cannot make a credential for %s: %s", ctx(node),
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
static void queue_refusal(struct pl_node *node, struct pl_peer *p, uint8_t code, const char *why)
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
	if (queue_credential(node, p, PL_AUTH_REFUSE, code, digest, false) < 0 ||
	    p->out_len + n + 2 > sizeof(p->out)) {
		peer_free(p);
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
		peer_refused(node, p, "it is not below this node in the tree");
		return;
	}
	node->expect_until[p->node] = 0;
	node->first_until[p->node] = 0;
	if (claim->size > 0 &&
	    (!node->header_known || memcmp(claim->digest, node->dec.d.header, PL_SHA256_LEN))) {
		queue_refusal(node, p, PL_REPLY_NOT_HERE,
			      "resuming a session this node does not have");
		return;
	}
	pl_debug("%s job %u on %s: tree: %s asks from offset %llu", ctx(node), node->plan->job_id,
		 pl_node_name(node, node->self), claim->sender, (unsigned long long)claim->size);
	p->state = PEER_WAIT;
}

static void read_hello(struct pl_node *node, struct pl_peer *p)
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
		peer_refused(node, p, got < 0 ? strerror(errno) : "closed before its HELLO");
		return;
	}
	rc = pl_auth_reader_feed(&p->cred, buf, (size_t)got, &used, err, sizeof(err));
	if (rc == 0)
		return;
	if (rc < 0 ||
	    pl_auth_verify(&node->auth, p->cred.text, &want, &claim, err, sizeof(err)) < 0) {
		peer_refused(node, p, err);
		return;
	}
	hello_verified(node, p, &claim);
}

/* ------------------------------------------------------------------ the stream */

/* A waiting peer gets its OPEN once there is something to send it (store-and-forward: the whole
 * verified session). */
static void wake(struct pl_node *node, struct pl_peer *p)
{
	if (node->abandoned) {
		queue_refusal(node, p, node->abandoned, node->abandon_why);
		return;
	}
	if (!node->header_known || (node->plan->cfg->tree_store_and_forward && !node->sealed))
		return;
	if (p->pos < node->ring.lo) {
		queue_refusal(node, p, PL_REPLY_NOT_HERE, "its offset is no longer held here");
		return;
	}
	if (p->pos > node->ring.hi)
		return; /* it is ahead of us: wait until we catch up */
	if (queue_credential(node, p, PL_AUTH_OPEN, p->pos, node->dec.d.header, true) < 0)
		peer_lost(node, p, "no OPEN credential");
}

static void flush_out(struct pl_node *node, struct pl_peer *p)
{
	while (p->out_sent < p->out_len) {
		ssize_t n =
		    send(p->fd, p->out + p->out_sent, p->out_len - p->out_sent, MSG_NOSIGNAL);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n < 0) {
			peer_lost(node, p, strerror(errno));
			return;
		}
		p->out_sent += (size_t)n;
		p->last_io = pl_now_ms();
	}
	if (p->closing)
		peer_free(p);
	else if (p->sealed) {
		p->state = PEER_LINGER;
		p->until = pl_now_ms() + (long long)node->plan->cfg->tree_connect_timeout * 1000;
	} else
		p->state = PEER_STREAM;
}

/* Sends what is left of the record in progress: false while some is. */
static bool flush_record(struct pl_node *node, struct pl_peer *p)
{
	while (p->rec_sent < p->rec_len) {
		ssize_t n =
		    send(p->fd, p->rec + p->rec_sent, p->rec_len - p->rec_sent, MSG_NOSIGNAL);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return false;
		if (n < 0) {
			peer_lost(node, p, strerror(errno));
			return false;
		}
		p->rec_sent += (size_t)n;
		p->last_io = pl_now_ms();
	}
	return true;
}

/* The stream in records: the ring's bytes are sealed a record at a time as the socket takes
 * them (the ring keeps plaintext: every connection has its own key). */
static bool send_records(struct pl_node *node, struct pl_peer *p)
{
	char err[PL_ERRLEN];

	while (flush_record(node, p)) {
		const uint8_t *data;
		size_t len;

		if (p->pos >= node->ring.hi)
			return true;
		len = pl_ring_peek(&node->ring, p->pos, &data);
		if (len > PL_CIPHER_RECORD_MAX)
			len = PL_CIPHER_RECORD_MAX;
		p->rec_sent = 0;
		if (pl_cipher_seal(&p->tx, data, len, p->rec, PL_CIPHER_RECORD_WIRE_MAX,
				   &p->rec_len, err, sizeof(err)) < 0) {
			p->rec_len = 0;
			peer_lost(node, p, err);
			return false;
		}
		p->pos += len;
		node->bytes_out += len;
	}
	return false;
}

static void send_stream(struct pl_node *node, struct pl_peer *p)
{
	if (p->tx_on && !send_records(node, p))
		return;
	while (p->pos < node->ring.hi) {
		const uint8_t *data;
		size_t len = pl_ring_peek(&node->ring, p->pos, &data);
		ssize_t n = send(p->fd, data, len, MSG_NOSIGNAL);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n < 0) {
			peer_lost(node, p, strerror(errno));
			return;
		}
		p->pos += (uint64_t)n;
		node->bytes_out += (uint64_t)n;
		p->last_io = pl_now_ms();
	}
	/* We vouch for a session only once it was vouched for to us. */
	if (node->stream_end && node->sealed &&
	    queue_credential(node, p, PL_AUTH_SEAL, node->dec.d.total, node->dec.d.session,
			     false) == 0)
		p->sealed = true;
}

/* In the stream a peer says nothing: readable means it went away (or misbehaves). */
static void read_quiet(struct pl_node *node, struct pl_peer *p)
{
	uint8_t b[64];
	ssize_t n = read(p->fd, b, sizeof(b));

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (p->state == PEER_LINGER) {
		pl_debug("%s job %u on %s: tree: %s has the whole session", ctx(node),
			 node->plan->job_id, pl_node_name(node, node->self),
			 pl_node_name(node, p->node));
		peer_free(p);
		return;
	}
	peer_lost(node, p, n == 0 ? "it closed the connection" : "it sent bytes mid-stream");
}

/* ------------------------------------------------------------------ the loop's entries */

void pl_down_poll_fd(const struct pl_node *node, const struct pl_peer *p, short *events)
{
	*events = 0;
	switch (p->state) {
	case PEER_HELLO:
	case PEER_LINGER:
		*events = POLLIN;
		break;
	case PEER_SEND:
		*events = POLLOUT;
		break;
	case PEER_STREAM:
		*events = POLLIN | (p->pos < node->ring.hi || p->rec_sent < p->rec_len ||
					    (node->stream_end && node->sealed)
					? POLLOUT
					: 0);
		break;
	default:
		break;
	}
}

static void check_timers(struct pl_node *node, struct pl_peer *p)
{
	long long now = pl_now_ms();
	long long stall = (long long)node->plan->cfg->tree_stall_timeout * 1000;

	if (p->state == PEER_HELLO && now >= p->until)
		peer_refused(node, p, "no HELLO in time");
	else if (p->state == PEER_WAIT)
		wake(node, p);
	else if (p->state == PEER_LINGER && now >= p->until)
		peer_free(p);
	else if ((p->state == PEER_STREAM &&
		  (p->pos < node->ring.hi || p->rec_sent < p->rec_len)) ||
		 p->state == PEER_SEND) {
		if (now - p->last_io >= stall)
			peer_lost(node, p, "it stalled");
	} else
		p->last_io = now;
}

void pl_down_step(struct pl_node *node, struct pl_peer *p, short revents)
{
	if (p->state == PEER_HELLO && revents & (POLLIN | POLLHUP | POLLERR))
		read_hello(node, p);
	else if ((p->state == PEER_STREAM || p->state == PEER_LINGER) &&
		 revents & (POLLIN | POLLHUP | POLLERR))
		read_quiet(node, p);
	if (p->state == PEER_SEND && revents & POLLOUT)
		flush_out(node, p);
	if (p->state == PEER_STREAM && revents & POLLOUT)
		send_stream(node, p);
	if (p->state != PEER_FREE)
		check_timers(node, p);
}

void pl_down_abandon(struct pl_node *node, bool whole_tree_off, const char *why)
{
	if (node->abandoned)
		return;
	node->abandoned = whole_tree_off ? PL_REPLY_DIRECT : PL_REPLY_NOT_HERE;
	pl_text(node->abandon_why, sizeof(node->abandon_why), "%s", why);
	for (size_t i = 0; i < PL_TREE_MAX_PEERS; i++) {
		struct pl_peer *p = &node->peers[i];

		if (p->state == PEER_WAIT)
			queue_refusal(node, p, node->abandoned, node->abandon_why);
		else if (p->state != PEER_FREE && p->state != PEER_HELLO &&
			 !(p->state == PEER_SEND && p->closing))
			peer_lost(node, p, "this node gave up the session");
	}
}

bool pl_down_busy(const struct pl_node *node)
{
	long long now = pl_now_ms();

	for (size_t i = 0; i < PL_TREE_MAX_PEERS; i++)
		if (node->peers[i].state != PEER_FREE)
			return true;
	for (size_t i = 0; i < node->plan->nodes->n; i++)
		if (node->expect_until[i] > now)
			return true;
	return false;
}
