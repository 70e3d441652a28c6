/* Internal to the extraction: extract.c (the calls) uses extract_entry.c (one entry),
 * extract_dir.c (directories beneath dirfd, a call's state) and extract_name.c (names and
 * messages), each only those after it. The rest of the plugin uses extract.h. */
#ifndef PL_EXTRACT_INTERNAL_H
#define PL_EXTRACT_INTERNAL_H

#include <archive_entry.h>
#include <stdbool.h>

#include "extract.h"

/* A bundle is read once, sequentially, often from a shared file system: few large reads. */
#define READ_BLOCK (1024 * 1024)

/* srun's check reads only the first header: a small block keeps its share of a job's reads of
 * the shared file system to a few kilobytes, not a megabyte on top of the bundle. */
#define PROBE_BLOCK (16 * 1024)

/* Messages end up in a 512-byte line with a prefix and up to two names. */
#define SHOWN_NAME_MAX 120
#define QUOTED_MAX (SHOWN_NAME_MAX + 8)
#define SUBJECT_MAX (QUOTED_MAX + 32)
#define FORMATS_ACCEPTED "tar, tar.gz/.zst/.xz/.bz2/.lz4, zip"
#define SETID_BITS (S_ISUID | S_ISGID)
#define KEPT_BITS (S_ISVTX | 0777)
#define FIRST_PENDING_CAP 256

/* libarchive's errno for an unrecognised format (ARCHIVE_ERRNO_FILE_FORMAT, not in its header). */
#ifdef EFTYPE
#define FORMAT_ERRNO EFTYPE
#else
#define FORMAT_ERRNO EILSEQ
#endif
#define PRINTF_LIKE(a, b) __attribute__((format(printf, a, b)))

struct quoted {
	char s[QUOTED_MAX];
};

/* One extraction call: where it writes, what it counts, where the message goes. */
struct extractor {
	int dirfd;
	uint64_t max_bytes;
	uint64_t max_entries;
	struct pl_extract_stats *stats;
	char *err;
	size_t errlen;
	bool from_disk;	   /* entries come from archive_read_disk ... */
	char *disk_root;   /* ... which names them all after its root */
	const char *entry; /* the current entry's name, for messages */
	char *path;	   /* its normalised form: components joined by single slashes */
	size_t path_size;
	char *parent; /* the last parent directory opened, kept: entries come grouped */
	size_t parent_size;
	size_t parent_len;
	int parent_fd;
	size_t walk_stop; /* after a failed walk: length of the prefix that is in the way */
};

/* A directory's own mode and mtime, applied by pl_extract_finish(). */
struct pending_dir {
	char *path;
	mode_t mode;
	bool has_mtime;
	struct timespec mtime;
	size_t seq;
};

enum path_kind { PATH_INSIDE, PATH_TOP, PATH_EMPTY, PATH_ABSOLUTE, PATH_DOTDOT };

/* extract_dir.c: the directories made implied (as parents of entries), for the stats. */
extern uint64_t ex_implied_dirs_made;

/* extract_name.c */
const char *ex_quote_n(struct quoted *q, const char *s, size_t len);
const char *ex_quote(struct quoted *q, const char *s);
int PRINTF_LIKE(2, 3) ex_fail(struct extractor *x, const char *fmt, ...);
int PRINTF_LIKE(2, 3) ex_fail_entry(struct extractor *x, const char *fmt, ...);
int ex_fail_entry_errno(struct extractor *x, const char *op);
const char *ex_archive_why(struct quoted *q, struct archive *a);
int ex_fail_cap(struct extractor *x);
int ex_over_entries(struct extractor *x);
int ex_over_entries_after(struct extractor *x);
int ex_fail_disk(struct extractor *x, struct archive *a);
int ex_fail_header(struct extractor *x, struct archive *a);
enum path_kind ex_normalize(const char *in, char *out);
int ex_reserve(char **buf, size_t *size, size_t need);
int ex_take_entry_path(struct extractor *x, struct archive_entry *e, enum path_kind *kind);

/* extract_dir.c */
int ex_open_dir_beneath(struct extractor *x, const char *rel, int flags, bool create);
int ex_fail_walk(struct extractor *x, const char *subject, const char *rel);
int ex_open_parent(struct extractor *x, int *pfd, const char **name);
int ex_remember_dir(const char *path, mode_t mode, struct archive_entry *e);
void ex_init_extractor(struct extractor *x, int dirfd, const struct pl_extract_limits *lim,
		       struct pl_extract_stats *stats, char *err, size_t errlen);
int ex_finish_call(struct extractor *x, int rc);

/* extract_entry.c */
int ex_extract_entries(struct extractor *x, struct archive *a);

#endif
