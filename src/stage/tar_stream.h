/* A directory bundle as a tar stream: what the root of the fan-out tree sends down the tree
 * instead of the directory, so that every node stages it with pl_extract_archive() and ends up
 * with the tree pl_extract_directory() would have staged from the directory itself.
 *
 * The stream is what `tar -C path -c .` would write, in POSIX pax format restricted to ustar
 * headers wherever they suffice (a pax extended header only for long or non-ASCII names and
 * targets, or files of 8 GiB and more):
 * - path itself is followed if it is a symlink; nothing inside it is: a symlink is stored as a
 *   symlink with its target as it is;
 * - a FIFO, socket or device node inside is refused ("entry 'NAME': FIFOs are not allowed");
 * - hard-linked files are stored as separate regular files (no hard-link entries);
 * - names are "./"-prefixed ("./", "./pkg/", "./pkg/mod.py"), in byte order within a directory,
 *   so the same directory gives the same stream; every directory has its entry, so its mode
 *   survives;
 * - modes (set-id bits included: extraction strips them) and mtimes are kept, mtimes to the whole
 *   second (ustar's resolution, and all a .pyc compares); owners are stored as 0 without names:
 *   extraction ignores them, and a uid above 262143 would cost a pax header on every entry;
 * - a sparse file is stored in full, its holes as zeros.
 * Every file is opened beneath its directory without following symlinks, and its type checked
 * on the open descriptor: swapping an entry for a symlink or a FIFO while the stream is made
 * makes it fail, never read something else or hang.
 *
 * Runs as the job's user; no privileges needed or used. No logging, no global state. */
#ifndef PL_TAR_STREAM_H
#define PL_TAR_STREAM_H

#include <stddef.h>
#include <stdint.h>

/* Nesting deeper than this is refused (one descriptor is held per level). */
#define PL_TAR_STREAM_MAX_DEPTH 512

/* Writes the whole stream, end-of-archive blocks included, to out_fd (a blocking pipe, socket or
 * file; not closed) with write(2), retrying partial writes and EINTR. The caller must ignore
 * SIGPIPE: a reader that went away is then an error (EPIPE) like any other, not a signal.
 * max_bytes caps the sum of the regular files' sizes (0: no cap). *bytes_out (may be NULL)
 * receives the number of bytes written to out_fd, on failure too.
 *
 * Returns 0, or -1 with one line in err: "entry 'NAME': REASON" where an entry is at fault (NAME
 * relative to path, escaped and cut like extract.c's), "cannot write the stream: REASON" when
 * out_fd refused bytes. A failed stream never ends like a complete one: it stops inside an entry's
 * data or with a damaged header, so that a reader fails instead of staging part of the directory
 * as if it were all of it (libarchive takes a tar that simply stops after an entry for complete).
 */
int pl_tar_stream_directory(const char *path, int out_fd, uint64_t max_bytes, uint64_t *bytes_out,
			    char *err, size_t errlen);

#endif
