/* Extraction of bundles into the stage directory, safe against hostile archives.
 *
 * Runs in a child that has already taken the job's uid, gid and groups. Every file is created
 * beneath dirfd and never outside it: an entry is refused when its path is absolute, has a ".."
 * component or passes through a symlink (whichever layer made the link); hard links must name an
 * earlier regular file of the bundle; device nodes, FIFOs and sockets are refused; set-uid and
 * set-gid bits are stripped. Symlinks are created as they are, pointing anywhere, and are never
 * followed: nothing is written through them.
 *
 * Bundles are layers: call an extract function for each in order, then pl_extract_finish() once.
 * A later file or symlink replaces an earlier file or symlink; a directory merges into an earlier
 * directory; a file over a directory or a directory over a non-directory is refused.
 *
 * Directories are created 0700 so that a read-only directory cannot block its later contents; their
 * own modes and mtimes are remembered in this process until pl_extract_finish() applies them (one
 * staging at a time per process). After an error the staging is abandoned: what was written stays
 * for the caller to remove, what was remembered is forgotten, pl_extract_finish() is not needed.
 *
 * Errors come back as one line in err, "entry 'NAME': REASON" where an entry is at fault; names are
 * escaped (no control characters) and cut when very long. */
#ifndef PL_EXTRACT_H
#define PL_EXTRACT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

struct archive;

struct pl_extract_limits {
	uint64_t max_bytes;   /* cap on extracted data bytes, all layers together */
	uint64_t max_entries; /* cap on entries made (inodes: pl_extract_entries), 0: none */
};

/* Accumulated across layers. */
struct pl_extract_stats {
	uint64_t bytes; /* data bytes written (holes of sparse files not counted) */
	uint64_t files;
	uint64_t dirs; /* directory entries (not the parents made for entries that lack them) */
	uint64_t symlinks;
	uint64_t hardlinks;
	uint64_t setid_stripped; /* entries whose set-uid or set-gid bit was dropped */
	uint64_t implied_dirs;	 /* parents made for entries whose archive lacked them */
};

/* The inodes an extraction made: what stage.max_entries caps. */
uint64_t pl_extract_entries(const struct pl_extract_stats *stats);

/* Submit-time check, run as the user: can the file be read as one of the accepted formats (tar,
 * plain or compressed with gzip, zstd, xz, bzip2 or lz4; zip)? Reads the first header only. */
int pl_archive_probe(const char *path, char *err, size_t errlen);
/* The same for a bundle pl_bundle_lookup() found (pathfd is not closed). */
int pl_archive_probe_looked_up(int pathfd, const struct stat *st, char *err, size_t errlen);

/* A bundle is looked up once and opened through that lookup: a shared file system's client that
 * caches nothing costs its metadata server a lookup and a getattr per path component at every
 * walk, and sparing that server is what pylaunch is for. O_PATH opens nothing (a device or FIFO
 * named as a bundle is not touched). Returns the O_PATH descriptor with *st, or -1 and errno. */
int pl_bundle_lookup(const char *path, struct stat *st);

/* Extracts the archive file at path beneath dirfd. The cap applies to stats->bytes. */
int pl_extract_archive_file(const char *path, int dirfd, const struct pl_extract_limits *lim,
			    struct pl_extract_stats *stats, char *err, size_t errlen);

/* The same for a bundle pl_bundle_lookup() found (pathfd is not closed). */
int pl_extract_archive_looked_up(int pathfd, const struct stat *st, int dirfd,
				 const struct pl_extract_limits *lim,
				 struct pl_extract_stats *stats, char *err, size_t errlen);

/* The same from an open fd (a file, pipe or socket; not closed). A zip read from a pipe has no
 * central directory to consult: modes and symlinks are lost; stream tar through pipes. */
int pl_extract_archive_fd(int fd, int dirfd, const struct pl_extract_limits *lim,
			  struct pl_extract_stats *stats, char *err, size_t errlen);

/* A reader accepting exactly the formats above, for a caller that feeds it itself
 * (archive_read_open() with its own callbacks) and then calls pl_extract_archive(). The caller
 * frees it with archive_read_free(). NULL when out of memory. */
struct archive *pl_archive_reader_new(void);

/* The core of the two functions above: extracts every entry of the opened reader a. */
int pl_extract_archive(struct archive *a, int dirfd, const struct pl_extract_limits *lim,
		       struct pl_extract_stats *stats, char *err, size_t errlen);

/* A directory bundle: its contents are staged as `tar -C path -c .` would archive them (a symlink
 * at path itself is followed, symlinks inside are copied as symlinks; special files are refused;
 * hard-linked files are copied as separate files). */
int pl_extract_directory(const char *path, int dirfd, const struct pl_extract_limits *lim,
			 struct pl_extract_stats *stats, char *err, size_t errlen);

/* Once after the last layer, with the same dirfd: applies the remembered directory modes and
 * mtimes (the mode of dirfd itself is the caller's and never changed). */
int pl_extract_finish(int dirfd, char *err, size_t errlen);

#endif
