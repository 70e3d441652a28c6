/* One node's part in a fan-out session, inside the tree process (root, forked by the staging
 * code): the state that its upstream side (tree_up.h: the parent, or the root's reader of the
 * shared file system), its downstream side (tree_down.h: the children and whoever re-attaches)
 * and its own extraction share, and the node's interface, the only way the two halves reach each
 * other (tree_node.c). The loop that drives them is tree_run.c.
 *
 * Internal to the tree: the rest of the plugin uses tree_stage.h. */
#ifndef PL_TREE_NODE_H
#define PL_TREE_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "optparse.h"
#include "runas.h"
#include "sha256.h"
#include "tree_auth.h"
#include "tree_cipher.h"
#include "tree_frame.h"
#include "tree_ring.h"
#include "tree_stage.h"
#include "tree_topology.h"

/* Connections a node serves at once: its children and those of its children's subtrees that
 * re-attach; more are turned away (they move on up the tree). */
#define PL_TREE_MAX_PEERS 128
#define PL_TREE_READ_SIZE (256 * 1024)
/* Connections from one address that may wait for their HELLO at once, and for how long (ms). */
#define PL_TREE_PENDING_PER_ADDRESS 4
#define PL_TREE_HELLO_MS 2000

/* What a parent answers a HELLO with, before anything else. */
#define PL_REPLY_OPEN 'O'     /* then its OPEN credential, then the stream */
#define PL_REPLY_NOT_HERE 'N' /* then a u8 length and a reason: try elsewhere */
#define PL_REPLY_DIRECT 'D'   /* then a u8 length and a reason: the tree is off, read it yourself */

enum pl_up_state {
	UP_IDLE,       /* choose the next ancestor or port */
	UP_CONNECTING, /* waiting for connect() */
	UP_REPLY,      /* HELLO sent, waiting for the answer and the OPEN credential */
	UP_STREAM,     /* receiving the session */
	UP_SEAL,       /* END received, reading the seal credential */
	UP_DONE,       /* the whole session is here and vouched for */
	UP_FAILED,     /* no one can give it: fall back to the shared file system */
};

struct pl_upstream {
	enum pl_up_state state;
	int fd;
	size_t ancestors[64]; /* parent first, root last */
	size_t nancestors;
	size_t which;	    /* the ancestor being tried */
	unsigned attempt;   /* its port candidate */
	long long until;    /* give up on this ancestor at (ms) */
	long long last_io;  /* stall detection (ms) */
	long long retry_at; /* after a round of refusals, not before (ms) */
	size_t serving;	    /* node index of the one that serves us, PL_TREE_NONE if none */
	bool reattached;    /* served by someone else than the first parent, or twice */
	uint8_t reply;	    /* the status byte, 0 until read */
	uint8_t reason_len;
	size_t reason_have;
	char reason[256];
	struct pl_auth_reader cred;
	uint8_t binding[PL_SHA256_LEN]; /* of the connection (tree_bind.h) */
	struct pl_auth_claim open;
	bool open_checked;		      /* its digest was compared with the header */
	uint8_t secret[PL_CIPHER_SECRET_LEN]; /* our half of the key, in our HELLO */
	bool rx_on;			      /* after the OPEN: records from the parent */
	struct pl_cipher_reader rx;	      /* (tree_cipher.h) */
	struct pl_user_child source;	      /* the root's reader */
	char why[PL_ERRLEN];		      /* the last problem, for the log */
	bool direct_asked;		      /* the root said: everyone reads it themselves */
};

enum pl_peer_state {
	PEER_FREE,
	PEER_HELLO,  /* reading its HELLO */
	PEER_WAIT,   /* verified; waiting for the header (or the whole session: store mode) */
	PEER_SEND,   /* control bytes out (reply + OPEN, or SEAL) */
	PEER_STREAM, /* session bytes out */
	PEER_LINGER, /* seal sent: waiting for it to close */
};

struct pl_peer {
	enum pl_peer_state state;
	int fd;
	size_t node; /* its index, once its HELLO is verified */
	char addr[64];
	uint8_t binding[PL_SHA256_LEN]; /* of the connection (tree_bind.h) */
	struct pl_auth_reader cred;
	uint64_t pos; /* next stream offset to send */
	bool sealed;  /* the SEAL is in out (or sent) */
	bool closing; /* after out: close (a refusal) */
	uint8_t out[PL_AUTH_CRED_MAX + 260];
	size_t out_len, out_sent;
	uint8_t hello_secret[PL_CIPHER_SECRET_LEN]; /* its half of the key */
	bool tx_on;				    /* after its OPEN: everything goes in records */
	struct pl_cipher tx;
	uint8_t *rec; /* the record being sent (PL_CIPHER_RECORD_WIRE_MAX bytes) */
	size_t rec_len, rec_sent;
	long long until;   /* handshake deadline (ms) */
	long long last_io; /* stall detection (ms) */
};

struct pl_extractor {
	int fd; /* write end of its pipe; -1 once closed */
	uint64_t pos;
	struct pl_user_child child;
	bool running, finished, ok;
	char msg[PL_ERRLEN];
};

struct pl_node {
	const struct pl_tree_plan *plan;
	size_t self;
	struct pl_auth_backend auth;
	struct pl_ring ring;
	struct pl_frame_decoder dec;
	bool header_known;
	bool stream_end;    /* the END frame is in: the stream is ring.hi bytes long */
	bool sealed;	    /* ... and vouched for (seal verified, or our own reader finished) */
	bool stream_broken; /* a decoding error: no more of this session here */
	uint8_t abandoned;  /* 0, or the reply (N or D) for whoever still asks */
	char abandon_why[256];
	char broken_why[PL_ERRLEN];
	int listen_fd;
	unsigned port;
	struct pl_upstream up;
	struct pl_extractor ex;
	struct pl_peer peers[PL_TREE_MAX_PEERS];
	long long *expect_until; /* per node: wait for it to connect until (ms), 0: not expected */
	/* Per node: a child of the plan that has not yet attached, until its connect deadline (ms);
	 * 0 once it attached or for any other node. The ring keeps every byte for it till then. */
	long long *first_until;
	uint64_t bytes_out;
	long long t0;
	/* What pl_node_abandon does downstream (pl_down_abandon, set by the loop). */
	void (*abandon_downstream)(struct pl_node *node, bool whole_tree_off, const char *why);
	double connect_s, first_byte_s;
};

long long pl_now_ms(void);
/* snprintf for texts that may be cut (reasons quoted in reasons): no truncation warning. */
void pl_text(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Lowest stream offset someone here still needs (the ring keeps it): its extractor's, its
 * connected peers', and 0 while a child of the plan may still attach for the first time. */
uint64_t pl_node_keep_from(const struct pl_node *node);
/* The node's name and a node's. */
const char *pl_node_name(const struct pl_node *node, size_t i);
/* The session here is over (broken or given up): whoever waits downstream is told, the rest
 * dropped. The upstream side's way to reach the downstream one. */
void pl_node_abandon(struct pl_node *node, bool whole_tree_off, const char *why);

#endif
