/* The downstream side of a node: the connections of its children (and of nodes further down that
 * re-attach after losing their parent). Each gets the same stream, from the byte it asks for,
 * at its own pace within the ring; a HELLO that is not a prolog of this job's, for this session,
 * from a node below this one, gets nothing. */
#include "tree_down.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "tree_bind.h"
#include "tree_down_internal.h"
#include "tree_net.h"

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
		dn_peer_free(p);
		return;
	}
	pl_info("%s job %u on %s: tree: dropped %s at offset %llu: %s", dn_ctx(node),
		node->plan->job_id, pl_node_name(node, node->self), pl_node_name(node, p->node),
		(unsigned long long)p->pos, why);
	expect_subtree(node, p->node);
	dn_peer_free(p);
}

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
	dn_peer_free(slot);
	slot->fd = fd;
	slot->state = PEER_HELLO;
	slot->node = PL_TREE_NONE;
	/* A HELLO is sent right after connect: a slot is not held long for one that is not. */
	slot->until = pl_now_ms() + (hello_ms < PL_TREE_HELLO_MS ? hello_ms : PL_TREE_HELLO_MS);
	snprintf(slot->addr, sizeof(slot->addr), "%s", addr);
	pl_auth_reader_init(&slot->cred);
	if (pl_channel_binding(fd, true, slot->binding) < 0)
		dn_peer_refused(node, slot, "its addresses are unknown");
}

/* ------------------------------------------------------------------ the stream */

/* A waiting peer gets its OPEN once there is something to send it (store-and-forward: the whole
 * verified session). */
static void wake(struct pl_node *node, struct pl_peer *p)
{
	if (node->abandoned) {
		dn_queue_refusal(node, p, node->abandoned, node->abandon_why);
		return;
	}
	if (!node->header_known || (node->plan->cfg->tree_store_and_forward && !node->sealed))
		return;
	if (p->pos < node->ring.lo) {
		dn_queue_refusal(node, p, PL_REPLY_NOT_HERE, "its offset is no longer held here");
		return;
	}
	if (p->pos > node->ring.hi)
		return; /* it is ahead of us: wait until we catch up */
	if (dn_queue_credential(node, p, PL_AUTH_OPEN, p->pos, node->dec.d.header, true) < 0)
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
		dn_peer_free(p);
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
	    dn_queue_credential(node, p, PL_AUTH_SEAL, node->dec.d.total, node->dec.d.session,
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
		pl_debug("%s job %u on %s: tree: %s has the whole session", dn_ctx(node),
			 node->plan->job_id, pl_node_name(node, node->self),
			 pl_node_name(node, p->node));
		dn_peer_free(p);
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
		dn_peer_refused(node, p, "no HELLO in time");
	else if (p->state == PEER_WAIT)
		wake(node, p);
	else if (p->state == PEER_LINGER && now >= p->until)
		dn_peer_free(p);
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
		dn_read_hello(node, p);
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
			dn_queue_refusal(node, p, node->abandoned, node->abandon_why);
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
