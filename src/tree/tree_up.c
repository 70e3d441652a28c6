/* The upstream side of a node: where its session comes from. The root's is its own reader of the
 * shared file system (a child running as the user, tree_source.c); every other node's is a TCP
 * connection to its parent, or, when the parent fails, to the nearest ancestor that still holds
 * the stream at the byte where it stopped. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "tree_bind.h"
#include "tree_net.h"
#include "tree_node.h"
#include "tree_source.h"
#include "tree_up.h"

#define RETRY_MS 100

static void up_close(struct pl_upstream *up)
{
	if (up->fd >= 0)
		close(up->fd);
	up->fd = -1;
	if (up->rx_on)
		pl_cipher_reader_free(&up->rx);
	up->rx_on = false;
}

/* The stream can no longer come through the tree. */
static void up_fail(struct pl_node *node, const char *why)
{
	struct pl_upstream *up = &node->up;

	up_close(up);
	up->state = UP_FAILED;
	if (why)
		pl_text(up->why, sizeof(up->why), "%s", why);
}

static void broken(struct pl_node *node, const char *why)
{
	node->stream_broken = true;
	pl_text(node->broken_why, sizeof(node->broken_why), "%s", why);
	up_fail(node, why);
}

static int start_source(struct pl_node *node, char *err, size_t errlen)
{
	const struct pl_tree_plan *plan = node->plan;
	struct pl_tree_source src = {.bundles = plan->bundles,
				     .user = plan->user,
				     .job_id = plan->job_id,
				     .key = plan->key,
				     .max_bytes = plan->cfg->stage_max_size};
	int fds[2];
	int rc;

	if (pipe2(fds, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return -1;
	}
	src.out_fd = fds[1];
	rc = pl_spawn_as_user(plan->user, pl_tree_source_work, &src, fds[1], &node->up.source, err,
			      errlen);
	close(fds[1]);
	if (rc < 0) {
		close(fds[0]);
		return -1;
	}
	fcntl(fds[0], F_SETFL, O_NONBLOCK);
	node->up.fd = fds[0];
	node->up.state = UP_STREAM;
	return 0;
}

int pl_up_start(struct pl_node *node, char *err, size_t errlen)
{
	struct pl_upstream *up = &node->up;
	unsigned k = node->plan->cfg->tree_fanout;

	up->fd = -1;
	up->source.pid = -1;
	up->source.report_fd = -1;
	up->serving = PL_TREE_NONE;
	if (node->self == 0)
		return start_source(node, err, errlen);
	up->nancestors = pl_tree_ancestors(node->self, k, up->ancestors, 64);
	if (up->nancestors > 64)
		up->nancestors = 64;
	up->state = UP_IDLE;
	up->until = pl_now_ms() + (long long)node->plan->cfg->tree_connect_timeout * 1000;
	return 0;
}

/* ------------------------------------------------------------------ choosing whom to ask */

/* On to the next ancestor (after a refusal or a timeout), or the end of the tree. */
static void next_ancestor(struct pl_node *node, const char *why)
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
static void next_candidate(struct pl_node *node, const char *why)
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
		next_ancestor(node, why);
		return;
	}
	up->state = UP_IDLE;
	up->retry_at = pl_now_ms() + RETRY_MS;
}

/* The session was lost mid-way: ask again from the parent up, at the byte where it stopped. */
static void lost(struct pl_node *node, const char *why)
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

static void try_connect(struct pl_node *node)
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
		next_ancestor(node, err);
		return;
	}
	up->fd = pl_tree_connect_start(
	    &addr, alen,
	    pl_tree_port(node->plan->job_id, up->attempt, cfg->tree_port_min, cfg->tree_port_max),
	    err, sizeof(err));
	if (up->fd < 0) {
		next_candidate(node, err);
		return;
	}
	up->state = UP_CONNECTING;
}

static void connected(struct pl_node *node)
{
	struct pl_upstream *up = &node->up;
	char err[PL_ERRLEN];

	if (pl_connect_result(up->fd, err, sizeof(err)) < 0) {
		next_candidate(node, err);
		return;
	}
	if (pl_channel_binding(up->fd, false, up->binding) < 0) {
		next_candidate(node, "the connection's addresses are unknown");
		return;
	}
	if (send_hello(node, err, sizeof(err)) < 0) {
		next_candidate(node, err);
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
		next_candidate(node, "its OPEN credential was refused");
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
		next_ancestor(node, why);
	}
}

static bool reason_complete(const struct pl_upstream *up)
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
		next_candidate(node, up->why);
		return;
	}
	refused(node);
}

/* Bytes of the answer: the status byte, then the credential or the reason. */
static size_t take_reply(struct pl_node *node, const uint8_t *in, size_t n)
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
			next_candidate(node, "not a pylaunch tree of this job");
			return n;
		}
	}
	size_t took = 0;
	if (up->reply != PL_REPLY_OPEN && !reason_complete(up)) {
		used += take_reason(node, in + used, n - used);
		return used;
	}
	rc = pl_auth_reader_feed(&up->cred, in + used, n - used, &took, err, sizeof(err));
	used += took;
	if (rc < 0)
		next_candidate(node, err);
	else if (rc == 1 && up->reply == PL_REPLY_OPEN)
		check_open(node);
	else if (rc == 1)
		check_refusal(node);
	return used;
}

/* ------------------------------------------------------------------ the stream */

static void header_arrived(struct pl_node *node)
{
	struct pl_upstream *up = &node->up;

	node->header_known = true;
	if (node->self == 0 || up->open_checked)
		return;
	up->open_checked = true;
	if (memcmp(up->open.digest, node->dec.d.header, PL_SHA256_LEN) != 0)
		broken(node, "the header does not match the parent's OPEN credential");
}

static void end_arrived(struct pl_node *node)
{
	node->stream_end = true;
	if (node->self != 0) {
		node->up.state = UP_SEAL;
		pl_auth_reader_init(&node->up.cred);
	}
}

/* Decodes and keeps stream bytes; returns bytes consumed (up to the END frame). */
static size_t take_stream(struct pl_node *node, const uint8_t *in, size_t n)
{
	size_t done = 0;

	while (done < n && node->up.state == UP_STREAM) {
		struct pl_frame_event_info ev;
		char err[PL_ERRLEN];
		size_t used = 0;
		int e =
		    pl_frame_decode(&node->dec, in + done, n - done, &used, &ev, err, sizeof(err));

		if (e == PL_FRAME_ERROR) {
			broken(node, err);
			return n;
		}
		if (used && pl_ring_append(&node->ring, in + done, used, pl_node_keep_from(node)) !=
				(long)used) {
			broken(node, "out of buffer space");
			return n;
		}
		done += used;
		if (e == PL_FRAME_HEADER)
			header_arrived(node);
		else if (e == PL_FRAME_END)
			end_arrived(node);
	}
	return done;
}

static void check_seal(struct pl_node *node)
{
	struct pl_upstream *up = &node->up;
	struct pl_auth_expect want = {.role = PL_AUTH_SEAL,
				      .job_id = node->plan->job_id,
				      .key = node->plan->key,
				      .self = pl_node_name(node, node->self),
				      .nodes = node->plan->nodes,
				      .sender = pl_node_name(node, up->serving),
				      .slurm_uid = node->plan->slurm_uid,
				      .check_content = true,
				      .digest = node->dec.d.session,
				      .size = node->dec.d.total,
				      .binding = up->binding,
				      .channel = PL_CHANNEL_BUILD};
	struct pl_auth_claim claim;
	char err[PL_ERRLEN];

	if (pl_auth_verify(&node->auth, up->cred.text, &want, &claim, err, sizeof(err)) < 0) {
		char why[PL_ERRLEN + 32];

		pl_text(why, sizeof(why), "the seal was refused: %s", err);
		broken(node, why);
		return;
	}
	node->sealed = true;
	up_close(up);
	up->state = UP_DONE;
}

static size_t take_seal(struct pl_node *node, const uint8_t *in, size_t n)
{
	char err[PL_ERRLEN];
	size_t used = 0;
	int rc = pl_auth_reader_feed(&node->up.cred, in, n, &used, err, sizeof(err));

	if (rc < 0)
		broken(node, err);
	else if (rc == 1)
		check_seal(node);
	return used;
}

static void take_bytes(struct pl_node *node, const uint8_t *in, size_t n)
{
	size_t done = 0;

	while (done < n) {
		size_t used = 0;

		switch (node->up.state) {
		case UP_REPLY:
			used = take_reply(node, in + done, n - done);
			break;
		case UP_STREAM:
			used = take_stream(node, in + done, n - done);
			break;
		case UP_SEAL:
			used = take_seal(node, in + done, n - done);
			break;
		default:
			return; /* anything after the seal, or after a failure, is not ours */
		}
		if (used == 0 && node->up.state != UP_STREAM)
			return;
		done += used;
	}
}

/* Bytes from the parent after its OPEN: records, each authenticated before its plaintext is
 * looked at. A bad one ends the connection, as a lost parent does: re-attach where we are. */
static void take_records(struct pl_node *node, const uint8_t *in, size_t n)
{
	size_t done = 0;

	while (done < n && node->up.rx_on &&
	       (node->up.state == UP_STREAM || node->up.state == UP_SEAL)) {
		const uint8_t *plain = NULL;
		size_t used = 0, plain_len = 0;
		char err[PL_ERRLEN];
		int rc = pl_cipher_reader_feed(&node->up.rx, in + done, n - done, &used, &plain,
					       &plain_len, err, sizeof(err));

		if (rc < 0) {
			lost(node, err);
			return;
		}
		done += used;
		if (rc == 1)
			take_bytes(node, plain, plain_len);
	}
}

/* ------------------------------------------------------------------ the root's reader */

void pl_up_source_end(struct pl_node *node)
{
	struct pl_upstream *up = &node->up;
	char msg[PL_ERRLEN];

	up_close(up);
	if (pl_user_child_finish(&up->source, 0, msg, sizeof(msg)) < 0 || !node->stream_end) {
		char why[PL_ERRLEN + 64];

		pl_text(why, sizeof(why), "reading the bundles: %s",
			msg[0] ? msg : "the reader stopped early");
		up->direct_asked = true;
		pl_node_abandon(node, true, why);
		up_fail(node, why);
		return;
	}
	node->sealed = true;
	up->state = UP_DONE;
}

/* ------------------------------------------------------------------ the loop's entries */

/* The answer is read to its last byte and no further: the stream that follows it must go
 * through the ring's flow control like the rest. */
static size_t reply_need(const struct pl_upstream *up)
{
	if (up->reply == 0)
		return 1;
	if (up->reply != PL_REPLY_OPEN && !reason_complete(up))
		return up->reason_len == 0 ? 1 : up->reason_len - up->reason_have;
	return up->cred.need - up->cred.have;
}

static size_t read_allowance(const struct pl_node *node)
{
	size_t room = pl_ring_room(&node->ring, pl_node_keep_from(node));

	if (node->up.state == UP_REPLY)
		return reply_need(&node->up);
	if (node->up.state != UP_STREAM)
		return PL_TREE_READ_SIZE; /* the seal: nothing follows it */
	/* What a record in progress and these bytes can decrypt to must fit the ring. */
	if (node->up.rx_on)
		room = room > pl_cipher_reader_pending(&node->up.rx)
			   ? room - pl_cipher_reader_pending(&node->up.rx)
			   : 0;
	return room < PL_TREE_READ_SIZE ? room : PL_TREE_READ_SIZE;
}

void pl_up_poll_fd(const struct pl_node *node, int *fd, short *events)
{
	const struct pl_upstream *up = &node->up;

	*fd = -1;
	*events = 0;
	if (up->fd < 0)
		return;
	if (up->state == UP_CONNECTING) {
		*fd = up->fd;
		*events = POLLOUT;
	} else if ((up->state == UP_REPLY || up->state == UP_STREAM || up->state == UP_SEAL) &&
		   read_allowance(node) > 0) {
		*fd = up->fd;
		*events = POLLIN;
	}
}

static void read_up(struct pl_node *node)
{
	static uint8_t buf[PL_TREE_READ_SIZE];
	size_t want = read_allowance(node);
	ssize_t n = read(node->up.fd, buf, want);

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		if (node->self == 0)
			pl_up_source_end(node);
		else if (node->up.state == UP_REPLY)
			next_candidate(node, n < 0 ? strerror(errno) : "closed before answering");
		else
			lost(node, n < 0 ? strerror(errno) : "the connection was closed");
		return;
	}
	node->up.last_io = pl_now_ms();
	if (node->up.rx_on)
		take_records(node, buf, (size_t)n);
	else
		take_bytes(node, buf, (size_t)n);
}

/* In store-and-forward a parent answers a HELLO only once it holds the whole session, which
 * takes longer than a connection should: seen as a stalled stream, not as a dead parent. */
static long long reply_wait(const struct pl_node *node, long long connect, long long stall)
{
	return node->plan->cfg->tree_store_and_forward ? stall : connect;
}

static void check_timers(struct pl_node *node)
{
	struct pl_upstream *up = &node->up;
	long long now = pl_now_ms();
	long long stall = (long long)node->plan->cfg->tree_stall_timeout * 1000;
	long long connect = (long long)node->plan->cfg->tree_connect_timeout * 1000;

	if (node->self == 0)
		return;
	if (up->state == UP_IDLE)
		try_connect(node);
	else if (up->state == UP_CONNECTING && now >= up->until)
		next_ancestor(node, "no answer to connect");
	else if (up->state == UP_REPLY && now - up->last_io >= reply_wait(node, connect, stall))
		next_ancestor(node, "no answer to HELLO");
	else if ((up->state == UP_STREAM || up->state == UP_SEAL) && read_allowance(node) == 0)
		up->last_io = now; /* we hold it back, not the parent */
	else if ((up->state == UP_STREAM || up->state == UP_SEAL) && now - up->last_io >= stall)
		lost(node, "the stream stalled");
}

void pl_up_step(struct pl_node *node, short revents)
{
	if (revents & POLLOUT && node->up.state == UP_CONNECTING)
		connected(node);
	else if (revents & (POLLIN | POLLHUP | POLLERR))
		read_up(node);
	check_timers(node);
}
