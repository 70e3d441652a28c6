/* Unit tests of src/stage/tar_stream*.c: directories built here are streamed (through a pipe from a
 * forked writer, as the fan-out's root will, or into a file), extracted with extract.c, and the
 * staged tree compared with the original; refusals are checked by their message, and by the
 * stream they leave behind, which no reader may take for complete. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above first. */
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "extract.h"
#include "scratch_dir.h"
#include "tar_stream.h"

#define T0 1700000000
#define NSEC 123456789
#define KIB 1024
#define MIB (1024 * 1024)
#define BIG_SIZE (3 * MIB)
#define TAR_BLOCK 512
#define NO_CAP 0
/* What make_env() makes beneath env: */
#define ENV_FILES 10 /* a hard-linked pair counts twice */
#define ENV_DIRS 5
#define ENV_SYMLINKS 3
#define ENV_ENTRIES (1 + ENV_FILES + ENV_DIRS + ENV_SYMLINKS) /* "./" too */

struct fx {
	char src[PATH_MAX]; /* directories to stream */
	char out[PATH_MAX]; /* the stage directory */
	char tmp[PATH_MAX]; /* streams kept as files */
	int outfd;
	struct pl_extract_limits lim;
	struct pl_extract_stats stats;
	char err[512]; /* the extraction's */
};

/* What the writer reports. */
struct written {
	int rc;
	uint64_t bytes;
	char err[512];
};

/* ------------------------------------------------------------ scratch directories */

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	make_temp_dir(fx->src, "pl-tar-stream", "src");
	make_temp_dir(fx->out, "pl-tar-stream", "out");
	make_temp_dir(fx->tmp, "pl-tar-stream", "tmp");
	fx->outfd = open(fx->out, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fx->outfd >= 0);
	fx->lim.max_bytes = (uint64_t)1024 * MIB;
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	/* A test that failed halfway leaves directories pending; they must not reach the next. */
	pl_extract_finish(fx->outfd, fx->err, sizeof(fx->err));
	close(fx->outfd);
	remove_tree(fx->src);
	remove_tree(fx->out);
	remove_tree(fx->tmp);
	free(fx);
	return 0;
}

static void fresh_out(struct fx *fx)
{
	pl_extract_finish(fx->outfd, fx->err, sizeof(fx->err));
	close(fx->outfd);
	remove_tree(fx->out);
	assert_int_equal(mkdir(fx->out, 0700), 0);
	fx->outfd = open(fx->out, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fx->outfd >= 0);
	memset(&fx->stats, 0, sizeof(fx->stats));
}

/* ------------------------------------------------------------ building source trees */

static const char *in_src(const struct fx *fx, const char *rel, char *buf)
{
	return join(buf, fx->src, rel);
}

static void write_bytes(const struct fx *fx, const char *rel, const void *data, size_t len,
			mode_t mode)
{
	char path[PATH_MAX];
	int fd = open(in_src(fx, rel, path), O_WRONLY | O_CREAT | O_EXCL, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(close(fd), 0);
}

static void write_text(const struct fx *fx, const char *rel, const char *text, mode_t mode)
{
	write_bytes(fx, rel, text, strlen(text), mode);
}

/* Every byte depends on its offset: a block out of place shows. */
static void write_big(const struct fx *fx, const char *rel, size_t size)
{
	unsigned char *data = malloc(size);

	assert_non_null(data);
	for (size_t i = 0; i < size; i++)
		data[i] = (unsigned char)((i * 7 + i / 4099) % 251);
	write_bytes(fx, rel, data, size, 0644);
	free(data);
}

static void make_dir(const struct fx *fx, const char *rel, mode_t mode)
{
	char path[PATH_MAX];

	assert_int_equal(mkdir(in_src(fx, rel, path), 0700), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static void make_symlink(const struct fx *fx, const char *rel, const char *target)
{
	char path[PATH_MAX];

	assert_int_equal(symlink(target, in_src(fx, rel, path)), 0);
}

static void set_mtime(const struct fx *fx, const char *rel, time_t sec)
{
	struct timespec ts[2] = {{.tv_sec = sec, .tv_nsec = NSEC},
				 {.tv_sec = sec, .tv_nsec = NSEC}};
	char path[PATH_MAX];

	assert_int_equal(utimensat(AT_FDCWD, in_src(fx, rel, path), ts, AT_SYMLINK_NOFOLLOW), 0);
}

static const char *long_dir(void)
{
	static char name[160];

	memset(name, 'd', 150);
	name[150] = '\0';
	return name;
}

static const char *long_file(void)
{
	static char name[PATH_MAX];

	snprintf(name, sizeof(name), "%s/%0120d.py", long_dir(), 7);
	return name;
}

/* Every kind of entry a Python environment holds, under "env": nested directories of several
 * modes (one read-only with contents), files of several modes, an empty one, a 3 MiB one,
 * symlinks relative, absolute and to a directory, a hard-linked pair, names too long for ustar
 * and not ASCII. Mtimes are distinct and have nanoseconds. Returns the sum of the file sizes
 * (the hard-linked pair's once). */
static size_t make_env(const struct fx *fx)
{
	static const char *const by_mtime[] = {
	    "env/a.txt",
	    "env/exec.sh",
	    "env/secret",
	    "env/empty",
	    "env/big.bin",
	    "env/sub/deep/file",
	    "env/sub/link",
	    "env/abs",
	    "env/dirlink",
	    "env/ro/inside",
	    "env/caf\xc3\xa9.py",
	    "env/sub/deep",
	    "env/sub",
	    "env/ro",
	    "env/long",
	    "env",
	};
	char rel[PATH_MAX];
	char a[PATH_MAX];
	char b[PATH_MAX];

	make_dir(fx, "env", 0755);
	make_dir(fx, "env/sub", 0750);
	make_dir(fx, "env/sub/deep", 0700);
	make_dir(fx, "env/ro", 0755);
	make_dir(fx, "env/long", 0755);
	snprintf(rel, sizeof(rel), "env/long/%s", long_dir());
	make_dir(fx, rel, 0755);
	write_text(fx, "env/a.txt", "alpha\n", 0644);
	write_text(fx, "env/exec.sh", "#!/bin/sh\necho hi\n", 0755);
	write_text(fx, "env/secret", "s3cret\n", 0600);
	write_text(fx, "env/empty", "", 0644);
	write_big(fx, "env/big.bin", BIG_SIZE);
	write_text(fx, "env/sub/deep/file", "deep\n", 0600);
	write_text(fx, "env/ro/inside", "inside\n", 0444);
	write_text(fx, "env/caf\xc3\xa9.py", "x = 1\n", 0644);
	snprintf(rel, sizeof(rel), "env/long/%s", long_file());
	write_text(fx, rel, "long\n", 0644);
	make_symlink(fx, "env/sub/link", "deep/file");
	make_symlink(fx, "env/abs", "/nonexistent/target");
	make_symlink(fx, "env/dirlink", "sub");
	assert_int_equal(link(in_src(fx, "env/a.txt", a), in_src(fx, "env/sub/b.txt", b)), 0);
	assert_int_equal(chmod(in_src(fx, "env/ro", rel), 0555), 0);
	for (size_t i = 0; i < sizeof(by_mtime) / sizeof(by_mtime[0]); i++)
		set_mtime(fx, by_mtime[i], T0 + 1000 * (time_t)i);
	return 6 + 18 + 7 + 0 + BIG_SIZE + 5 + 7 + 6 + 5;
}

/* ------------------------------------------------------------ streaming */

static void write_result(int fd, const struct written *w)
{
	assert_int_equal(write(fd, w, sizeof(*w)), (ssize_t)sizeof(*w));
}

/* The writer runs in a child, as it will in the plugin: *rfd gets the stream's read end, *resfd
 * the end the child's result arrives on. */
static pid_t spawn_writer(const char *path, uint64_t max_bytes, int *rfd, int *resfd)
{
	int stream[2];
	int result[2];
	pid_t pid;

	assert_int_equal(pipe(stream), 0);
	assert_int_equal(pipe(result), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct written w = {0};

		close(stream[0]);
		close(result[0]);
		w.rc = pl_tar_stream_directory(path, stream[1], max_bytes, &w.bytes, w.err,
					       sizeof(w.err));
		close(stream[1]);
		write_result(result[1], &w);
		_exit(0);
	}
	close(stream[1]);
	close(result[1]);
	*rfd = stream[0];
	*resfd = result[0];
	return pid;
}

static void collect_writer(pid_t pid, int resfd, struct written *w)
{
	int status;

	assert_int_equal(read(resfd, w, sizeof(*w)), (ssize_t)sizeof(*w));
	close(resfd);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	/* Under valgrind or a sanitizer the child's own errors show in its status. */
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* Streams path through a pipe into extract.c; returns the extraction's result. */
static int stream_through_pipe(struct fx *fx, const char *path, uint64_t max_bytes,
			       struct written *w)
{
	int resfd;
	int rfd;
	pid_t pid = spawn_writer(path, max_bytes, &rfd, &resfd);
	int rc;

	fx->err[0] = '\0';
	rc = pl_extract_archive_fd(rfd, fx->outfd, &fx->lim, &fx->stats, fx->err, sizeof(fx->err));
	/* A reader that stopped early must not leave the writer blocked. */
	close(rfd);
	collect_writer(pid, resfd, w);
	return rc;
}

/* Streams path into the file tmp/name, in this process. */
static int stream_to_file(struct fx *fx, const char *path, const char *name, uint64_t max_bytes,
			  struct written *w)
{
	char file[PATH_MAX];
	int fd = open(join(file, fx->tmp, name), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	struct stat st;

	assert_true(fd >= 0);
	memset(w, 0, sizeof(*w));
	w->rc = pl_tar_stream_directory(path, fd, max_bytes, &w->bytes, w->err, sizeof(w->err));
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal((uint64_t)st.st_size, w->bytes);
	close(fd);
	return w->rc;
}

static int extract_file(struct fx *fx, const char *name)
{
	char file[PATH_MAX];

	fx->err[0] = '\0';
	return pl_extract_archive_file(join(file, fx->tmp, name), fx->outfd, &fx->lim, &fx->stats,
				       fx->err, sizeof(fx->err));
}

static void finish_ok(struct fx *fx)
{
	int rc = pl_extract_finish(fx->outfd, fx->err, sizeof(fx->err));

	if (rc != 0)
		print_message("finish: %s\n", fx->err);
	assert_int_equal(rc, 0);
}

static void written_ok(const struct written *w)
{
	if (w->rc != 0)
		print_message("stream: %s\n", w->err);
	assert_int_equal(w->rc, 0);
	assert_int_equal(w->bytes % TAR_BLOCK, 0);
}

static void extracted_ok(const struct fx *fx, int rc)
{
	if (rc != 0)
		print_message("extract: %s\n", fx->err);
	assert_int_equal(rc, 0);
}

/* ------------------------------------------------------------ comparing trees */

static void compare_dirs(int a, int b, const char *rel);

static void compare_fds(int fa, int fb)
{
	static char buf_a[64 * KIB];
	static char buf_b[64 * KIB];
	ssize_t na;

	assert_true(fa >= 0 && fb >= 0);
	do {
		na = read(fa, buf_a, sizeof(buf_a));
		assert_true(na >= 0);
		assert_int_equal(read(fb, buf_b, sizeof(buf_b)), na);
		assert_memory_equal(buf_a, buf_b, (size_t)na);
	} while (na > 0);
	close(fa);
	close(fb);
}

static void compare_contents(int a, int b, const char *name)
{
	compare_fds(openat(a, name, O_RDONLY | O_NOFOLLOW), openat(b, name, O_RDONLY | O_NOFOLLOW));
}

static void compare_symlinks(int a, int b, const char *name)
{
	char ta[PATH_MAX];
	char tb[PATH_MAX];
	ssize_t na = readlinkat(a, name, ta, sizeof(ta) - 1);

	assert_true(na > 0);
	assert_int_equal(readlinkat(b, name, tb, sizeof(tb) - 1), na);
	assert_memory_equal(ta, tb, (size_t)na);
}

static void compare_subdirs(int a, int b, const char *name, const char *rel)
{
	char sub[PATH_MAX];
	int da = openat(a, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
	int db = openat(b, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);

	assert_true(da >= 0 && db >= 0);
	snprintf(sub, sizeof(sub), "%s/%s", rel, name);
	compare_dirs(da, db, sub);
	close(da);
	close(db);
}

/* Type, mode, size, mtime (to the second: ustar's resolution), contents or target. A staged file
 * stands alone: hard links are copied, not linked. */
static void compare_entry(int a, int b, const char *name, const char *rel)
{
	struct stat sa;
	struct stat sb;

	assert_int_equal(fstatat(a, name, &sa, AT_SYMLINK_NOFOLLOW), 0);
	if (fstatat(b, name, &sb, AT_SYMLINK_NOFOLLOW) != 0)
		fail_msg("%s/%s: missing from the staged tree", rel, name);
	if ((sa.st_mode & S_IFMT) != (sb.st_mode & S_IFMT))
		fail_msg("%s/%s: type 0%o staged as 0%o", rel, name, sa.st_mode & S_IFMT,
			 sb.st_mode & S_IFMT);
	assert_int_equal(sa.st_mtim.tv_sec, sb.st_mtim.tv_sec);
	if (S_ISLNK(sa.st_mode)) {
		compare_symlinks(a, b, name);
		return;
	}
	if ((sa.st_mode & 07777) != (sb.st_mode & 07777))
		fail_msg("%s/%s: mode 0%o staged as 0%o", rel, name, sa.st_mode & 07777,
			 sb.st_mode & 07777);
	if (S_ISDIR(sa.st_mode)) {
		compare_subdirs(a, b, name, rel);
		return;
	}
	assert_true(S_ISREG(sa.st_mode));
	assert_int_equal(sa.st_size, sb.st_size);
	assert_int_equal(sb.st_nlink, 1);
	compare_contents(a, b, name);
}

static size_t count_entries(int dfd)
{
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY);
	DIR *d = fdopendir(fd);
	struct dirent *de;
	size_t n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* Everything in a is in b as it is in a, and b holds nothing else. */
static void compare_dirs(int a, int b, const char *rel)
{
	int fd = openat(a, ".", O_RDONLY | O_DIRECTORY);
	DIR *d = fdopendir(fd);
	struct dirent *de;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			compare_entry(a, b, de->d_name, rel);
	closedir(d);
	assert_int_equal(count_entries(a), count_entries(b));
}

static void compare_with_stage(const struct fx *fx, const char *src_rel)
{
	char path[PATH_MAX];
	int a = open(in_src(fx, src_rel, path), O_RDONLY | O_DIRECTORY);

	assert_true(a >= 0);
	compare_dirs(a, fx->outfd, ".");
	close(a);
}

/* ------------------------------------------------------------ tests */

static void test_tree_through_pipe(void **state)
{
	struct fx *fx = *state;
	size_t data = make_env(fx);
	char path[PATH_MAX];
	struct written w;
	int rc;

	rc = stream_through_pipe(fx, in_src(fx, "env", path), NO_CAP, &w);
	written_ok(&w);
	extracted_ok(fx, rc);
	finish_ok(fx);
	compare_with_stage(fx, "env");
	assert_int_equal(fx->stats.bytes, data + 6); /* the hard link's second copy */
	assert_int_equal(fx->stats.files, ENV_FILES);
	assert_int_equal(fx->stats.dirs, ENV_DIRS);
	assert_int_equal(fx->stats.symlinks, ENV_SYMLINKS);
	assert_int_equal(fx->stats.hardlinks, 0);
	assert_true(w.bytes > BIG_SIZE);
}

/* `tar -C env -c .` names: "./" first, directories with a trailing slash, each directory's
 * entries in byte order, depth first. */
static void expected_names(char names[][PATH_MAX], size_t n)
{
	static const char *const fixed[] = {
	    "./",	   "./a.txt",	  "./abs",	     "./big.bin",  "./caf\xc3\xa9.py",
	    "./dirlink",   "./empty",	  "./exec.sh",	     "./long/",	   NULL,
	    NULL,	   "./ro/",	  "./ro/inside",     "./secret",   "./sub/",
	    "./sub/b.txt", "./sub/deep/", "./sub/deep/file", "./sub/link",
	};

	assert_int_equal(n, sizeof(fixed) / sizeof(fixed[0]));
	for (size_t i = 0; i < n; i++)
		if (fixed[i])
			snprintf(names[i], PATH_MAX, "%s", fixed[i]);
	snprintf(names[9], PATH_MAX, "./long/%s/", long_dir());
	snprintf(names[10], PATH_MAX, "./long/%s", long_file());
}

/* No hard-link entries, owners 0 and unnamed, names as expected_names(). */
static void check_entries(const struct fx *fx, const char *name)
{
	static char expected[ENV_ENTRIES][PATH_MAX];
	struct archive *a = archive_read_new();
	struct archive_entry *e;
	char file[PATH_MAX];
	size_t n = 0;

	expected_names(expected, ENV_ENTRIES);
	assert_non_null(a);
	assert_int_equal(archive_read_support_format_tar(a), ARCHIVE_OK);
	assert_int_equal(archive_read_open_filename(a, join(file, fx->tmp, name), 64 * KIB),
			 ARCHIVE_OK);
	while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
		const char *uname = archive_entry_uname(e);

		assert_true(n < ENV_ENTRIES);
		assert_string_equal(archive_entry_pathname(e), expected[n]);
		assert_null(archive_entry_hardlink(e));
		assert_int_equal(archive_entry_uid(e), 0);
		assert_int_equal(archive_entry_gid(e), 0);
		assert_string_equal(uname ? uname : "", "");
		n++;
	}
	assert_int_equal(archive_errno(a), 0);
	assert_int_equal(n, ENV_ENTRIES);
	archive_read_free(a);
}

/* The stream is the same for the same directory, and bytes_out is what the file received. */
static void test_same_directory_same_stream(void **state)
{
	struct fx *fx = *state;
	char path[PATH_MAX];
	char a[PATH_MAX];
	char b[PATH_MAX];
	struct written w1;
	struct written w2;

	make_env(fx);
	in_src(fx, "env", path);
	assert_int_equal(stream_to_file(fx, path, "1.tar", NO_CAP, &w1), 0);
	assert_int_equal(stream_to_file(fx, path, "2.tar", NO_CAP, &w2), 0);
	assert_int_equal(w1.bytes, w2.bytes);
	compare_fds(open(join(a, fx->tmp, "1.tar"), O_RDONLY),
		    open(join(b, fx->tmp, "2.tar"), O_RDONLY));
	check_entries(fx, "1.tar");
	extracted_ok(fx, extract_file(fx, "1.tar"));
	finish_ok(fx);
	compare_with_stage(fx, "env");
}

/* "./" and the two end-of-archive blocks, nothing else. */
static void test_empty_directory(void **state)
{
	struct fx *fx = *state;
	char path[PATH_MAX];
	struct written w;

	make_dir(fx, "empty", 0755);
	assert_int_equal(stream_to_file(fx, in_src(fx, "empty", path), "e.tar", NO_CAP, &w), 0);
	assert_int_equal(w.bytes, 3 * TAR_BLOCK);
	extracted_ok(fx, extract_file(fx, "e.tar"));
	finish_ok(fx);
	assert_int_equal(count_entries(fx->outfd), 0);
	assert_int_equal(fx->stats.dirs, 0);
}

/* `tar -C alias -c .`: the symlink named as the bundle is followed, those inside are not. */
static void test_top_symlink_followed(void **state)
{
	struct fx *fx = *state;
	char path[PATH_MAX];
	struct written w;
	struct stat st;

	make_env(fx);
	make_symlink(fx, "alias", "env");
	extracted_ok(fx, stream_through_pipe(fx, in_src(fx, "alias", path), NO_CAP, &w));
	written_ok(&w);
	finish_ok(fx);
	compare_with_stage(fx, "env");
	assert_int_equal(fstatat(fx->outfd, "dirlink", &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_true(S_ISLNK(st.st_mode));

	fresh_out(fx);
	strcat(path, "/");
	extracted_ok(fx, stream_through_pipe(fx, path, NO_CAP, &w));
	written_ok(&w);
	finish_ok(fx);
	compare_with_stage(fx, "env");
}

/* A refused stream must fail its reader too: libarchive would take a tar that simply stops after
 * an entry for complete. */
static void assert_stream_unusable(struct fx *fx, const char *name)
{
	fresh_out(fx);
	assert_int_equal(extract_file(fx, name), -1);
	assert_non_null(strstr(fx->err, "Damaged tar archive"));
}

static void test_fifo_refused(void **state)
{
	struct fx *fx = *state;
	char path[PATH_MAX];
	struct written w;

	make_env(fx);
	assert_int_equal(mkfifo(in_src(fx, "env/sub/fifo", path), 0600), 0);
	assert_int_equal(stream_to_file(fx, in_src(fx, "env", path), "f.tar", NO_CAP, &w), -1);
	assert_string_equal(w.err, "entry 'sub/fifo': FIFOs are not allowed");
	assert_true(w.bytes > BIG_SIZE); /* what came before it was streamed */
	assert_stream_unusable(fx, "f.tar");
}

static void test_socket_refused(void **state)
{
	struct fx *fx = *state;
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	char path[PATH_MAX];
	struct written w;
	int sock;

	make_dir(fx, "proj", 0755);
	write_text(fx, "proj/a.py", "a = 1\n", 0644);
	in_src(fx, "proj/sock", path);
	if (strlen(path) >= sizeof(addr.sun_path))
		skip(); /* $TMPDIR too long for a socket name */
	memcpy(addr.sun_path, path, strlen(path) + 1);
	sock = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(sock >= 0);
	assert_int_equal(bind(sock, (struct sockaddr *)&addr, sizeof(addr)), 0);
	assert_int_equal(stream_to_file(fx, in_src(fx, "proj", path), "s.tar", NO_CAP, &w), -1);
	assert_string_equal(w.err, "entry 'sock': sockets are not allowed");
	close(sock);
	assert_stream_unusable(fx, "s.tar");
}

static void test_names_in_messages_escaped(void **state)
{
	struct fx *fx = *state;
	char path[PATH_MAX];
	struct written w;

	make_dir(fx, "proj", 0755);
	assert_int_equal(mkfifo(in_src(fx, "proj/bad\nname\\", path), 0600), 0);
	assert_int_equal(stream_to_file(fx, in_src(fx, "proj", path), "n.tar", NO_CAP, &w), -1);
	assert_string_equal(w.err, "entry 'bad\\x0aname\\x5c': FIFOs are not allowed");
}

/* The cap is on the files' data: equal passes, one byte less is refused before the file that
 * would exceed it. */
static void test_cap(void **state)
{
	struct fx *fx = *state;
	size_t data = make_env(fx) + 6;
	char path[PATH_MAX];
	struct written w;

	in_src(fx, "env", path);
	assert_int_equal(stream_to_file(fx, path, "cap.tar", MIB, &w), -1);
	assert_string_equal(w.err, "entry 'big.bin': data size exceeds the limit (1 MiB)");
	assert_true(w.bytes < MIB);
	assert_stream_unusable(fx, "cap.tar");

	assert_int_equal(stream_to_file(fx, path, "cap.tar", data - 1, &w), -1);
	assert_non_null(strstr(w.err, ": data size exceeds the limit ("));
	assert_stream_unusable(fx, "cap.tar");

	fresh_out(fx);
	assert_int_equal(stream_to_file(fx, path, "cap.tar", data, &w), 0);
	extracted_ok(fx, extract_file(fx, "cap.tar"));
	finish_ok(fx);
	compare_with_stage(fx, "env");
}

/* SIGPIPE is ignored (main): the writer sees EPIPE and says so. */
static void test_reader_gone_at_once(void **state)
{
	struct fx *fx = *state;
	char path[PATH_MAX];
	char err[512];
	uint64_t bytes = 1;
	int p[2];

	make_env(fx);
	assert_int_equal(pipe(p), 0);
	close(p[0]);
	assert_int_equal(pl_tar_stream_directory(in_src(fx, "env", path), p[1], NO_CAP, &bytes, err,
						 sizeof(err)),
			 -1);
	assert_string_equal(err, "cannot write the stream: Broken pipe");
	assert_int_equal(bytes, 0);
	close(p[1]);
}

static void test_reader_gone_midway(void **state)
{
	struct fx *fx = *state;
	char path[PATH_MAX];
	char buf[4 * KIB];
	struct written w;
	int resfd;
	int rfd;
	pid_t pid;

	make_env(fx);
	pid = spawn_writer(in_src(fx, "env", path), NO_CAP, &rfd, &resfd);
	for (size_t got = 0; got < sizeof(buf);) {
		ssize_t n = read(rfd, buf + got, sizeof(buf) - got);

		assert_true(n > 0);
		got += (size_t)n;
	}
	close(rfd);
	collect_writer(pid, resfd, &w);
	assert_int_equal(w.rc, -1);
	assert_string_equal(w.err, "cannot write the stream: Broken pipe");
	assert_true(w.bytes >= sizeof(buf) && w.bytes < BIG_SIZE);
}

static void test_not_a_directory(void **state)
{
	struct fx *fx = *state;
	char path[PATH_MAX];
	struct written w;

	assert_int_equal(stream_to_file(fx, in_src(fx, "nothing", path), "x.tar", NO_CAP, &w), -1);
	assert_string_equal(w.err, "cannot read the directory: No such file or directory");
	assert_int_equal(w.bytes, 0);
	write_text(fx, "plain", "not a directory\n", 0644);
	assert_int_equal(stream_to_file(fx, in_src(fx, "plain", path), "x.tar", NO_CAP, &w), -1);
	assert_string_equal(w.err, "not a directory");
	assert_int_equal(w.bytes, 0);
	assert_int_equal(mkfifo(in_src(fx, "fifo", path), 0600), 0);
	assert_int_equal(stream_to_file(fx, path, "x.tar", NO_CAP, &w), -1);
	assert_string_equal(w.err, "not a directory");
}

/* One descriptor is held per level: nesting is bounded, and the limit itself still passes. */
static void test_nesting_limit(void **state)
{
	struct fx *fx = *state;
	char path[PATH_MAX];
	struct written w;
	int fd;

	make_dir(fx, "deep", 0755);
	fd = open(in_src(fx, "deep", path), O_RDONLY | O_DIRECTORY);
	for (int i = 0; i < PL_TAR_STREAM_MAX_DEPTH; i++) {
		int next;

		assert_int_equal(mkdirat(fd, "d", 0755), 0);
		next = openat(fd, "d", O_RDONLY | O_DIRECTORY);
		assert_true(next >= 0);
		close(fd);
		fd = next;
	}
	assert_int_equal(stream_to_file(fx, path, "d.tar", NO_CAP, &w), 0);
	assert_int_equal(mkdirat(fd, "d", 0755), 0);
	close(fd);
	assert_int_equal(stream_to_file(fx, path, "d.tar", NO_CAP, &w), -1);
	assert_non_null(strstr(w.err, "/d/d/d"));
	assert_non_null(strstr(w.err, "': directories nested more than 512 deep"));
	assert_stream_unusable(fx, "d.tar");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	    T(test_tree_through_pipe),
	    T(test_same_directory_same_stream),
	    T(test_empty_directory),
	    T(test_top_symlink_followed),
	    T(test_fifo_refused),
	    T(test_socket_refused),
	    T(test_names_in_messages_escaped),
	    T(test_cap),
	    T(test_reader_gone_at_once),
	    T(test_reader_gone_midway),
	    T(test_not_a_directory),
	    T(test_nesting_limit),
#undef T
	};

	/* As the plugin's writer child does: a reader that leaves is an error, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
