#include "tree_auth.h"

#include <inttypes.h>
#include <munge.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tree_wire.h"

#define NAME_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."
/* Room for a rule's message before the caller's prefix is added. */
#define AUTH_ERRLEN 256

static const char *role_name(enum pl_auth_role role)
{
	switch (role) {
	case PL_AUTH_HELLO:
		return "HELLO";
	case PL_AUTH_OPEN:
		return "OPEN";
	case PL_AUTH_SEAL:
		return "SEAL";
	case PL_AUTH_REFUSE:
		return "REFUSE";
	}
	return "unknown";
}

static bool role_valid(unsigned role)
{
	return role >= PL_AUTH_HELLO && role <= PL_AUTH_REFUSE;
}

static bool name_valid(const char *name, size_t len)
{
	return len >= 1 && len <= PL_NODE_NAME_MAX && strspn(name, NAME_CHARS) >= len;
}

/* ---------------------------------------------------------------- payload */

static uint8_t *put_name(uint8_t *p, const char *name)
{
	size_t n = strlen(name);

	*p++ = (uint8_t)n;
	memcpy(p, name, n);
	return p + n;
}

int pl_auth_payload_encode(const struct pl_auth_claim *claim, uint8_t *buf, size_t cap, size_t *len,
			   char *err, size_t errlen)
{
	size_t ns = strnlen(claim->sender, sizeof(claim->sender));
	size_t nr = strnlen(claim->receiver, sizeof(claim->receiver));
	uint8_t *p = buf;

	if (!role_valid(claim->role))
		return pl_wire_fail(err, errlen, "claim of unknown role %d", (int)claim->role);
	if (!pl_frame_key_valid(claim->key))
		return pl_wire_fail(err, errlen, "claim with a malformed session key");
	if (!name_valid(claim->sender, ns) || !name_valid(claim->receiver, nr))
		return pl_wire_fail(err, errlen, "claim with a malformed node name");
	if (cap < PL_AUTH_PAYLOAD_FIXED + 2 + ns + nr)
		return pl_wire_fail(err, errlen, "claim needs %zu bytes, the buffer has %zu",
				    PL_AUTH_PAYLOAD_FIXED + 2 + ns + nr, cap);
	memcpy(p, PL_AUTH_MAGIC, 4);
	p[4] = PL_AUTH_VERSION;
	p[5] = (uint8_t)claim->role;
	p[6] = claim->channel;
	p[7] = 0;
	pl_put_be32(p + 8, claim->job_id);
	memcpy(p + 12, claim->key, PL_FRAME_KEY_LEN);
	pl_put_be64(p + 12 + PL_FRAME_KEY_LEN, claim->size);
	memcpy(p + 20 + PL_FRAME_KEY_LEN, claim->digest, PL_SHA256_LEN);
	memcpy(p + 20 + PL_FRAME_KEY_LEN + PL_SHA256_LEN, claim->binding, PL_SHA256_LEN);
	memcpy(p + 20 + PL_FRAME_KEY_LEN + 2 * PL_SHA256_LEN, claim->secret, PL_CIPHER_SECRET_LEN);
	p = put_name(buf + PL_AUTH_PAYLOAD_FIXED, claim->sender);
	p = put_name(p, claim->receiver);
	*len = (size_t)(p - buf);
	return 0;
}

/* A length-prefixed node name at buf[*pos], within len. */
static int get_name(const uint8_t *buf, size_t len, size_t *pos, char *name, const char *what,
		    char *err, size_t errlen)
{
	size_t n;

	if (*pos >= len || buf[*pos] > len - *pos - 1)
		return pl_wire_fail(err, errlen, "malformed claim: %s name cut short", what);
	n = buf[*pos];
	memcpy(name, buf + *pos + 1, n);
	name[n] = '\0';
	if (!name_valid(name, n))
		return pl_wire_fail(err, errlen, "malformed claim: bad %s name", what);
	*pos += 1 + n;
	return 0;
}

static int decode_fixed(const uint8_t *p, struct pl_auth_claim *claim, char *err, size_t errlen)
{
	if (memcmp(p, PL_AUTH_MAGIC, 4) != 0)
		return pl_wire_fail(err, errlen, "not a pylaunch claim");
	if (p[4] != PL_AUTH_VERSION)
		return pl_wire_fail(err, errlen, "claim version %u (this node speaks %d)", p[4],
				    PL_AUTH_VERSION);
	if (!role_valid(p[5]))
		return pl_wire_fail(err, errlen, "malformed claim: unknown role %u", p[5]);
	if (p[6] != PL_CHANNEL_CLEAR && p[6] != PL_CHANNEL_AES256GCM)
		return pl_wire_fail(err, errlen, "malformed claim: unknown channel %u", p[6]);
	if (p[7] != 0)
		return pl_wire_fail(err, errlen, "malformed claim: reserved byte is not zero");
	claim->channel = p[6];
	claim->role = (enum pl_auth_role)p[5];
	claim->job_id = pl_get_be32(p + 8);
	memcpy(claim->key, p + 12, PL_FRAME_KEY_LEN);
	claim->key[PL_FRAME_KEY_LEN] = '\0';
	if (!pl_frame_key_valid(claim->key))
		return pl_wire_fail(err, errlen, "malformed claim: bad session key");
	claim->size = pl_get_be64(p + 12 + PL_FRAME_KEY_LEN);
	memcpy(claim->digest, p + 20 + PL_FRAME_KEY_LEN, PL_SHA256_LEN);
	memcpy(claim->binding, p + 20 + PL_FRAME_KEY_LEN + PL_SHA256_LEN, PL_SHA256_LEN);
	memcpy(claim->secret, p + 20 + PL_FRAME_KEY_LEN + 2 * PL_SHA256_LEN, PL_CIPHER_SECRET_LEN);
	return 0;
}

int pl_auth_payload_decode(const uint8_t *buf, size_t len, struct pl_auth_claim *claim, char *err,
			   size_t errlen)
{
	size_t pos = PL_AUTH_PAYLOAD_FIXED;

	memset(claim, 0, sizeof(*claim));
	if (len < 4 || memcmp(buf, PL_AUTH_MAGIC, 4) != 0)
		return pl_wire_fail(err, errlen, "not a pylaunch claim");
	if (len < PL_AUTH_PAYLOAD_FIXED)
		return pl_wire_fail(err, errlen, "malformed claim: %zu bytes", len);
	if (decode_fixed(buf, claim, err, errlen) < 0)
		return -1;
	if (get_name(buf, len, &pos, claim->sender, "sender", err, errlen) < 0 ||
	    get_name(buf, len, &pos, claim->receiver, "receiver", err, errlen) < 0)
		return -1;
	if (pos != len)
		return pl_wire_fail(err, errlen, "malformed claim: %zu bytes after its end",
				    len - pos);
	return 0;
}

/* ---------------------------------------------------------------- MUNGE */

static const char *munge_reason(munge_ctx_t ctx, munge_err_t e)
{
	const char *why = ctx ? munge_ctx_strerror(ctx) : NULL;

	return why ? why : munge_strerror(e);
}

/* The caller's context (its socket) with the payload encrypted and only for our own uid. */
static munge_ctx_t restricted_ctx(void *ctx)
{
	munge_ctx_t c = ctx ? munge_ctx_copy(ctx) : munge_ctx_create();

	if (c && (munge_ctx_set(c, MUNGE_OPT_CIPHER_TYPE, MUNGE_CIPHER_AES256) != EMUNGE_SUCCESS ||
		  munge_ctx_set(c, MUNGE_OPT_UID_RESTRICTION, geteuid()) != EMUNGE_SUCCESS)) {
		munge_ctx_destroy(c);
		return NULL;
	}
	return c;
}

static int munge_backend_encode(void *ctx, const void *payload, size_t len, char **cred, char *err,
				size_t errlen)
{
	munge_ctx_t c = restricted_ctx(ctx);
	munge_err_t e;

	*cred = NULL;
	if (!c)
		return pl_wire_fail(err, errlen,
				    "MUNGE cannot make a credential: cannot restrict it to uid %lu",
				    (unsigned long)geteuid());
	e = munge_encode(cred, c, payload, (int)len);
	if (e != EMUNGE_SUCCESS) {
		free(*cred);
		*cred = NULL;
		pl_wire_fail(err, errlen, "MUNGE cannot make a credential: %s", munge_reason(c, e));
	}
	munge_ctx_destroy(c);
	return e == EMUNGE_SUCCESS ? 0 : -1;
}

/* munge_decode() rewrites its context with the decoded credential's settings (a damaged one
 * leaves MAC type 0 behind, and the next munge_encode() with it fails): decode with a copy, so
 * the caller's context stays as it was configured. */
static int munge_backend_decode(void *ctx, const char *cred, void **payload, size_t *len,
				uid_t *uid, char *err, size_t errlen)
{
	munge_ctx_t copy = NULL;
	gid_t gid;
	int n = 0, rc = -1;
	munge_err_t e;

	*payload = NULL;
	if (ctx && !(copy = munge_ctx_copy(ctx))) {
		pl_wire_fail(err, errlen, "MUNGE refuses the credential: out of memory");
		goto fail;
	}
	e = munge_decode(cred, copy, payload, &n, uid, &gid);
	if (e != EMUNGE_SUCCESS) {
		/* Expired and replayed credentials still come with their payload. */
		free(*payload);
		*payload = NULL;
		pl_wire_fail(err, errlen, "MUNGE refuses the credential: %s",
			     munge_reason(copy, e));
		goto fail;
	}
	*len = n > 0 ? (size_t)n : 0;
	rc = 0;
fail:
	if (copy)
		munge_ctx_destroy(copy);
	return rc;
}

void pl_auth_backend_munge(struct pl_auth_backend *backend, struct munge_ctx *ctx)
{
	backend->encode = munge_backend_encode;
	backend->decode = munge_backend_decode;
	backend->ctx = ctx;
}

/* ---------------------------------------------------------------- make, verify */

int pl_auth_make(const struct pl_auth_backend *backend, const struct pl_auth_claim *claim,
		 char **cred, char *err, size_t errlen)
{
	uint8_t payload[PL_AUTH_PAYLOAD_MAX];
	size_t len;

	*cred = NULL;
	if (pl_auth_payload_encode(claim, payload, sizeof(payload), &len, err, errlen) < 0)
		return -1;
	return backend->encode(backend->ctx, payload, len, cred, err, errlen);
}

static int check_maker(uid_t uid, uid_t slurm_uid, char *err, size_t errlen)
{
	if (uid == 0 || uid == slurm_uid)
		return 0;
	return pl_wire_fail(err, errlen,
			    "credential made by uid %lu, not by root or SlurmUser (uid %lu)",
			    (unsigned long)uid, (unsigned long)slurm_uid);
}

static int check_addressing(const struct pl_auth_claim *c, const struct pl_auth_expect *want,
			    char *err, size_t errlen)
{
	if (c->role != want->role)
		return pl_wire_fail(err, errlen, "%s claim where %s was expected",
				    role_name(c->role), role_name(want->role));
	if (c->job_id != want->job_id)
		return pl_wire_fail(err, errlen, "claim for job %" PRIu32 ", not %" PRIu32,
				    c->job_id, want->job_id);
	if (strcmp(c->key, want->key) != 0)
		return pl_wire_fail(err, errlen, "claim for session %s, not %s", c->key, want->key);
	if (strcmp(c->receiver, want->self) != 0)
		return pl_wire_fail(err, errlen, "claim addressed to node %s, not %s", c->receiver,
				    want->self);
	if (pl_hostlist_index(want->nodes, c->sender) == PL_TREE_NONE)
		return pl_wire_fail(err, errlen,
				    "claim from node %s, which is not a node of job %" PRIu32,
				    c->sender, want->job_id);
	if (want->sender && strcmp(c->sender, want->sender) != 0)
		return pl_wire_fail(err, errlen, "claim from node %s, expected %s", c->sender,
				    want->sender);
	if (want->binding && memcmp(c->binding, want->binding, PL_SHA256_LEN) != 0)
		return pl_wire_fail(err, errlen, "%s claim made for another connection (relayed?)",
				    role_name(c->role));
	if (c->channel != want->channel)
		return pl_wire_fail(
		    err, errlen,
		    "%s claim from node %s, whose tree stream is %s, this node's %s "
		    "(one of them built with --disable-tree-cipher)",
		    role_name(c->role), c->sender, c->channel ? "encrypted" : "in clear",
		    want->channel ? "encrypted" : "in clear");
	return 0;
}

static int check_content(const struct pl_auth_claim *c, const struct pl_auth_expect *want,
			 char *err, size_t errlen)
{
	if (!want->check_content)
		return 0;
	if (c->size != want->size)
		return pl_wire_fail(err, errlen, "%s claim binds %" PRIu64 " bytes, not %" PRIu64,
				    role_name(c->role), c->size, want->size);
	if (memcmp(c->digest, want->digest, PL_SHA256_LEN) != 0)
		return pl_wire_fail(err, errlen,
				    "%s claim binds another digest than this session's",
				    role_name(c->role));
	return 0;
}

int pl_auth_verify(const struct pl_auth_backend *backend, const char *cred,
		   const struct pl_auth_expect *want, struct pl_auth_claim *claim, char *err,
		   size_t errlen)
{
	void *payload = NULL;
	size_t len = 0;
	uid_t uid;
	int rc = -1;

	memset(claim, 0, sizeof(*claim));
	if (backend->decode(backend->ctx, cred, &payload, &len, &uid, err, errlen) < 0)
		goto fail;
	if (check_maker(uid, want->slurm_uid, err, errlen) < 0 ||
	    pl_auth_payload_decode(payload, len, claim, err, errlen) < 0 ||
	    check_addressing(claim, want, err, errlen) < 0 ||
	    check_content(claim, want, err, errlen) < 0)
		goto fail;
	rc = 0;
fail:
	free(payload);
	return rc;
}

/* ---------------------------------------------------------------- on the wire */

static bool printable(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] < 0x20 || p[i] > 0x7e)
			return false;
	}
	return true;
}

int pl_auth_wire_encode(const char *cred, uint8_t *buf, size_t cap, size_t *len, char *err,
			size_t errlen)
{
	size_t n = strlen(cred);

	if (n == 0 || n > PL_AUTH_CRED_MAX)
		return pl_wire_fail(err, errlen, "credential of %zu bytes (1 to %d allowed)", n,
				    PL_AUTH_CRED_MAX);
	if (cap < n + 2)
		return pl_wire_fail(err, errlen, "credential needs %zu bytes, the buffer has %zu",
				    n + 2, cap);
	buf[0] = (uint8_t)(n >> 8);
	buf[1] = (uint8_t)n;
	memcpy(buf + 2, cred, n);
	*len = n + 2;
	return 0;
}

void pl_auth_reader_init(struct pl_auth_reader *reader)
{
	memset(reader, 0, sizeof(*reader));
	reader->need = sizeof(reader->head);
}

/* The length bytes are known: the text follows. */
static int reader_start_text(struct pl_auth_reader *reader, char *err, size_t errlen)
{
	reader->in_text = true;
	reader->need = (size_t)reader->head[0] << 8 | reader->head[1];
	reader->have = 0;
	if (reader->need == 0 || reader->need > PL_AUTH_CRED_MAX)
		return pl_wire_fail(err, errlen, "credential of %zu bytes (1 to %d allowed)",
				    reader->need, PL_AUTH_CRED_MAX);
	return 0;
}

int pl_auth_reader_feed(struct pl_auth_reader *reader, const uint8_t *in, size_t len, size_t *used,
			char *err, size_t errlen)
{
	size_t pos = 0;

	*used = 0;
	while (pos < len && reader->have < reader->need) {
		size_t take = reader->need - reader->have;
		uint8_t *dst = reader->in_text ? (uint8_t *)reader->text : reader->head;

		if (take > len - pos)
			take = len - pos;
		if (reader->in_text && !printable(in + pos, take))
			return pl_wire_fail(err, errlen, "credential with a byte that is not text");
		memcpy(dst + reader->have, in + pos, take);
		reader->have += take;
		pos += take;
		*used = pos;
		if (!reader->in_text && reader->have == reader->need &&
		    reader_start_text(reader, err, errlen) < 0)
			return -1;
	}
	if (!reader->in_text || reader->have < reader->need)
		return 0;
	reader->text[reader->need] = '\0';
	return 1;
}
