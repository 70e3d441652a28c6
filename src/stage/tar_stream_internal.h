/* Internal to the tar stream: tar_stream.c (output and calls) uses tar_stream_walk.c (the
 * walk), and both use tar_stream_msg.c (messages). The rest of the plugin uses tar_stream.h. */
#ifndef PL_TAR_STREAM_INTERNAL_H
#define PL_TAR_STREAM_INTERNAL_H

#include <stdbool.h>

#include "tar_stream.h"

/* Files are read once, often from a shared file system: few large reads. The buffer also holds
 * symlink targets (PATH_MAX). */
#define READ_BLOCK (1024 * 1024)

/* Writes to out_fd: a few pipe buffers at a time. */
#define OUT_BLOCK (256 * 1024)
#define TAR_BLOCK 512

/* As in extract.c: messages end up in a 512-byte line with a prefix. */
#define SHOWN_NAME_MAX 120
#define QUOTED_MAX (SHOWN_NAME_MAX + 8)
#define PERM_BITS 07777
#define PRINTF_LIKE(a, b) __attribute__((format(printf, a, b)))

/* One call of pl_tar_stream_directory(). */
struct streamer {
	struct archive *a;
	struct archive_entry *e;
	int out_fd;
	uint64_t max_bytes;
	uint64_t data_bytes; /* regular files' sizes so far, against max_bytes */
	uint64_t written;    /* bytes out_fd took */
	unsigned depth;
	bool in_data;	 /* a file's header went out, not yet all of its data and padding */
	bool out_broken; /* out_fd refused bytes: out_errno says why */
	int out_errno;
	bool sealed; /* after an error nothing more reaches out_fd (not even libarchive's close) */
	char *path;  /* the current entry's name, "./a/b" */
	size_t path_len;
	size_t path_size;
	char *out; /* bytes for out_fd not yet written */
	size_t out_len;
	char *buf; /* file data, symlink targets */
	char *err;
	size_t errlen;
};

/* A directory's names, sorted. */
struct names {
	char **v;
	size_t n;
	size_t cap;
};

/* tar_stream_msg.c */
int PRINTF_LIKE(2, 3) ts_fail(struct streamer *s, const char *fmt, ...);
int PRINTF_LIKE(2, 3) ts_fail_entry(struct streamer *s, const char *fmt, ...);
int ts_fail_entry_errno(struct streamer *s, const char *op);
int ts_fail_replaced(struct streamer *s);
int ts_fail_cap(struct streamer *s);
int ts_fail_archive(struct streamer *s);

/* tar_stream_walk.c */
int ts_stream_dir(struct streamer *s, int fd);

#endif
