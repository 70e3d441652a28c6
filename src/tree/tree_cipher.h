/* The tree's channel: authenticated encryption of everything a parent sends a child after its
 * OPEN credential (the session's frames, then the SEAL), so that no one but root on the two nodes
 * of a connection reads a byte of the stream or gets one accepted.
 *
 * DESIGN. Cipher: AES-256-GCM from OpenSSL's libcrypto. The nodes of an HPC cluster are x86 with
 * AES-NI and PCLMULQDQ (or ARM with its crypto extensions), where libcrypto's stitched AES-GCM
 * runs at GB/s per core: on the development machine (AVX2, no VAES) both it and
 * ChaCha20-Poly1305 seal 3.1-3.6 GB/s, within the noise of each other (bench/tree_cipher
 * measures both); on CPUs with VAES (Ice Lake, Zen 3 and later) and on ARM's crypto extensions
 * AES-GCM is about twice as fast as ChaCha. Either costs a few percent of
 * a staging; AES-GCM is the one with hardware everywhere HPC runs, and the 256-bit key leaves no
 * doubt about the margin. Keys: one per TCP connection, never
 * sent: key = HKDF-SHA256(salt = the connection's binding (tree_bind.h), input = the child's
 * 32 random bytes from its HELLO and the parent's 32 from its OPEN, info = "pylaunch tree
 * channel 1"). Both secrets travel only inside MUNGE credentials, which munged encrypts with
 * the site key and which are made with MUNGE_OPT_UID_RESTRICTION set to the maker's uid (root:
 * the tree process runs as root on every node), so munge_decode() returns them only to root
 * (tree_auth.h): a user who squats a port, relays or reads the wire gets a credential it cannot
 * open. A re-attaching child makes a new connection, so a new key.
 *
 * Records: u32 big-endian plaintext length (1..PL_CIPHER_RECORD_MAX), the ciphertext, a 16-byte
 * tag. The length is the additional authenticated data. Nonce (96 bits): u32 direction, u64
 * record counter, both implicit (never on the wire): each end counts the records of each
 * direction itself, so a record replayed, dropped, reordered, cut, or with any bit changed
 * fails its tag, and the receiver ends the connection (the child re-attaches or goes direct, as
 * for any lost parent). A sender refuses to go past 2^64 - 1 records: a nonce is never reused
 * under a key. The end of a session is the SEAL inside the last record, so a connection cut
 * between records is a lost parent, never a short session accepted.
 *
 * Built with --disable-tree-cipher (benchmarks only) the records are not used at all: the
 * stream goes in clear (the claims say so, and a node of the other kind refuses the peer). */
#ifndef PL_TREE_CIPHER_H
#define PL_TREE_CIPHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pl_build.h" /* configure: PL_TREE_CIPHER_DISABLED */

#define PL_CIPHER_KEY_LEN 32
#define PL_CIPHER_SECRET_LEN 32 /* each end's contribution, in its claim */
#define PL_CIPHER_TAG_LEN 16
#define PL_CIPHER_HEAD_LEN 4
#define PL_CIPHER_OVERHEAD (PL_CIPHER_HEAD_LEN + PL_CIPHER_TAG_LEN)
/* Plaintext bytes per record: large enough that the per-record cost vanishes, small enough that
 * a record is forwarded soon after the bytes arrive. */
#define PL_CIPHER_RECORD_MAX (64u * 1024)
#define PL_CIPHER_RECORD_WIRE_MAX (PL_CIPHER_RECORD_MAX + PL_CIPHER_OVERHEAD)

/* Which directions' records a key protects (the first word of the nonce). */
#define PL_CIPHER_DOWN 0x50324300u /* parent to child */
#define PL_CIPHER_UP 0x43325000u   /* child to parent (unused today: the child says nothing) */

/* The channel of this build, carried in every claim: both ends of a connection must agree. */
#define PL_CHANNEL_CLEAR 0
#define PL_CHANNEL_AES256GCM 1
#ifdef PL_TREE_CIPHER_DISABLED
#define PL_CHANNEL_BUILD PL_CHANNEL_CLEAR
#else
#define PL_CHANNEL_BUILD PL_CHANNEL_AES256GCM
#endif

/* One direction of one connection. Read-only for callers except in tests: seq. */
struct pl_cipher {
	void *ctx; /* EVP_CIPHER_CTX */
	uint32_t dir;
	uint64_t seq; /* the next record's number */
	bool failed;  /* a record failed: nothing more is accepted */
};

/* Random bytes for a claim (libcrypto's RAND_bytes). */
int pl_cipher_secret(uint8_t secret[PL_CIPHER_SECRET_LEN], char *err, size_t errlen);

/* The connection's key from both ends' secrets and its binding. */
int pl_cipher_derive(const uint8_t child[PL_CIPHER_SECRET_LEN],
		     const uint8_t parent[PL_CIPHER_SECRET_LEN], const uint8_t *binding,
		     size_t binding_len, uint8_t key[PL_CIPHER_KEY_LEN], char *err, size_t errlen);

/* Starts a direction under key (c may be reused after pl_cipher_free). */
int pl_cipher_init(struct pl_cipher *c, const uint8_t key[PL_CIPHER_KEY_LEN], uint32_t dir,
		   char *err, size_t errlen);
void pl_cipher_free(struct pl_cipher *c);

/* The record of in[0..n) (1 <= n <= PL_CIPHER_RECORD_MAX) into out (n + PL_CIPHER_OVERHEAD
 * bytes; in and out may not overlap). */
int pl_cipher_seal(struct pl_cipher *c, const void *in, size_t n, uint8_t *out, size_t cap,
		   size_t *len, char *err, size_t errlen);

/* The receiving end: reads records from a stream that arrives in pieces, never past a record. */
struct pl_cipher_reader {
	struct pl_cipher c;
	size_t have, need;
	bool in_body;
	uint8_t buf[PL_CIPHER_RECORD_WIRE_MAX];
};

int pl_cipher_reader_init(struct pl_cipher_reader *r, const uint8_t key[PL_CIPHER_KEY_LEN],
			  uint32_t dir, char *err, size_t errlen);
void pl_cipher_reader_free(struct pl_cipher_reader *r);
/* Consumes bytes of in[0..len) (*used of them), up to the end of a record: 1 when a record is
 * complete and authentic, its plaintext at *plain (*plain_len bytes, valid until the next call);
 * 0 when more is needed; -1 on a bad length or a bad tag (then every later call fails too). */
int pl_cipher_reader_feed(struct pl_cipher_reader *r, const uint8_t *in, size_t len, size_t *used,
			  const uint8_t **plain, size_t *plain_len, char *err, size_t errlen);
/* Bytes of the record in progress (0 between records): at most PL_CIPHER_RECORD_WIRE_MAX. */
size_t pl_cipher_reader_pending(const struct pl_cipher_reader *r);

#endif
