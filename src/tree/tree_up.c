/* The upstream side of a node: where its session comes from. The root's is its own reader of the
 * shared file system (a child running as the user, tree_source.c); every other node's is a TCP
 * connection to its parent, or, when the parent fails, to the nearest ancestor that still holds
 * the stream at the byte where it stopped. */
#include "tree_up.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tree_source.h"
#include "tree_up_internal.h"

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
	if (up->reply != PL_REPLY_OPEN && !up_reason_complete(up))
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
			up_next_candidate(node,
					  n < 0 ? strerror(errno) : "closed before answering");
		else
			up_lost(node, n < 0 ? strerror(errno) : "the connection was closed");
		return;
	}
	node->up.last_io = pl_now_ms();
	if (node->up.rx_on)
		up_take_records(node, buf, (size_t)n);
	else
		up_take_bytes(node, buf, (size_t)n);
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
		up_try_connect(node);
	else if (up->state == UP_CONNECTING && now >= up->until)
		up_next_ancestor(node, "no answer to connect");
	else if (up->state == UP_REPLY && now - up->last_io >= reply_wait(node, connect, stall))
		up_next_ancestor(node, "no answer to HELLO");
	else if ((up->state == UP_STREAM || up->state == UP_SEAL) && read_allowance(node) == 0)
		up->last_io = now; /* we hold it back, not the parent */
	else if ((up->state == UP_STREAM || up->state == UP_SEAL) && now - up->last_io >= stall)
		up_lost(node, "the stream stalled");
}

void pl_up_step(struct pl_node *node, short revents)
{
	if (revents & POLLOUT && node->up.state == UP_CONNECTING)
		up_connected(node);
	else if (revents & (POLLIN | POLLHUP | POLLERR))
		read_up(node);
	check_timers(node);
}
