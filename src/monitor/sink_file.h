/* The file sink of --pymonitor: JSON Lines, one record a line.
 *
 * The line goes to the file in ONE write(2) on a descriptor opened O_APPEND, so the
 * epilogs of concurrent jobs on a node (or of all nodes, on a file system with
 * atomic appends) never interleave their records. The file is created 0640 when
 * missing; its directory must exist. A symbolic link or anything but a regular file
 * at the path is refused. */
#ifndef PL_SINK_FILE_H
#define PL_SINK_FILE_H

#include <stddef.h>

/* Appends record (len bytes, no newline) and a newline to the file at path. Returns 0,
 * or -1 after logging why (never fatal: the caller goes on with the next sink). */
int pl_sink_file_write(const char *path, const char *record, size_t len);

#endif
