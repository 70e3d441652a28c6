/* Unit tests of src/tree/tree_auth.c: the claims of the tree's MUNGE credentials, checked with a
 * fake backend, and once with the real munged when one answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above first. */
#include <cmocka.h>

#include <munge.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sha256.h"
#include "tree_auth.h"
#include "tree_topology.h"

#define JOB 4242
#define KEY "0123456789abcdef"
#define SLURM_UID 64030
#define NODES "node[1-9],gpu05"
#define ERRLEN 512

/* ---------------------------------------------------------------- a fake MUNGE */

/* Credentials are "FAKE:<uid>:<payload in hex>"; each decodes once, as with munged's replay
 * cache. */
struct fake {
	uid_t maker;	     /* uid of the credentials it makes */
	bool encode_fails;   /* as when munged is down */
	char seen[16][2048]; /* credentials already decoded */
	size_t nseen;
};

static int fake_encode(void *ctx, const void *payload, size_t len, char **cred, char *err,
		       size_t errlen)
{
	struct fake *f = ctx;
	const uint8_t *p = payload;
	size_t n;

	if (f->encode_fails) {
		snprintf(err, errlen, "MUNGE cannot make a credential: Socket communication error");
		return -1;
	}
	*cred = malloc(32 + 2 * len);
	assert_non_null(*cred);
	n = (size_t)sprintf(*cred, "FAKE:%lu:", (unsigned long)f->maker);
	for (size_t i = 0; i < len; i++)
		n += (size_t)sprintf(*cred + n, "%02x", p[i]);
	return 0;
}

static int fake_decode(void *ctx, const char *cred, void **payload, size_t *len, uid_t *uid,
		       char *err, size_t errlen)
{
	struct fake *f = ctx;
	unsigned long maker;
	int at = 0;
	uint8_t *p;

	for (size_t i = 0; i < f->nseen; i++) {
		if (strcmp(f->seen[i], cred) == 0) {
			snprintf(err, errlen, "MUNGE refuses the credential: Replayed credential");
			return -1;
		}
	}
	if (sscanf(cred, "FAKE:%lu:%n", &maker, &at) != 1 || at == 0) {
		snprintf(err, errlen, "MUNGE refuses the credential: Invalid credential format");
		return -1;
	}
	assert_true(f->nseen < 16);
	snprintf(f->seen[f->nseen++], sizeof(f->seen[0]), "%s", cred);
	*len = strlen(cred + at) / 2;
	p = malloc(*len + 1);
	assert_non_null(p);
	for (size_t i = 0; i < *len; i++) {
		unsigned byte;

		assert_int_equal(sscanf(cred + at + 2 * i, "%2x", &byte), 1);
		p[i] = (uint8_t)byte;
	}
	*payload = p;
	*uid = (uid_t)maker;
	return 0;
}

static struct fake fake;
static struct pl_auth_backend backend = {fake_encode, fake_decode, &fake};
static struct pl_hostlist nodes;

static int setup(void **state)
{
	char err[ERRLEN];

	(void)state;
	memset(&fake, 0, sizeof(fake));
	return pl_hostlist_expand(NODES, &nodes, err, sizeof(err));
}

static int teardown(void **state)
{
	(void)state;
	pl_hostlist_free(&nodes);
	return 0;
}

static void claim_of(struct pl_auth_claim *c, enum pl_auth_role role, const char *sender,
		     const char *receiver, uint64_t size, uint8_t fill)
{
	memset(c, 0, sizeof(*c));
	c->role = role;
	c->job_id = JOB;
	strcpy(c->key, KEY);
	strcpy(c->sender, sender);
	strcpy(c->receiver, receiver);
	c->size = size;
	memset(c->digest, fill, sizeof(c->digest));
}

static void expect_of(struct pl_auth_expect *w, enum pl_auth_role role, const char *self)
{
	memset(w, 0, sizeof(*w));
	w->role = role;
	w->job_id = JOB;
	w->key = KEY;
	w->self = self;
	w->nodes = &nodes;
	w->slurm_uid = SLURM_UID;
}

static char *make(const struct pl_auth_claim *c)
{
	char *cred = NULL, err[ERRLEN];

	if (pl_auth_make(&backend, c, &cred, err, sizeof(err)) < 0)
		fail_msg("make: %s", err);
	return cred;
}

/* The claim, made and verified against want, is refused with the text want_err. */
static void assert_verify_fails(const struct pl_auth_claim *c, const struct pl_auth_expect *want,
				const char *want_err)
{
	struct pl_auth_claim got;
	char *cred = make(c), err[ERRLEN] = "";

	assert_int_equal(pl_auth_verify(&backend, cred, want, &got, err, sizeof(err)), -1);
	assert_string_equal(err, want_err);
	free(cred);
}

/* ---------------------------------------------------------------- payload */

static void test_payload_round_trip(void **state)
{
	struct pl_auth_claim c, back;
	uint8_t buf[PL_AUTH_PAYLOAD_MAX];
	size_t len;
	char err[ERRLEN];

	(void)state;
	claim_of(&c, PL_AUTH_SEAL, "node3", "node7", 123456789012345ull, 0xab);
	assert_int_equal(pl_auth_payload_encode(&c, buf, sizeof(buf), &len, err, sizeof(err)), 0);
	assert_int_equal(len, PL_AUTH_PAYLOAD_FIXED + 2 + 5 + 5);
	assert_memory_equal(buf, "PLAC\x03\x03\x00\x00", 8);
	/* the channel and the secret travel */
	c.channel = PL_CHANNEL_AES256GCM;
	memset(c.secret, 0x5a, sizeof(c.secret));
	assert_int_equal(pl_auth_payload_encode(&c, buf, sizeof(buf), &len, err, sizeof(err)), 0);
	assert_memory_equal(buf, "PLAC\x03\x03\x01\x00", 8);
	assert_int_equal(pl_auth_payload_decode(buf, len, &back, err, sizeof(err)), 0);
	assert_memory_equal(&back, &c, sizeof(c));

	/* The longest names fit the advertised maximum. */
	memset(c.sender, 's', PL_NODE_NAME_MAX);
	c.sender[PL_NODE_NAME_MAX] = '\0';
	memset(c.receiver, 'r', PL_NODE_NAME_MAX);
	c.receiver[PL_NODE_NAME_MAX] = '\0';
	assert_int_equal(pl_auth_payload_encode(&c, buf, sizeof(buf), &len, err, sizeof(err)), 0);
	assert_int_equal(len, PL_AUTH_PAYLOAD_MAX);
	assert_int_equal(pl_auth_payload_decode(buf, len, &back, err, sizeof(err)), 0);
	assert_memory_equal(&back, &c, sizeof(c));
}

static void assert_encode_refused(const struct pl_auth_claim *c, size_t cap, const char *want)
{
	uint8_t buf[PL_AUTH_PAYLOAD_MAX];
	size_t len;
	char err[ERRLEN];

	assert_int_equal(pl_auth_payload_encode(c, buf, cap, &len, err, sizeof(err)), -1);
	assert_string_equal(err, want);
}

static void test_payload_encode_refusals(void **state)
{
	struct pl_auth_claim c;

	(void)state;
	claim_of(&c, (enum pl_auth_role)7, "a", "b", 0, 0);
	assert_encode_refused(&c, PL_AUTH_PAYLOAD_MAX, "claim of unknown role 7");
	claim_of(&c, PL_AUTH_OPEN, "a", "b", 0, 0);
	strcpy(c.key, "XYZ");
	assert_encode_refused(&c, PL_AUTH_PAYLOAD_MAX, "claim with a malformed session key");
	claim_of(&c, PL_AUTH_OPEN, "", "b", 0, 0);
	assert_encode_refused(&c, PL_AUTH_PAYLOAD_MAX, "claim with a malformed node name");
	claim_of(&c, PL_AUTH_OPEN, "a b", "b", 0, 0);
	assert_encode_refused(&c, PL_AUTH_PAYLOAD_MAX, "claim with a malformed node name");
	claim_of(&c, PL_AUTH_OPEN, "a", "b/c", 0, 0);
	assert_encode_refused(&c, PL_AUTH_PAYLOAD_MAX, "claim with a malformed node name");
	claim_of(&c, PL_AUTH_OPEN, "a", "b", 0, 0);
	memset(c.receiver, 'r', sizeof(c.receiver)); /* no terminating NUL at all */
	assert_encode_refused(&c, PL_AUTH_PAYLOAD_MAX, "claim with a malformed node name");
	claim_of(&c, PL_AUTH_OPEN, "a", "b", 0, 0);
	assert_encode_refused(&c, 70, "claim needs 136 bytes, the buffer has 70");
}

static void assert_decode_refused(const uint8_t *buf, size_t len, const char *want)
{
	struct pl_auth_claim c;
	char err[ERRLEN];

	assert_int_equal(pl_auth_payload_decode(buf, len, &c, err, sizeof(err)), -1);
	assert_string_equal(err, want);
}

static void test_payload_decode_refusals(void **state)
{
	struct pl_auth_claim c;
	uint8_t good[PL_AUTH_PAYLOAD_MAX], buf[PL_AUTH_PAYLOAD_MAX + 1];
	size_t len;
	char err[ERRLEN];

	(void)state;
	claim_of(&c, PL_AUTH_HELLO, "node1", "node2", 0, 0);
	assert_int_equal(pl_auth_payload_encode(&c, good, sizeof(good), &len, err, sizeof(err)), 0);

	assert_decode_refused((const uint8_t *)"", 0, "not a pylaunch claim");
	assert_decode_refused((const uint8_t *)"hello world, this is not a claim", 32,
			      "not a pylaunch claim");
	assert_decode_refused(good, 40, "malformed claim: 40 bytes");
#define MUTATED(at, value, want)                                                                   \
	do {                                                                                       \
		memcpy(buf, good, len);                                                            \
		buf[at] = (value);                                                                 \
		assert_decode_refused(buf, len, want);                                             \
	} while (0)
	MUTATED(4, 2, "claim version 2 (this node speaks 3)");
	MUTATED(6, 2, "malformed claim: unknown channel 2");
	MUTATED(5, 0, "malformed claim: unknown role 0");
	MUTATED(5, 5, "malformed claim: unknown role 5");
	MUTATED(7, 1, "malformed claim: reserved byte is not zero");
	MUTATED(12, 'G', "malformed claim: bad session key");
	MUTATED(PL_AUTH_PAYLOAD_FIXED, 200, "malformed claim: sender name cut short");
	MUTATED(PL_AUTH_PAYLOAD_FIXED, 0, "malformed claim: bad sender name");
	MUTATED(PL_AUTH_PAYLOAD_FIXED + 1, ' ', "malformed claim: bad sender name");
	MUTATED(PL_AUTH_PAYLOAD_FIXED + 6, 6, "malformed claim: receiver name cut short");
	MUTATED(PL_AUTH_PAYLOAD_FIXED + 7, '\0', "malformed claim: bad receiver name");
#undef MUTATED
	assert_decode_refused(good, len - 1, "malformed claim: receiver name cut short");
	assert_decode_refused(good, PL_AUTH_PAYLOAD_FIXED,
			      "malformed claim: sender name cut short");
	memcpy(buf, good, len);
	buf[len] = 'x';
	assert_decode_refused(buf, len + 1, "malformed claim: 1 bytes after its end");
}

/* ---------------------------------------------------------------- verification */

static void test_verify_each_role(void **state)
{
	struct pl_auth_claim c, got;
	struct pl_auth_expect want;
	uint8_t digest[PL_SHA256_LEN];
	char *cred, err[ERRLEN];

	(void)state;
	/* A child's HELLO to its parent: who it is and where it wants to start. */
	claim_of(&c, PL_AUTH_HELLO, "node5", "node2", 4096, 0x11);
	cred = make(&c);
	expect_of(&want, PL_AUTH_HELLO, "node2");
	assert_int_equal(pl_auth_verify(&backend, cred, &want, &got, err, sizeof(err)), 0);
	assert_string_equal(got.sender, "node5");
	assert_int_equal(got.size, 4096);
	free(cred);

	/* The parent's OPEN, from the parent the child expects, for the header it has. */
	memset(digest, 0x22, sizeof(digest));
	claim_of(&c, PL_AUTH_OPEN, "node2", "node5", 4096, 0x22);
	cred = make(&c);
	expect_of(&want, PL_AUTH_OPEN, "node5");
	want.sender = "node2";
	want.check_content = true;
	want.digest = digest;
	want.size = 4096;
	assert_int_equal(pl_auth_verify(&backend, cred, &want, &got, err, sizeof(err)), 0);
	free(cred);

	/* The SEAL: the session's digest and size. A credential of SlurmUser is good too. */
	fake.maker = SLURM_UID;
	memset(digest, 0x33, sizeof(digest));
	claim_of(&c, PL_AUTH_SEAL, "gpu05", "node1", 999, 0x33);
	cred = make(&c);
	expect_of(&want, PL_AUTH_SEAL, "node1");
	want.check_content = true;
	want.digest = digest;
	want.size = 999;
	assert_int_equal(pl_auth_verify(&backend, cred, &want, &got, err, sizeof(err)), 0);
	assert_memory_equal(got.digest, digest, PL_SHA256_LEN);
	free(cred);
}

static void test_verify_refusals(void **state)
{
	struct pl_auth_claim c;
	struct pl_auth_expect want;
	uint8_t digest[PL_SHA256_LEN];

	(void)state;
	expect_of(&want, PL_AUTH_OPEN, "node5");

	fake.maker = 1000;
	claim_of(&c, PL_AUTH_OPEN, "node2", "node5", 0, 0);
	assert_verify_fails(&c, &want,
			    "credential made by uid 1000, not by root or SlurmUser (uid 64030)");
	fake.maker = 0;

	claim_of(&c, PL_AUTH_HELLO, "node2", "node5", 0, 0);
	assert_verify_fails(&c, &want, "HELLO claim where OPEN was expected");

	claim_of(&c, PL_AUTH_OPEN, "node2", "node5", 0, 0);
	c.job_id = JOB + 1;
	assert_verify_fails(&c, &want, "claim for job 4243, not 4242");

	claim_of(&c, PL_AUTH_OPEN, "node2", "node5", 0, 0);
	strcpy(c.key, "fedcba9876543210");
	assert_verify_fails(&c, &want, "claim for session fedcba9876543210, not 0123456789abcdef");

	claim_of(&c, PL_AUTH_OPEN, "node2", "node6", 0, 0);
	assert_verify_fails(&c, &want, "claim addressed to node node6, not node5");

	claim_of(&c, PL_AUTH_OPEN, "login1", "node5", 0, 0);
	assert_verify_fails(&c, &want, "claim from node login1, which is not a node of job 4242");

	claim_of(&c, PL_AUTH_OPEN, "node3", "node5", 0, 0);
	want.sender = "node2";
	assert_verify_fails(&c, &want, "claim from node node3, expected node2");
	want.sender = NULL;

	/* Made for another connection: a relay passed it on. */
	{
		uint8_t here[PL_SHA256_LEN];

		memset(here, 0x11, sizeof(here));
		want.binding = here;
		claim_of(&c, PL_AUTH_OPEN, "node2", "node5", 0, 0);
		memset(c.binding, 0x12, sizeof(c.binding));
		assert_verify_fails(&c, &want, "OPEN claim made for another connection (relayed?)");
		want.binding = NULL;
	}

	/* A node of the other kind of build: one end would speak in clear. */
	claim_of(&c, PL_AUTH_OPEN, "node2", "node5", 0, 0);
	c.channel = PL_CHANNEL_AES256GCM;
	assert_verify_fails(&c, &want,
			    "OPEN claim from node node2, whose tree stream is encrypted, this "
			    "node's in clear (one of them built with --disable-tree-cipher)");

	memset(digest, 0x44, sizeof(digest));
	want.check_content = true;
	want.digest = digest;
	want.size = 100;
	claim_of(&c, PL_AUTH_OPEN, "node2", "node5", 101, 0x44);
	assert_verify_fails(&c, &want, "OPEN claim binds 101 bytes, not 100");
	claim_of(&c, PL_AUTH_OPEN, "node2", "node5", 100, 0x45);
	assert_verify_fails(&c, &want, "OPEN claim binds another digest than this session's");
	claim_of(&c, PL_AUTH_OPEN, "node2", "node5", 100, 0x44);
	c.digest[31] ^= 1;
	assert_verify_fails(&c, &want, "OPEN claim binds another digest than this session's");
}

static void test_verify_backend_refusals(void **state)
{
	struct pl_auth_claim c, got;
	struct pl_auth_expect want;
	char *cred, err[ERRLEN];

	(void)state;
	expect_of(&want, PL_AUTH_HELLO, "node1");
	claim_of(&c, PL_AUTH_HELLO, "node4", "node1", 0, 0);
	cred = make(&c);
	assert_int_equal(pl_auth_verify(&backend, cred, &want, &got, err, sizeof(err)), 0);
	/* The same credential again, as a replay. */
	assert_int_equal(pl_auth_verify(&backend, cred, &want, &got, err, sizeof(err)), -1);
	assert_string_equal(err, "MUNGE refuses the credential: Replayed credential");
	free(cred);

	assert_int_equal(
	    pl_auth_verify(&backend, "plain TCP garbage", &want, &got, err, sizeof(err)), -1);
	assert_string_equal(err, "MUNGE refuses the credential: Invalid credential format");

	/* A good credential of someone else's payload. */
	assert_int_equal(
	    pl_auth_verify(&backend, "FAKE:0:68656c6c6f", &want, &got, err, sizeof(err)), -1);
	assert_string_equal(err, "not a pylaunch claim");

	fake.encode_fails = true;
	assert_int_equal(pl_auth_make(&backend, &c, &cred, err, sizeof(err)), -1);
	assert_null(cred);
	assert_string_equal(err, "MUNGE cannot make a credential: Socket communication error");
	fake.encode_fails = false;
	strcpy(c.sender, "bad name");
	assert_int_equal(pl_auth_make(&backend, &c, &cred, err, sizeof(err)), -1);
	assert_null(cred);
	assert_string_equal(err, "claim with a malformed node name");
}

/* ---------------------------------------------------------------- on the wire */

static void test_wire_round_trip(void **state)
{
	static const char *creds[] = {"MUNGE:AwQDAAB=:", "ab", "x"};
	uint8_t buf[PL_AUTH_CRED_MAX + 2 + 3];
	char err[ERRLEN];

	(void)state;
	for (size_t i = 0; i < sizeof(creds) / sizeof(creds[0]); i++) {
		struct pl_auth_reader r;
		size_t len, used, pos = 0;
		int rc = 0;

		assert_int_equal(
		    pl_auth_wire_encode(creds[i], buf, sizeof(buf), &len, err, sizeof(err)), 0);
		assert_int_equal(len, strlen(creds[i]) + 2);
		/* Whatever follows the credential (the stream) is not the reader's. */
		memcpy(buf + len, "PYL", 3);
		pl_auth_reader_init(&r);
		while (rc == 0) {
			rc = pl_auth_reader_feed(&r, buf + pos, 1, &used, err, sizeof(err));
			pos += used;
		}
		assert_int_equal(rc, 1);
		assert_int_equal(pos, len);
		assert_string_equal(r.text, creds[i]);
		/* Complete: it takes nothing more. */
		assert_int_equal(pl_auth_reader_feed(&r, buf + pos, 3, &used, err, sizeof(err)), 1);
		assert_int_equal(used, 0);
		/* Whole, in one piece. */
		pl_auth_reader_init(&r);
		assert_int_equal(pl_auth_reader_feed(&r, buf, len + 3, &used, err, sizeof(err)), 1);
		assert_int_equal(used, len);
		assert_string_equal(r.text, creds[i]);
	}
}

static void test_wire_refusals(void **state)
{
	struct pl_auth_reader r;
	uint8_t buf[PL_AUTH_CRED_MAX + 8];
	char *big = malloc(PL_AUTH_CRED_MAX + 2), err[ERRLEN];
	size_t len, used;

	(void)state;
	assert_non_null(big);
	assert_int_equal(pl_auth_wire_encode("", buf, sizeof(buf), &len, err, sizeof(err)), -1);
	assert_string_equal(err, "credential of 0 bytes (1 to 4096 allowed)");
	memset(big, 'A', PL_AUTH_CRED_MAX + 1);
	big[PL_AUTH_CRED_MAX + 1] = '\0';
	assert_int_equal(pl_auth_wire_encode(big, buf, sizeof(buf), &len, err, sizeof(err)), -1);
	assert_string_equal(err, "credential of 4097 bytes (1 to 4096 allowed)");
	big[PL_AUTH_CRED_MAX] = '\0';
	assert_int_equal(pl_auth_wire_encode(big, buf, sizeof(buf), &len, err, sizeof(err)), 0);
	assert_int_equal(pl_auth_wire_encode("abc", buf, 4, &len, err, sizeof(err)), -1);
	assert_string_equal(err, "credential needs 5 bytes, the buffer has 4");
	free(big);

	pl_auth_reader_init(&r);
	assert_int_equal(
	    pl_auth_reader_feed(&r, (const uint8_t *)"\0\0", 2, &used, err, sizeof(err)), -1);
	assert_string_equal(err, "credential of 0 bytes (1 to 4096 allowed)");
	pl_auth_reader_init(&r);
	assert_int_equal(
	    pl_auth_reader_feed(&r, (const uint8_t *)"\x10\x01", 2, &used, err, sizeof(err)), -1);
	assert_string_equal(err, "credential of 4097 bytes (1 to 4096 allowed)");
	/* An HTTP request reads as a huge length. */
	pl_auth_reader_init(&r);
	assert_int_equal(
	    pl_auth_reader_feed(&r, (const uint8_t *)"GET /", 5, &used, err, sizeof(err)), -1);
	assert_string_equal(err, "credential of 18245 bytes (1 to 4096 allowed)");
	pl_auth_reader_init(&r);
	assert_int_equal(pl_auth_reader_feed(&r,
					     (const uint8_t *)"\0\x03"
							      "a\nb",
					     5, &used, err, sizeof(err)),
			 -1);
	assert_string_equal(err, "credential with a byte that is not text");
	pl_auth_reader_init(&r);
	assert_int_equal(pl_auth_reader_feed(&r,
					     (const uint8_t *)"\0\x03"
							      "ab",
					     4, &used, err, sizeof(err)),
			 0);
	assert_int_equal(used, 4);
	assert_int_equal(
	    pl_auth_reader_feed(&r, (const uint8_t *)"\x80", 1, &used, err, sizeof(err)), -1);
}

/* ---------------------------------------------------------------- the real MUNGE */

/* PL_TEST_MUNGE_SOCKET names munged's socket (a private munged for the test); without it,
 * MUNGE's default. */
static munge_ctx_t real_ctx(void)
{
	const char *sock = getenv("PL_TEST_MUNGE_SOCKET");
	munge_ctx_t ctx = munge_ctx_create();

	assert_non_null(ctx);
	if (sock && *sock)
		assert_int_equal(munge_ctx_set(ctx, MUNGE_OPT_SOCKET, sock), EMUNGE_SUCCESS);
	return ctx;
}

/* A credential made by uid nobody in a child process, read back through a pipe. */
static char *make_as_nobody(const struct pl_auth_backend *real, const struct pl_auth_claim *c)
{
	int fds[2];
	pid_t pid;
	char *text = calloc(1, PL_AUTH_CRED_MAX + 1);
	ssize_t n;
	size_t got = 0;
	int status;

	assert_non_null(text);
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char *cred = NULL, err[ERRLEN] = "";
		uint8_t payload[PL_AUTH_PAYLOAD_MAX];
		size_t len;

		close(fds[0]);
		free(text); /* the parent's */

		/* munge_encode() itself, as a user's own tool would: no uid restriction. */
		if (setgid(65534) == 0 && setuid(65534) == 0 &&
		    pl_auth_payload_encode(c, payload, sizeof(payload), &len, err, sizeof(err)) ==
			0 &&
		    munge_encode(&cred, real->ctx, payload, (int)len) == EMUNGE_SUCCESS)
			(void)!write(fds[1], cred, strlen(cred));
		else
			fprintf(stderr, "as nobody: %s\n", err);
		free(cred);
		_exit(0);
	}
	close(fds[1]);
	while ((n = read(fds[0], text + got, PL_AUTH_CRED_MAX - got)) > 0)
		got += (size_t)n;
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return text;
}

/* munge_decode() of cred as uid nobody, in a child: its munge error code (0: decoded), and
 * whether a payload came back. */
static int decode_as_nobody(munge_ctx_t ctx, const char *cred, bool *got_payload)
{
	int fds[2], status;
	uint8_t res[2] = {255, 1};
	pid_t pid;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		void *payload = NULL;
		int len = 0;
		uid_t uid;
		gid_t gid;

		close(fds[0]);
		if (setgid(65534) == 0 && setuid(65534) == 0) {
			res[0] = (uint8_t)munge_decode(cred, ctx, &payload, &len, &uid, &gid);
			res[1] = payload != NULL && len > 0;
			free(payload);
		}
		(void)!write(fds[1], res, sizeof(res));
		_exit(0);
	}
	close(fds[1]);
	assert_int_equal(read(fds[0], res, sizeof(res)), 2);
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	*got_payload = res[1];
	return res[0];
}

static void test_real_munge(void **state)
{
	munge_ctx_t ctx = real_ctx();
	struct pl_auth_backend real;
	struct pl_auth_claim c, got;
	struct pl_auth_expect want;
	uint8_t digest[PL_SHA256_LEN];
	char *cred = NULL, err[ERRLEN];

	(void)state;
	pl_auth_backend_munge(&real, ctx);
	claim_of(&c, PL_AUTH_SEAL, "node2", "node5", 777, 0x5a);
	if (pl_auth_make(&real, &c, &cred, err, sizeof(err)) < 0) {
		munge_ctx_destroy(ctx);
		/* CI names the munged it started: there, no answer is a failure. */
		if (getenv("PL_TEST_MUNGE_SOCKET"))
			fail_msg("munged at $PL_TEST_MUNGE_SOCKET does not answer: %s", err);
		print_message("no munged answers (%s): skipped\n", err);
		skip();
	}
	assert_non_null(strstr(cred, "MUNGE:"));
	memset(digest, 0x5a, sizeof(digest));
	expect_of(&want, PL_AUTH_SEAL, "node5");
	want.check_content = true;
	want.digest = digest;
	want.size = 777;
	if (pl_auth_verify(&real, cred, &want, &got, err, sizeof(err)) < 0)
		fail_msg("verify: %s", err);
	assert_string_equal(got.sender, "node2");
	/* munged's replay cache: a credential is good once. */
	assert_int_equal(pl_auth_verify(&real, cred, &want, &got, err, sizeof(err)), -1);
	assert_string_equal(err, "MUNGE refuses the credential: Replayed credential");
	free(cred);

	/* A genuine credential of root, for another job. */
	c.job_id = JOB + 1;
	assert_int_equal(pl_auth_make(&real, &c, &cred, err, sizeof(err)), 0);
	assert_int_equal(pl_auth_verify(&real, cred, &want, &got, err, sizeof(err)), -1);
	assert_string_equal(err, "claim for job 4243, not 4242");
	free(cred);

	/* Damaged in transit. */
	c.job_id = JOB;
	assert_int_equal(pl_auth_make(&real, &c, &cred, err, sizeof(err)), 0);
	cred[strlen(cred) / 2] = cred[strlen(cred) / 2] == 'A' ? 'B' : 'A';
	assert_int_equal(pl_auth_verify(&real, cred, &want, &got, err, sizeof(err)), -1);
	assert_true(strncmp(err, "MUNGE refuses the credential: ", 30) == 0);
	free(cred);

	/* Made by an ordinary user. */
	if (geteuid() == 0) {
		cred = make_as_nobody(&real, &c);
		assert_true(strlen(cred) > 0);
		assert_int_equal(pl_auth_verify(&real, cred, &want, &got, err, sizeof(err)), -1);
		assert_string_equal(
		    err, "credential made by uid 65534, not by root or SlurmUser (uid 64030)");
		free(cred);

		/* Root's credential (with the channel's secret) is for root alone: another user
		 * (a squatter handed a HELLO) gets neither the payload nor a valid decode. */
		bool got_payload = true;

		memset(c.secret, 0x77, sizeof(c.secret));
		assert_int_equal(pl_auth_make(&real, &c, &cred, err, sizeof(err)), 0);
		assert_int_equal(decode_as_nobody(ctx, cred, &got_payload),
				 EMUNGE_CRED_UNAUTHORIZED);
		assert_false(got_payload);
		assert_int_equal(pl_auth_verify(&real, cred, &want, &got, err, sizeof(err)), 0);
		assert_memory_equal(got.secret, c.secret, sizeof(c.secret));
		free(cred);
	}
	munge_ctx_destroy(ctx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_payload_round_trip),
	    cmocka_unit_test(test_payload_encode_refusals),
	    cmocka_unit_test(test_payload_decode_refusals),
	    cmocka_unit_test_setup_teardown(test_verify_each_role, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_verify_refusals, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_verify_backend_refusals, setup, teardown),
	    cmocka_unit_test(test_wire_round_trip),
	    cmocka_unit_test(test_wire_refusals),
	    cmocka_unit_test_setup_teardown(test_real_munge, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
