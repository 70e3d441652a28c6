#include "sink_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

static int open_sink(const char *path)
{
	/* O_NONBLOCK: a FIFO planted at the path must not hang the epilog (regular files
	 * ignore it). */
	int fd = open(
	    path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC,
	    0640);
	struct stat st;

	if (fd < 0) {
		if (errno == ENOENT)
			pl_error("monitor: file sink %s: its directory does not exist", path);
		else if (errno == ELOOP)
			pl_error("monitor: file sink %s: is a symbolic link; refused", path);
		else
			pl_error_errno(errno, "monitor: file sink %s", path);
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		pl_error("monitor: file sink %s: not a regular file; refused", path);
		close(fd);
		return -1;
	}
	return fd;
}

int pl_sink_file_write(const char *path, const char *record, size_t len)
{
	char *line = malloc(len + 1);
	ssize_t n;
	int fd = -1;
	int rc = -1;

	if (!line) {
		pl_error("monitor: file sink %s: out of memory", path);
		return -1;
	}
	memcpy(line, record, len);
	line[len] = '\n';
	if ((fd = open_sink(path)) < 0)
		goto fail;
	do
		n = write(fd, line, len + 1);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		pl_error_errno(errno, "monitor: file sink %s: write", path);
		goto fail;
	}
	if ((size_t)n != len + 1) {
		/* Disk full: end the torn line so the records after it stay readable. */
		pl_error("monitor: file sink %s: short write (%zd of %zu bytes)", path, n, len + 1);
		if (write(fd, "\n", 1) < 0)
			pl_debug("monitor: file sink %s: cannot end the torn line", path);
		goto fail;
	}
	rc = 0;
fail:
	if (fd >= 0 && close(fd) < 0 && rc == 0) {
		pl_error_errno(errno, "monitor: file sink %s: close", path);
		rc = -1;
	}
	free(line);
	return rc;
}
