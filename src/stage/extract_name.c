/* The extraction's messages and names: quoting what came from the user's archive, the reasons
 * a call fails, and each entry's path normalised and checked to stay beneath the tree. */
#include "extract_internal.h"

#include <archive.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ messages */

/* Names come from the user's archive and end up in logs: escape what is not printable ASCII, and
 * cut a name that would drown the message. */
const char *ex_quote_n(struct quoted *q, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t out = 0;
	size_t i;

	for (i = 0; i < len && out + 4 <= SHOWN_NAME_MAX; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x20 && c < 0x7f && c != '\\') {
			q->s[out++] = (char)c;
			continue;
		}
		q->s[out++] = '\\';
		q->s[out++] = 'x';
		q->s[out++] = hex[c >> 4];
		q->s[out++] = hex[c & 15];
	}
	if (i < len) {
		memcpy(q->s + out, "...", 3);
		out += 3;
	}
	q->s[out] = '\0';
	return q->s;
}

const char *ex_quote(struct quoted *q, const char *s)
{
	return ex_quote_n(q, s ? s : "", s ? strlen(s) : 0);
}

static void PRINTF_LIKE(3, 0) vappend(char *buf, size_t len, const char *fmt, va_list ap)
{
	size_t used = strnlen(buf, len);

	if (used + 1 < len)
		vsnprintf(buf + used, len - used, fmt, ap);
}

int PRINTF_LIKE(2, 3) ex_fail(struct extractor *x, const char *fmt, ...)
{
	va_list ap;

	if (x->errlen == 0)
		return -1;
	x->err[0] = '\0';
	va_start(ap, fmt);
	vappend(x->err, x->errlen, fmt, ap);
	va_end(ap);
	return -1;
}

int PRINTF_LIKE(2, 3) ex_fail_entry(struct extractor *x, const char *fmt, ...)
{
	struct quoted q;
	va_list ap;

	if (x->errlen == 0)
		return -1;
	snprintf(x->err, x->errlen, "entry '%s': ", ex_quote(&q, x->entry));
	va_start(ap, fmt);
	vappend(x->err, x->errlen, fmt, ap);
	va_end(ap);
	return -1;
}

int ex_fail_entry_errno(struct extractor *x, const char *op)
{
	return ex_fail_entry(x, "%s: %s", op, strerror(errno));
}

const char *ex_archive_why(struct quoted *q, struct archive *a)
{
	const char *why = archive_error_string(a);

	return ex_quote(q, why ? why : "unknown error");
}

/* "16.0 GiB", in the binary units the configuration is written in; integer arithmetic, as
 * printf("%f") would follow the locale's decimal point. */
static void format_size(uint64_t bytes, char *buf, size_t len)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
	unsigned u = 0;
	unsigned shift;
	uint64_t whole;
	uint64_t tenths;

	while (u + 1 < sizeof(units) / sizeof(units[0]) && (bytes >> (10 * (u + 1))) != 0)
		u++;
	if (u == 0) {
		snprintf(buf, len, "%" PRIu64 " B", bytes);
		return;
	}
	shift = 10 * u;
	whole = bytes >> shift;
	tenths =
	    (((bytes & ((UINT64_C(1) << shift) - 1)) * 10) + (UINT64_C(1) << (shift - 1))) >> shift;
	if (tenths == 10) {
		whole++;
		tenths = 0;
	}
	snprintf(buf, len, "%" PRIu64 ".%" PRIu64 " %s", whole, tenths, units[u]);
}

int ex_fail_cap(struct extractor *x)
{
	char size[48];

	format_size(x->max_bytes, size, sizeof(size));
	return ex_fail(x, "extracted size exceeds stage.max_size (%s)", size);
}

uint64_t pl_extract_entries(const struct pl_extract_stats *s)
{
	return s->files + s->dirs + s->symlinks + s->hardlinks + s->implied_dirs;
}

/* A bundle of a million empty files costs no bytes but a million of the node's inodes, which
 * every job on the node shares. */
int ex_over_entries(struct extractor *x)
{
	if (!x->max_entries || pl_extract_entries(x->stats) < x->max_entries)
		return 0;
	return ex_fail(x,
		       "more than %" PRIu64 " entries (files, directories and links; "
		       "stage.max_entries) for this job on this node",
		       x->max_entries);
}

/* Implied parents may take an entry past the cap. */
int ex_over_entries_after(struct extractor *x)
{
	return x->max_entries && pl_extract_entries(x->stats) > x->max_entries ? ex_over_entries(x)
									       : 0;
}

/* archive_read_disk's messages often leave out the reason ("Can't open `x'"). */
int ex_fail_disk(struct extractor *x, struct archive *a)
{
	struct quoted why;
	int errnum = archive_errno(a);

	ex_archive_why(&why, a);
	if (errnum > 0 && errnum != FORMAT_ERRNO)
		return ex_fail(x, "cannot read the directory: %s: %s", why.s, strerror(errnum));
	return ex_fail(x, "cannot read the directory: %s", why.s);
}

/* Why archive_read_next_header() failed, in the user's terms. */
int ex_fail_header(struct extractor *x, struct archive *a)
{
	struct quoted why;
	struct quoted last;

	if (x->from_disk)
		return ex_fail_disk(x, a);
	ex_archive_why(&why, a);
	if (archive_format(a) == 0)
		return ex_fail(x, "not an archive libarchive can read (" FORMATS_ACCEPTED "): %s",
			       why.s);
	if (x->path == NULL)
		return ex_fail(x, "damaged archive: %s", why.s);
	return ex_fail(x, "damaged archive after entry '%s': %s",
		       ex_quote(&last, x->path[0] ? x->path : "."), why.s);
}

/* ------------------------------------------------------------ names */

/* out (strlen(in) + 1 bytes) receives the components of in joined by single slashes, without the
 * "." components that `tar -C dir -c .` writes. */
enum path_kind ex_normalize(const char *in, char *out)
{
	size_t n = 0;

	if (in[0] == '\0')
		return PATH_EMPTY;
	if (in[0] == '/')
		return PATH_ABSOLUTE;
	while (*in) {
		size_t len = strcspn(in, "/");

		if (len == 2 && in[0] == '.' && in[1] == '.')
			return PATH_DOTDOT;
		if (len > 0 && !(len == 1 && in[0] == '.')) {
			if (n > 0)
				out[n++] = '/';
			memcpy(out + n, in, len);
			n += len;
		}
		in += len;
		in += strspn(in, "/");
	}
	out[n] = '\0';
	return n > 0 ? PATH_INSIDE : PATH_TOP;
}

int ex_reserve(char **buf, size_t *size, size_t need)
{
	char *bigger;

	if (*size >= need)
		return 0;
	bigger = realloc(*buf, need);
	if (!bigger)
		return -1;
	*buf = bigger;
	*size = need;
	return 0;
}

/* archive_read_disk names every entry after the path it was opened with: the first entry is
 * that root, every other one starts with its name. */
static const char *relative_to_root(struct extractor *x, const char *name)
{
	size_t len;

	if (!x->disk_root) {
		x->disk_root = strdup(name);
		return x->disk_root ? "." : NULL;
	}
	len = strlen(x->disk_root);
	if (strncmp(name, x->disk_root, len) != 0)
		return NULL;
	name += len;
	name += strspn(name, "/");
	return name[0] ? name : ".";
}

int ex_take_entry_path(struct extractor *x, struct archive_entry *e, enum path_kind *kind)
{
	struct quoted q;
	const char *name = archive_entry_pathname(e);

	if (!name)
		name = archive_entry_pathname_utf8(e);
	if (!name)
		return ex_fail(x, "an entry has a name that cannot be read");
	if (x->from_disk) {
		const char *rel = relative_to_root(x, name);

		if (!rel)
			return ex_fail(x, "cannot name '%s' relative to the directory",
				       ex_quote(&q, name));
		name = rel;
	}
	x->entry = name;
	if (ex_reserve(&x->path, &x->path_size, strlen(name) + 1) < 0)
		return ex_fail_entry(x, "out of memory");
	*kind = ex_normalize(name, x->path);
	switch (*kind) {
	case PATH_EMPTY:
		return ex_fail_entry(x, "empty name");
	case PATH_ABSOLUTE:
		return ex_fail_entry(x, "absolute paths are not allowed");
	case PATH_DOTDOT:
		return ex_fail_entry(x, "path leaves the bundle");
	default:
		return 0;
	}
}
