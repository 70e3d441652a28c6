/* The session as it arrives from upstream: the channel's records opened, the frames into the
 * ring, the header and the END, and the seal credential that vouches for the whole. */
#include "tree_up_internal.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------ the stream */

static void header_arrived(struct pl_node *node)
{
	struct pl_upstream *up = &node->up;

	node->header_known = true;
	if (node->self == 0 || up->open_checked)
		return;
	up->open_checked = true;
	if (memcmp(up->open.digest, node->dec.d.header, PL_SHA256_LEN) != 0)
		up_broken(node, "the header does not match the parent's OPEN credential");
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
			up_broken(node, err);
			return n;
		}
		if (used && pl_ring_append(&node->ring, in + done, used, pl_node_keep_from(node)) !=
				(long)used) {
			up_broken(node, "out of buffer space");
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
		up_broken(node, why);
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
		up_broken(node, err);
	else if (rc == 1)
		check_seal(node);
	return used;
}

void up_take_bytes(struct pl_node *node, const uint8_t *in, size_t n)
{
	size_t done = 0;

	while (done < n) {
		size_t used = 0;

		switch (node->up.state) {
		case UP_REPLY:
			used = up_take_reply(node, in + done, n - done);
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
void up_take_records(struct pl_node *node, const uint8_t *in, size_t n)
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
			up_lost(node, err);
			return;
		}
		done += used;
		if (rc == 1)
			up_take_bytes(node, plain, plain_len);
	}
}
