/* Authentication of the tree's connections with MUNGE: who may send a session to whom.
 *
 * DESIGN (threat model). Trusted: root and SlurmUser on the job's nodes, munged, the kernel.
 * Not trusted: every other process on any node, including the job's own user and other users:
 * they may listen on the job's ports before the prolog does (squat), connect to any port, relay
 * bytes between connections they hold, and replay what they saw; also someone who reads or
 * forges packets on the wire (a tap, root on another machine). N and D replies carry a REFUSE
 * credential (bound like the rest): a squatter's refusal is ignored. Everything after the OPEN is
 * encrypted and authenticated under a key of the connection (tree_cipher.h) whose halves travel
 * in the HELLO and the OPEN, made with MUNGE's uid restriction set to root (munged decodes them
 * for root alone) and encrypted by munged with the site key: neither a user on a node (squatter,
 * relay) nor the wire reads a byte of the stream or gets one accepted. See pylaunch(8), "The
 * channel" and "Security of the tree".
 * Argument: (1) only root or SlurmUser can make a credential (MUNGE vouches for its maker's uid),
 * so only a prolog of the job can make a HELLO, an OPEN or a SEAL; (2) every credential names
 * the TCP connection it is for: the binding is the SHA-256 of the child's and the parent's
 * addresses and ports, which both ends read from their own socket (getsockname, getpeername);
 * a relay holds two connections with different ports, so a HELLO or an OPEN it passes on names
 * a connection other than the one it arrives over, and is refused; (3) MUNGE's replay cache and
 * TTL stop a credential's reuse; (4) the channel's key needs both secrets, which only root can
 * get out of the credentials (uid restriction), and each record's tag is checked before its
 * bytes are looked at: a record of anyone else fails and ends the connection; (5) the SEAL
 * (itself inside the channel) binds the session digest: bytes of anyone else are refused at the
 * end, and the extractor gets the END frame only after the SEAL is verified
 * (pl_frame_release_limit), so nothing received is declared staged or run before. A squatter
 * on a home port thus gets a HELLO it cannot use (the parent refuses it, the child moves on to
 * the next port candidate) and never an OPEN, so never a byte of the stream.
 *
 * Errors come back as one line in a caller buffer; no logging.
 *
 * Each credential carries a claim: a small versioned binary payload saying who made it for whom
 * and about what. MUNGE vouches for the uid that made it (root or SlurmUser: a prolog, not a
 * user), that it is recent (its TTL) and, on each node, that it is used once (its replay cache).
 * The claim binds the rest: the job, the session key, the sender and receiver nodes, and a size
 * and digest. A connection carries three:
 *
 *   HELLO  child -> parent, first: "node C of job J asks for session K"; size is the offset to
 *          start at (0, or where a re-attaching child stopped) and digest the session's header
 *          digest when resuming (zeros on first contact); secret the child's half of the
 *          channel's key (the OPEN carries the parent's half).
 *   OPEN   parent -> child, before the stream: "node P sends session K to C from offset size";
 *          digest is the header digest, which the child compares with the header it receives
 *          (or, resuming, with the one it has).
 *   SEAL   parent -> child, after the END frame: digest is the session digest and size the
 *          session's payload bytes (tree_frame.h), so the content is bound to a prolog of this
 *          job and not only to the TCP connection it came over.
 *
 * Every node makes its own credentials (one per connection and role), never forwards one: MUNGE's
 * replay cache is per munged, and on a test cluster all nodes share one munged. Credentials must
 * be made by the part of the prolog that runs as root, not in a child that took the job's uid.
 * The receiver is part of the claim, so a HELLO overheard on the network cannot be replayed to
 * another node of the job (whose munged has not seen it) to obtain the bundles.
 *
 * The MUNGE calls sit behind a two-function backend so that the claim logic is tested without
 * munged; pl_auth_backend_munge() gives the real one. */
#ifndef PL_TREE_AUTH_H
#define PL_TREE_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sha256.h"
#include "tree_cipher.h"
#include "tree_frame.h"
#include "tree_topology.h"

struct munge_ctx; /* munge_ctx_t of <munge.h> */

#define PL_AUTH_MAGIC "PLAC"
#define PL_AUTH_VERSION 3
/* magic, version, role, channel, reserved, job, key, size, digest, binding, secret, two names
 * with lengths */
#define PL_AUTH_PAYLOAD_FIXED                                                                      \
	(4 + 1 + 1 + 2 + 4 + PL_FRAME_KEY_LEN + 8 + 2 * PL_SHA256_LEN + PL_CIPHER_SECRET_LEN)
#define PL_AUTH_PAYLOAD_MAX (PL_AUTH_PAYLOAD_FIXED + 2 * (1 + PL_NODE_NAME_MAX))
/* A MUNGE credential of the largest payload is about 1 KiB of base64 text. */
#define PL_AUTH_CRED_MAX 4096

enum pl_auth_role {
	PL_AUTH_HELLO = 1,
	PL_AUTH_OPEN = 2,
	PL_AUTH_SEAL = 3,
	/* parent -> child, after an N or D reply: size is the reply code and digest the SHA-256 of
	 * its reason, so that no one else can turn a node away or the tree off */
	PL_AUTH_REFUSE = 4,
};

struct pl_auth_claim {
	enum pl_auth_role role;
	uint32_t job_id;
	char key[PL_FRAME_KEY_LEN + 1];
	char sender[PL_NODE_NAME_MAX + 1];
	char receiver[PL_NODE_NAME_MAX + 1];
	uint64_t size;
	uint8_t digest[PL_SHA256_LEN];
	uint8_t binding[PL_SHA256_LEN]; /* the TCP connection it is for (tree_bind.h) */
	/* The sender's channel (PL_CHANNEL_*: encrypted or, in a benchmark build, clear) and, in a
	 * HELLO and an OPEN, its half of the connection's key (tree_cipher.h); zeros otherwise. */
	uint8_t channel;
	uint8_t secret[PL_CIPHER_SECRET_LEN];
};

/* The claim as bytes (at most PL_AUTH_PAYLOAD_MAX) and back. Node names must be node names
 * (letters, digits, '-', '_', '.'; 1..PL_NODE_NAME_MAX); decoding is strict: exact length,
 * known role, zero reserved bytes, a valid key. */
int pl_auth_payload_encode(const struct pl_auth_claim *claim, uint8_t *buf, size_t cap, size_t *len,
			   char *err, size_t errlen);
int pl_auth_payload_decode(const uint8_t *buf, size_t len, struct pl_auth_claim *claim, char *err,
			   size_t errlen);

struct pl_auth_backend {
	/* A credential of payload[0..len): NUL-terminated text in *cred (the caller frees it). */
	int (*encode)(void *ctx, const void *payload, size_t len, char **cred, char *err,
		      size_t errlen);
	/* The payload (the caller frees it) and the uid that made cred, if it is valid. */
	int (*decode)(void *ctx, const char *cred, void **payload, size_t *len, uid_t *uid,
		      char *err, size_t errlen);
	void *ctx;
};

/* The real backend: munge_encode() and munge_decode() with ctx (NULL: MUNGE's defaults, e.g.
 * its socket). Every credential is made with MUNGE_OPT_CIPHER_TYPE AES-256 and
 * MUNGE_OPT_UID_RESTRICTION set to the maker's uid (root): munged then gives its payload, with
 * the channel's secret, to no one else; another user's munge_decode() is refused. Decoding works on
 * a copy of ctx, which munge_decode() would otherwise rewrite; ctx itself is only read, and must
 * outlive the backend. */
void pl_auth_backend_munge(struct pl_auth_backend *backend, struct munge_ctx *ctx);

/* The credential of claim, in *cred (the caller frees it). */
int pl_auth_make(const struct pl_auth_backend *backend, const struct pl_auth_claim *claim,
		 char **cred, char *err, size_t errlen);

struct pl_auth_expect {
	enum pl_auth_role role;
	uint32_t job_id;
	const char *key;
	const char *self;		 /* this node: the claim's receiver */
	const struct pl_hostlist *nodes; /* the job's nodes: the sender is one of them */
	const char *sender;		 /* NULL, or the one node it must come from */
	uid_t slurm_uid;		 /* allowed besides root */
	bool check_content;		 /* then the claim's digest and size must be these: */
	const uint8_t *digest;
	uint64_t size;
	const uint8_t *binding; /* the connection it came over (tree_bind.h); NULL: not checked */
	uint8_t channel;	/* the claim's channel must be this one (PL_CHANNEL_BUILD) */
};

/* Decodes cred (MUNGE refuses a bad, expired or replayed one) and checks, in this order: the
 * uid that made it is 0 or slurm_uid; the payload is a claim of this version; its role, job, key
 * and receiver are the expected ones; its sender is a node of the job (and the one expected);
 * it was made for the connection it came over (binding); its digest and size are the expected
 * ones. On success the claim is in *claim (a HELLO's
 * sender and offset, an OPEN's header digest). */
int pl_auth_verify(const struct pl_auth_backend *backend, const char *cred,
		   const struct pl_auth_expect *want, struct pl_auth_claim *claim, char *err,
		   size_t errlen);

/* On the wire a credential is a u16 big-endian length (1..PL_AUTH_CRED_MAX) and its text.
 * Writes it into buf. */
int pl_auth_wire_encode(const char *cred, uint8_t *buf, size_t cap, size_t *len, char *err,
			size_t errlen);

/* Reads one credential from a stream that arrives in pieces, never past its end. */
struct pl_auth_reader {
	uint8_t head[2];
	bool in_text; /* the length is known */
	size_t have, need;
	char text[PL_AUTH_CRED_MAX + 1]; /* the credential once complete */
};

void pl_auth_reader_init(struct pl_auth_reader *reader);
/* Consumes bytes of in[0..len) (*used of them): 1 when reader->text holds the whole credential,
 * 0 when more is needed, -1 when the length is 0 or too large or a byte is not printable ASCII
 * (MUNGE credentials are base64 text). */
int pl_auth_reader_feed(struct pl_auth_reader *reader, const uint8_t *in, size_t len, size_t *used,
			char *err, size_t errlen);

#endif
