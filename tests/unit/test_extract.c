/* Unit tests of src/stage/extract*.c: bundles written here with libarchive's write API, extracted
 * into a scratch stage directory, and the resulting tree (or the refusal) checked. */
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
#include <grp.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "extract.h"
#include "scratch_dir.h"

#define T0 1700000000
#define KIB 1024
#define MIB (1024 * 1024)
#define NOBODY 65534
#define NOT_AN_ARCHIVE                                                                             \
	"not an archive libarchive can read (tar, tar.gz/.zst/.xz/.bz2/.lz4, zip): "               \
	"Unrecognized archive format"

/* One archive entry as a test describes it; a zero field means the obvious default. */
struct ent {
	int type; /* AE_IF*; ignored when hardlink is set */
	const char *path;
	mode_t perm;
	const char *data; /* a file's contents, a symlink's target */
	const char *hardlink;
	time_t mtime;
	long nsec;
	int64_t zeros;	   /* a file of that many zero bytes instead of data */
	bool size_unknown; /* no size in the header (zip: in the data descriptor only) */
};

enum format { PAX, GNUTAR, USTAR, ZIP, CPIO, SEVENZIP };

struct fx {
	char arc[PATH_MAX];   /* archives and source directories */
	char out[PATH_MAX];   /* the stage directory */
	char aside[PATH_MAX]; /* outside the stage: what escapes would reach */
	int outfd;
	struct pl_extract_limits lim;
	struct pl_extract_stats stats;
	char err[512];
};

static char zero_block[MIB];

/* ------------------------------------------------------------ scratch directories */

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	make_temp_dir(fx->arc, "pl-extract", "arc");
	make_temp_dir(fx->out, "pl-extract", "out");
	make_temp_dir(fx->aside, "pl-extract", "aside");
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
	remove_tree(fx->arc);
	remove_tree(fx->out);
	remove_tree(fx->aside);
	free(fx);
	return 0;
}

/* A new, empty stage directory (the previous one is finished and final). */
static void fresh_out(struct fx *fx)
{
	close(fx->outfd);
	remove_tree(fx->out);
	assert_int_equal(mkdir(fx->out, 0700), 0);
	fx->outfd = open(fx->out, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fx->outfd >= 0);
	memset(&fx->stats, 0, sizeof(fx->stats));
}

static const char *in_arc(const struct fx *fx, const char *name, char *buf)
{
	return join(buf, fx->arc, name);
}

/* ------------------------------------------------------------ writing archives */

static void set_format(struct archive *w, enum format format)
{
	switch (format) {
	case PAX:
		assert_int_equal(archive_write_set_format_pax(w), ARCHIVE_OK);
		break;
	case GNUTAR:
		assert_int_equal(archive_write_set_format_gnutar(w), ARCHIVE_OK);
		break;
	case USTAR:
		assert_int_equal(archive_write_set_format_ustar(w), ARCHIVE_OK);
		break;
	case ZIP:
		assert_int_equal(archive_write_set_format_zip(w), ARCHIVE_OK);
		break;
	case CPIO:
		assert_int_equal(archive_write_set_format_cpio_newc(w), ARCHIVE_OK);
		break;
	case SEVENZIP:
		assert_int_equal(archive_write_set_format_7zip(w), ARCHIVE_OK);
		break;
	}
}

static int64_t entry_size(const struct ent *x)
{
	if (x->hardlink || x->type != AE_IFREG)
		return 0;
	return x->zeros ? x->zeros : (int64_t)strlen(x->data ? x->data : "");
}

static void write_entry_data(struct archive *w, const struct ent *x)
{
	int64_t left = x->zeros;

	if (x->type != AE_IFREG || x->hardlink)
		return;
	if (x->data && *x->data)
		assert_int_equal(archive_write_data(w, x->data, strlen(x->data)),
				 (la_ssize_t)strlen(x->data));
	while (left > 0) {
		size_t n = left < MIB ? (size_t)left : MIB;

		assert_int_equal(archive_write_data(w, zero_block, n), (la_ssize_t)n);
		left -= (int64_t)n;
	}
}

/* Owners in the archive are someone else's: extraction must ignore them. */
static void add_entry(struct archive *w, const struct ent *x)
{
	struct archive_entry *e = archive_entry_new();

	assert_non_null(e);
	archive_entry_set_pathname(e, x->path);
	archive_entry_set_filetype(e, x->hardlink ? AE_IFREG : (unsigned)x->type);
	archive_entry_set_perm(e, x->perm ? x->perm : 0644);
	archive_entry_set_uid(e, 4242);
	archive_entry_set_gid(e, 4242);
	archive_entry_set_uname(e, "someone");
	archive_entry_set_mtime(e, x->mtime ? x->mtime : T0, x->nsec);
	if (x->hardlink)
		archive_entry_set_hardlink(e, x->hardlink);
	if (x->type == AE_IFLNK && !x->hardlink)
		archive_entry_set_symlink(e, x->data);
	if (x->type == AE_IFCHR || x->type == AE_IFBLK)
		archive_entry_set_rdev(e, makedev(8, 0));
	if (!x->size_unknown)
		archive_entry_set_size(e, entry_size(x));
	assert_int_equal(archive_write_header(w, e), ARCHIVE_OK);
	write_entry_data(w, x);
	archive_entry_free(e);
}

static void write_archive(const struct fx *fx, const char *name, enum format format, int filter,
			  const struct ent *ents)
{
	struct archive *w = archive_write_new();
	char path[PATH_MAX];

	assert_non_null(w);
	set_format(w, format);
	if (filter != ARCHIVE_FILTER_NONE)
		assert_int_equal(archive_write_add_filter(w, filter), ARCHIVE_OK);
	assert_int_equal(archive_write_open_filename(w, in_arc(fx, name, path)), ARCHIVE_OK);
	for (const struct ent *x = ents; x->path; x++)
		add_entry(w, x);
	assert_int_equal(archive_write_close(w), ARCHIVE_OK);
	archive_write_free(w);
}

static void write_text(const struct fx *fx, const char *name, const char *text)
{
	char path[PATH_MAX];
	FILE *f = fopen(in_arc(fx, name, path), "w");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

/* A ustar header written by hand, for what libarchive's writer would not produce. */
static void write_raw_tar(const struct fx *fx, const char *name, const char *entry,
			  const char *size_field, size_t size_len)
{
	char header[512] = {0};
	char end[1024] = {0};
	char path[PATH_MAX];
	unsigned sum = 0;
	FILE *f;

	snprintf(header, 100, "%s", entry);
	memcpy(header + 100, "0000644", 7);
	memcpy(header + 108, "0000000", 7);
	memcpy(header + 116, "0000000", 7);
	memcpy(header + 124, size_field, size_len);
	memcpy(header + 136, "14524770400", 11);
	memset(header + 148, ' ', 8);
	header[156] = '0';
	memcpy(header + 257, "ustar", 6);
	memcpy(header + 263, "00", 2);
	for (size_t i = 0; i < sizeof(header); i++)
		sum += (unsigned char)header[i];
	snprintf(header + 148, 8, "%06o", sum);
	header[155] = ' ';
	f = fopen(in_arc(fx, name, path), "w");
	assert_non_null(f);
	assert_int_equal(fwrite(header, 1, sizeof(header), f), sizeof(header));
	assert_int_equal(fwrite(end, 1, sizeof(end), f), sizeof(end));
	assert_int_equal(fclose(f), 0);
}

static bool contains(const struct fx *fx, const char *name, const char *bytes, size_t len)
{
	static char buf[4 * MIB];
	char path[PATH_MAX];
	FILE *f = fopen(in_arc(fx, name, path), "r");
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	return memmem(buf, n, bytes, len) != NULL;
}

/* ------------------------------------------------------------ extracting */

static int extract(struct fx *fx, const char *name)
{
	char path[PATH_MAX];

	fx->err[0] = '\0';
	return pl_extract_archive_file(in_arc(fx, name, path), fx->outfd, &fx->lim, &fx->stats,
				       fx->err, sizeof(fx->err));
}

static void extract_ok(struct fx *fx, const char *name)
{
	int rc = extract(fx, name);

	if (rc != 0)
		print_message("extract %s: %s\n", name, fx->err);
	assert_int_equal(rc, 0);
}

static void finish_ok(struct fx *fx)
{
	int rc = pl_extract_finish(fx->outfd, fx->err, sizeof(fx->err));

	if (rc != 0)
		print_message("finish: %s\n", fx->err);
	assert_int_equal(rc, 0);
}

static void assert_refused(struct fx *fx, const char *name, const char *message)
{
	assert_int_equal(extract(fx, name), -1);
	assert_string_equal(fx->err, message);
}

/* The archive's data go through a pipe, as the tree fan-out will feed them. */
static int extract_through_pipe(struct fx *fx, const char *name)
{
	char path[PATH_MAX];
	int pipefd[2];
	int status;
	pid_t pid;
	int rc;

	assert_int_equal(pipe(pipefd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char buf[64 * KIB];
		int fd = open(in_arc(fx, name, path), O_RDONLY);
		ssize_t n;

		close(pipefd[0]);
		while (fd >= 0 && (n = read(fd, buf, sizeof(buf))) > 0)
			if (write(pipefd[1], buf, (size_t)n) != n)
				break;
		_exit(0);
	}
	close(pipefd[1]);
	fx->err[0] = '\0';
	rc = pl_extract_archive_fd(pipefd[0], fx->outfd, &fx->lim, &fx->stats, fx->err,
				   sizeof(fx->err));
	close(pipefd[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return rc;
}

/* ------------------------------------------------------------ checking the tree */

static void assert_file(const struct fx *fx, const char *rel, const char *content, mode_t mode)
{
	char buf[4096];
	struct stat st;
	ssize_t n;
	int fd = openat(fx->outfd, rel, O_RDONLY | O_NOFOLLOW);

	if (fd < 0)
		print_message("%s: %s\n", rel, strerror(errno));
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, mode);
	assert_int_equal(st.st_uid, geteuid());
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_true(n >= 0);
	buf[n] = '\0';
	assert_string_equal(buf, content);
}

static void assert_symlink(const struct fx *fx, const char *rel, const char *target)
{
	char buf[PATH_MAX];
	ssize_t n = readlinkat(fx->outfd, rel, buf, sizeof(buf) - 1);

	if (n < 0)
		print_message("%s: %s\n", rel, strerror(errno));
	assert_true(n >= 0);
	buf[n] = '\0';
	assert_string_equal(buf, target);
}

static struct stat lstat_at(const struct fx *fx, const char *rel)
{
	struct stat st;

	if (fstatat(fx->outfd, rel, &st, AT_SYMLINK_NOFOLLOW) < 0)
		print_message("%s: %s\n", rel, strerror(errno));
	assert_int_equal(fstatat(fx->outfd, rel, &st, AT_SYMLINK_NOFOLLOW), 0);
	return st;
}

static void assert_dir(const struct fx *fx, const char *rel, mode_t mode)
{
	struct stat st = lstat_at(fx, rel);

	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, mode);
}

static void assert_mtime(const struct fx *fx, const char *rel, time_t sec, long nsec)
{
	struct stat st = lstat_at(fx, rel);

	assert_int_equal(st.st_mtim.tv_sec, sec);
	assert_int_equal(st.st_mtim.tv_nsec, nsec);
}

static void assert_absent(const struct fx *fx, const char *rel)
{
	struct stat st;

	assert_int_equal(fstatat(fx->outfd, rel, &st, AT_SYMLINK_NOFOLLOW), -1);
	assert_int_equal(errno, ENOENT);
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* ------------------------------------------------------------ a conda-like environment */

static const struct ent conda_tree[] = {
    {.type = AE_IFDIR, .path = "./", .perm = 0755},
    {.type = AE_IFDIR, .path = "./bin/", .perm = 0755, .mtime = T0 + 10},
    {.type = AE_IFREG,
     .path = "./bin/python3.11",
     .perm = 0755,
     .data = "\177ELF interpreter",
     .mtime = T0 + 2,
     .nsec = 123456789},
    {.type = AE_IFLNK, .path = "./bin/python", .perm = 0777, .data = "python3.11"},
    {.type = AE_IFDIR, .path = "./lib/", .perm = 0755, .mtime = T0 + 20},
    {.type = AE_IFLNK,
     .path = "./lib/libssl.so",
     .perm = 0777,
     .data = "/opt/conda/lib/libssl.so.3"},
    {.type = AE_IFREG, .path = "./lib/libpython3.11.so.1.0", .perm = 0555, .data = "\177ELF lib"},
    {.type = AE_IFDIR, .path = "./lib/python3.11/", .perm = 0755, .mtime = T0 + 30},
    {.type = AE_IFREG, .path = "./lib/python3.11/os.py", .data = "import abc\n", .mtime = T0 + 4},
    {.type = AE_IFDIR, .path = "./lib/python3.11/__pycache__/", .perm = 0755},
    {.type = AE_IFREG,
     .path = "./lib/python3.11/__pycache__/os.cpython-311.pyc",
     .data = "pyc",
     .mtime = T0 + 5},
    /* No directory entries for these: their parents are made on the way. */
    {.type = AE_IFREG,
     .path = "lib/python3.11/site-packages/numpy/__init__.py",
     .data = "version = '1.26'\n"},
    {.type = AE_IFDIR, .path = "./share/ro/", .perm = 0555, .mtime = T0 + 40},
    {.type = AE_IFREG, .path = "./share/ro/data.txt", .perm = 0444, .data = "read only"},
    {.path = NULL},
};

static void check_conda_tree(const struct fx *fx, bool keeps_nsec)
{
	assert_file(fx, "bin/python3.11", "\177ELF interpreter", 0755);
	assert_mtime(fx, "bin/python3.11", T0 + 2, keeps_nsec ? 123456789 : 0);
	assert_symlink(fx, "bin/python", "python3.11");
	assert_symlink(fx, "lib/libssl.so", "/opt/conda/lib/libssl.so.3");
	assert_file(fx, "lib/libpython3.11.so.1.0", "\177ELF lib", 0555);
	assert_file(fx, "lib/python3.11/os.py", "import abc\n", 0644);
	assert_mtime(fx, "lib/python3.11/os.py", T0 + 4, 0);
	assert_file(fx, "lib/python3.11/__pycache__/os.cpython-311.pyc", "pyc", 0644);
	assert_mtime(fx, "lib/python3.11/__pycache__/os.cpython-311.pyc", T0 + 5, 0);
	assert_file(fx, "lib/python3.11/site-packages/numpy/__init__.py", "version = '1.26'\n",
		    0644);
	assert_file(fx, "share/ro/data.txt", "read only", 0444);
	/* Directory modes and mtimes: applied by pl_extract_finish. */
	assert_dir(fx, "bin", 0755);
	assert_mtime(fx, "bin", T0 + 10, 0);
	assert_dir(fx, "lib/python3.11", 0755);
	assert_mtime(fx, "lib/python3.11", T0 + 30, 0);
	assert_mtime(fx, "lib", T0 + 20, 0);
	assert_dir(fx, "share/ro", 0555);
	assert_mtime(fx, "share/ro", T0 + 40, 0);
	/* Parents made on the way stay 0700; the stage directory keeps its own mode. */
	assert_dir(fx, "lib/python3.11/site-packages", 0700);
	assert_dir(fx, ".", 0700);
}

static void check_conda_stats(const struct fx *fx)
{
	assert_int_equal(fx->stats.files, 6);
	assert_int_equal(fx->stats.dirs, 5);
	assert_int_equal(fx->stats.symlinks, 2);
	assert_int_equal(fx->stats.hardlinks, 0);
	assert_int_equal(fx->stats.setid_stripped, 0);
	assert_int_equal(fx->stats.bytes, 16 + 8 + 11 + 3 + 17 + 9);
}

static void test_every_compression(void **state)
{
	static const int filters[] = {ARCHIVE_FILTER_NONE,  ARCHIVE_FILTER_GZIP,
				      ARCHIVE_FILTER_BZIP2, ARCHIVE_FILTER_XZ,
				      ARCHIVE_FILTER_ZSTD,  ARCHIVE_FILTER_LZ4};
	struct fx *fx = *state;

	for (size_t i = 0; i < sizeof(filters) / sizeof(filters[0]); i++) {
		print_message("filter %d\n", filters[i]);
		fresh_out(fx);
		write_archive(fx, "env.tar.x", PAX, filters[i], conda_tree);
		extract_ok(fx, "env.tar.x");
		finish_ok(fx);
		check_conda_tree(fx, true);
		check_conda_stats(fx);
	}
}

static void test_gnutar_and_ustar(void **state)
{
	struct fx *fx = *state;

	write_archive(fx, "gnu.tar", GNUTAR, ARCHIVE_FILTER_GZIP, conda_tree);
	extract_ok(fx, "gnu.tar");
	finish_ok(fx);
	check_conda_tree(fx, false);
	fresh_out(fx);
	write_archive(fx, "ustar.tar", USTAR, ARCHIVE_FILTER_NONE, conda_tree);
	extract_ok(fx, "ustar.tar");
	finish_ok(fx);
	check_conda_tree(fx, false);
}

/* A zip read from a file: the central directory gives modes and symlinks. */
static void test_zip_with_data_descriptors(void **state)
{
	struct fx *fx = *state;
	char path[PATH_MAX];
	unsigned char head[4];
	FILE *f;

	write_archive(fx, "env.zip", ZIP, ARCHIVE_FILTER_NONE, conda_tree);
	f = fopen(in_arc(fx, "env.zip", path), "r");
	assert_non_null(f);
	assert_int_equal(fread(head, 1, sizeof(head), f), sizeof(head));
	fclose(f);
	assert_memory_equal(head, "PK\3\4", 4);
	assert_true(contains(fx, "env.zip", "PK\7\10", 4)); /* a data descriptor */
	extract_ok(fx, "env.zip");
	finish_ok(fx);
	check_conda_tree(fx, false);
	check_conda_stats(fx);
}

/* Through a pipe there is no central directory: the contents arrive, modes and links do not. */
static void test_zip_through_pipe(void **state)
{
	static const struct ent zip[] = {
	    {.type = AE_IFREG, .path = "pkg/a.py", .data = "a = 1\n", .size_unknown = true},
	    {.type = AE_IFREG, .path = "pkg/b.py", .data = "b = 2\n"},
	    {.path = NULL},
	};
	struct fx *fx = *state;

	write_archive(fx, "s.zip", ZIP, ARCHIVE_FILTER_NONE, zip);
	assert_int_equal(extract_through_pipe(fx, "s.zip"), 0);
	finish_ok(fx);
	assert_int_equal(fx->stats.files, 2);
	assert_int_equal(lstat_at(fx, "pkg/a.py").st_size, 6);
	assert_int_equal(lstat_at(fx, "pkg/b.py").st_size, 6);
}

static void test_tar_through_pipe(void **state)
{
	struct fx *fx = *state;

	write_archive(fx, "env.tar.zst", PAX, ARCHIVE_FILTER_ZSTD, conda_tree);
	assert_int_equal(extract_through_pipe(fx, "env.tar.zst"), 0);
	finish_ok(fx);
	check_conda_tree(fx, true);
}

static void test_long_names(void **state)
{
	static const enum format formats[] = {PAX, GNUTAR};
	struct fx *fx = *state;
	char comp[201];
	char dir[700];
	char file[800];
	char target[400];

	memset(comp, 'c', 200);
	comp[200] = '\0';
	snprintf(dir, sizeof(dir), "%s/%s/%s", comp, comp, comp);
	snprintf(file, sizeof(file), "%s/module.py", dir);
	memset(target, 't', 300);
	target[300] = '\0';
	for (size_t i = 0; i < 2; i++) {
		struct ent ents[] = {
		    {.type = AE_IFREG, .path = file, .data = "long\n"},
		    {.type = AE_IFLNK, .path = "longlink", .data = target},
		    {.path = NULL},
		};

		write_archive(fx, "long.tar", formats[i], ARCHIVE_FILTER_NONE, ents);
		extract_ok(fx, "long.tar");
		finish_ok(fx);
		assert_file(fx, file, "long\n", 0644);
		assert_symlink(fx, "longlink", target);
		fresh_out(fx);
	}
}

static void test_dot_components_and_slashes(void **state)
{
	static const struct ent ents[] = {
	    {.type = AE_IFREG, .path = "./a//b/./c.txt", .data = "c"},
	    {.type = AE_IFDIR, .path = ".", .perm = 0777},
	    {.type = AE_IFREG, .path = "./d", .data = "d"},
	    {.path = NULL},
	};
	struct fx *fx = *state;

	write_archive(fx, "dots.tar", PAX, ARCHIVE_FILTER_NONE, ents);
	extract_ok(fx, "dots.tar");
	finish_ok(fx);
	assert_file(fx, "a/b/c.txt", "c", 0644);
	assert_file(fx, "d", "d", 0644);
	assert_dir(fx, ".", 0700);
	assert_int_equal(count_entries(fx->out), 2);
}

static void test_empty_archive(void **state)
{
	static const struct ent none[] = {{.path = NULL}};
	struct fx *fx = *state;
	char path[PATH_MAX];

	write_archive(fx, "empty.tar.gz", PAX, ARCHIVE_FILTER_GZIP, none);
	assert_int_equal(
	    pl_archive_probe(in_arc(fx, "empty.tar.gz", path), fx->err, sizeof(fx->err)), 0);
	extract_ok(fx, "empty.tar.gz");
	finish_ok(fx);
	assert_int_equal(count_entries(fx->out), 0);
	assert_int_equal(fx->stats.files + fx->stats.dirs + fx->stats.bytes, 0);
}

/* A sparse entry: data at its offset, holes neither written nor counted. */
static void test_sparse_entry(void **state)
{
	struct fx *fx = *state;
	struct archive *w = archive_write_new();
	struct archive_entry *e = archive_entry_new();
	char path[PATH_MAX];
	char buf[4 * KIB];
	struct stat st;
	int fd;

	archive_write_set_format_pax(w);
	assert_int_equal(archive_write_open_filename(w, in_arc(fx, "sparse.tar", path)),
			 ARCHIVE_OK);
	archive_entry_set_pathname(e, "sparse.bin");
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_size(e, 3 * MIB);
	archive_entry_sparse_add_entry(e, MIB, sizeof(buf));
	assert_int_equal(archive_write_header(w, e), ARCHIVE_OK);
	/* The writer takes the whole file's contents and keeps the data regions. */
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(archive_write_data(w, zero_block, MIB), MIB);
	assert_int_equal(archive_write_data(w, buf, sizeof(buf)), sizeof(buf));
	archive_entry_free(e);
	archive_write_close(w);
	archive_write_free(w);

	extract_ok(fx, "sparse.tar");
	finish_ok(fx);
	assert_int_equal(fx->stats.bytes, sizeof(buf));
	st = lstat_at(fx, "sparse.bin");
	assert_int_equal(st.st_size, 3 * MIB);
	fd = openat(fx->outfd, "sparse.bin", O_RDONLY);
	assert_int_equal(pread(fd, buf, sizeof(buf), MIB), sizeof(buf));
	assert_int_equal(buf[0], 'x');
	assert_int_equal(buf[sizeof(buf) - 1], 'x');
	assert_int_equal(pread(fd, buf, 1, 0), 1);
	assert_int_equal(buf[0], '\0');
	close(fd);
}

/* ------------------------------------------------------------ layers */

static void test_layers_overwrite_files_and_merge_dirs(void **state)
{
	static const struct ent layer1[] = {
	    {.type = AE_IFDIR, .path = "lib/", .perm = 0755, .mtime = T0 + 1},
	    {.type = AE_IFREG, .path = "bin/python", .perm = 0755, .data = "v1"},
	    {.type = AE_IFREG, .path = "lib/a.py", .perm = 0444, .data = "a1"},
	    {.type = AE_IFREG, .path = "lib/b.py", .data = "b1"},
	    {.type = AE_IFLNK, .path = "link", .data = "lib/a.py"},
	    {.type = AE_IFREG, .path = "shared.txt", .data = "shared"},
	    {.hardlink = "shared.txt", .path = "alias.txt"},
	    {.path = NULL},
	};
	static const struct ent layer2[] = {
	    {.type = AE_IFDIR, .path = "lib/", .perm = 0750, .mtime = T0 + 2},
	    {.type = AE_IFREG, .path = "lib/a.py", .perm = 0600, .data = "a2, longer"},
	    {.type = AE_IFLNK, .path = "lib/b.py", .data = "a.py"},
	    {.type = AE_IFREG, .path = "lib/c.py", .data = "c2"},
	    {.type = AE_IFREG, .path = "link", .data = "now a file"},
	    {.type = AE_IFREG, .path = "alias.txt", .data = "replaced"},
	    {.path = NULL},
	};
	struct fx *fx = *state;

	write_archive(fx, "l1.tar.gz", PAX, ARCHIVE_FILTER_GZIP, layer1);
	write_archive(fx, "l2.tar.zst", PAX, ARCHIVE_FILTER_ZSTD, layer2);
	extract_ok(fx, "l1.tar.gz");
	extract_ok(fx, "l2.tar.zst");
	finish_ok(fx);
	assert_file(fx, "bin/python", "v1", 0755);
	assert_file(fx, "lib/a.py", "a2, longer", 0600);
	assert_symlink(fx, "lib/b.py", "a.py");
	assert_file(fx, "lib/c.py", "c2", 0644);
	assert_file(fx, "link", "now a file", 0644);
	/* Replacing one name of a hard-linked pair leaves the other alone. */
	assert_file(fx, "alias.txt", "replaced", 0644);
	assert_file(fx, "shared.txt", "shared", 0644);
	/* The later layer's directory entry wins. */
	assert_dir(fx, "lib", 0750);
	assert_mtime(fx, "lib", T0 + 2, 0);
	assert_int_equal(fx->stats.files, 4 + 4);
	assert_int_equal(fx->stats.dirs, 2);
}

static void test_file_over_directory_refused(void **state)
{
	static const struct ent layer1[] = {
	    {.type = AE_IFREG, .path = "d/x", .data = "x"},
	    {.type = AE_IFREG, .path = "f", .data = "f"},
	    {.type = AE_IFLNK, .path = "s", .data = "f"},
	    {.path = NULL},
	};
	static const struct ent file_over_dir[] = {{.type = AE_IFREG, .path = "d", .data = "?"},
						   {.path = NULL}};
	static const struct ent link_over_dir[] = {{.type = AE_IFLNK, .path = "d", .data = "f"},
						   {.path = NULL}};
	static const struct ent dir_over_file[] = {{.type = AE_IFDIR, .path = "f/"},
						   {.path = NULL}};
	static const struct ent dir_over_link[] = {{.type = AE_IFDIR, .path = "s"}, {.path = NULL}};
	struct fx *fx = *state;

	write_archive(fx, "l1.tar", PAX, ARCHIVE_FILTER_NONE, layer1);
	write_archive(fx, "fd.tar", PAX, ARCHIVE_FILTER_NONE, file_over_dir);
	write_archive(fx, "ld.tar", PAX, ARCHIVE_FILTER_NONE, link_over_dir);
	write_archive(fx, "df.tar", PAX, ARCHIVE_FILTER_NONE, dir_over_file);
	write_archive(fx, "dl.tar", PAX, ARCHIVE_FILTER_NONE, dir_over_link);
	extract_ok(fx, "l1.tar");
	assert_refused(fx, "fd.tar",
		       "entry 'd': a directory of that name exists, a file cannot replace it");
	assert_refused(fx, "ld.tar",
		       "entry 'd': a directory of that name exists, a symlink cannot replace it");
	assert_refused(fx, "df.tar",
		       "entry 'f/': a file of that name exists, a directory cannot replace it");
	assert_refused(fx, "dl.tar",
		       "entry 's/': a symlink of that name exists, a directory cannot replace it");
	assert_file(fx, "d/x", "x", 0644);
	assert_file(fx, "f", "f", 0644);
	assert_symlink(fx, "s", "f");
}

/* ------------------------------------------------------------ refusals */

static void refuse_one(struct fx *fx, const struct ent *ent, const char *message)
{
	const struct ent ents[] = {*ent, {.path = NULL}};

	write_archive(fx, "bad.tar", PAX, ARCHIVE_FILTER_NONE, ents);
	assert_refused(fx, "bad.tar", message);
}

static void test_paths_outside_refused(void **state)
{
	struct fx *fx = *state;
	const struct ent abs = {.type = AE_IFREG, .path = "/etc/passwd", .data = "x"};
	const struct ent up = {.type = AE_IFREG, .path = "../etc/passwd", .data = "x"};
	const struct ent mid = {.type = AE_IFREG, .path = "a/../../x", .data = "x"};
	const struct ent tail = {.type = AE_IFDIR, .path = "a/.."};

	refuse_one(fx, &abs, "entry '/etc/passwd': absolute paths are not allowed");
	refuse_one(fx, &up, "entry '../etc/passwd': path leaves the bundle");
	refuse_one(fx, &mid, "entry 'a/../../x': path leaves the bundle");
	refuse_one(fx, &tail, "entry 'a/../': path leaves the bundle");
	assert_int_equal(count_entries(fx->out), 0);
}

static void test_empty_name_refused(void **state)
{
	struct fx *fx = *state;

	write_raw_tar(fx, "empty-name.tar", "", "00000000000", 11);
	assert_refused(fx, "empty-name.tar", "entry '': empty name");
}

static void test_top_as_file_refused(void **state)
{
	struct fx *fx = *state;
	const struct ent top = {.type = AE_IFREG, .path = ".", .data = "x"};

	refuse_one(fx, &top, "entry '.': names the top of the bundle but is not a directory");
}

static void test_special_files_refused(void **state)
{
	struct fx *fx = *state;
	const struct ent chr = {.type = AE_IFCHR, .path = "dev/sda"};
	const struct ent blk = {.type = AE_IFBLK, .path = "dev/loop0"};
	const struct ent fifo = {.type = AE_IFIFO, .path = "run/fifo"};

	refuse_one(fx, &chr, "entry 'dev/sda': device nodes are not allowed");
	refuse_one(fx, &blk, "entry 'dev/loop0': device nodes are not allowed");
	refuse_one(fx, &fifo, "entry 'run/fifo': FIFOs are not allowed");
	assert_int_equal(count_entries(fx->out), 0);
}

static void test_path_through_symlink_refused(void **state)
{
	struct fx *fx = *state;
	const struct ent same_layer[] = {
	    {.type = AE_IFLNK, .path = "lib/x", .data = fx->aside},
	    {.type = AE_IFREG, .path = "lib/x/y.py", .data = "evil"},
	    {.path = NULL},
	};
	const struct ent relative[] = {
	    {.type = AE_IFLNK, .path = "up", .data = ".."},
	    {.type = AE_IFDIR, .path = "up/escape/"},
	    {.path = NULL},
	};
	const struct ent through_file[] = {
	    {.type = AE_IFREG, .path = "f", .data = "f"},
	    {.type = AE_IFREG, .path = "f/g", .data = "g"},
	    {.path = NULL},
	};

	write_archive(fx, "same.tar", PAX, ARCHIVE_FILTER_NONE, same_layer);
	assert_refused(fx, "same.tar",
		       "entry 'lib/x/y.py': path passes through the symlink 'lib/x'");
	write_archive(fx, "rel.tar", PAX, ARCHIVE_FILTER_NONE, relative);
	assert_refused(fx, "rel.tar", "entry 'up/escape/': path passes through the symlink 'up'");
	write_archive(fx, "file.tar", PAX, ARCHIVE_FILTER_NONE, through_file);
	assert_refused(fx, "file.tar",
		       "entry 'f/g': path passes through 'f', which is not a directory");
	assert_int_equal(count_entries(fx->aside), 0);
}

/* Layer 1 plants the link, layer 2 tries to write through it. */
static void test_symlink_from_earlier_layer_refused(void **state)
{
	struct fx *fx = *state;
	const struct ent layer1[] = {{.type = AE_IFLNK, .path = "link", .data = fx->aside},
				     {.path = NULL}};
	const struct ent layer2[] = {{.type = AE_IFREG, .path = "link/evil", .data = "evil"},
				     {.path = NULL}};
	const struct ent layer2_deep[] = {
	    {.type = AE_IFREG, .path = "./link/a/b/evil", .data = "e"}, {.path = NULL}};

	write_archive(fx, "l1.tar", PAX, ARCHIVE_FILTER_NONE, layer1);
	write_archive(fx, "l2.zip", ZIP, ARCHIVE_FILTER_NONE, layer2);
	write_archive(fx, "l2deep.tar", PAX, ARCHIVE_FILTER_NONE, layer2_deep);
	extract_ok(fx, "l1.tar");
	assert_refused(fx, "l2.zip", "entry 'link/evil': path passes through the symlink 'link'");
	assert_refused(fx, "l2deep.tar",
		       "entry './link/a/b/evil': path passes through the symlink 'link'");
	assert_int_equal(count_entries(fx->aside), 0);
	assert_symlink(fx, "link", fx->aside);
}

static void test_hardlink_to_earlier_entry(void **state)
{
	static const struct ent ents[] = {
	    {.type = AE_IFREG, .path = "lib/a.so", .perm = 0755, .data = "shared"},
	    {.hardlink = "lib/a.so", .path = "lib/b.so"},
	    {.hardlink = "./lib/a.so", .path = "c.so"},
	    {.hardlink = "lib/a.so", .path = "lib/a.so"}, /* `tar -c f f` */
	    {.path = NULL},
	};
	struct fx *fx = *state;
	struct stat a;
	struct stat b;
	struct stat c;

	write_archive(fx, "links.tar", PAX, ARCHIVE_FILTER_NONE, ents);
	extract_ok(fx, "links.tar");
	finish_ok(fx);
	a = lstat_at(fx, "lib/a.so");
	b = lstat_at(fx, "lib/b.so");
	c = lstat_at(fx, "c.so");
	assert_int_equal(a.st_ino, b.st_ino);
	assert_int_equal(a.st_ino, c.st_ino);
	assert_int_equal(a.st_nlink, 3);
	assert_file(fx, "c.so", "shared", 0755);
	assert_int_equal(fx->stats.hardlinks, 2);
	assert_int_equal(fx->stats.files, 1);
}

static void test_bad_hardlinks_refused(void **state)
{
	struct fx *fx = *state;
	const struct ent layer1[] = {
	    {.type = AE_IFLNK, .path = "link", .data = fx->aside},
	    {.type = AE_IFLNK, .path = "sym", .data = "/etc/passwd"},
	    {.type = AE_IFDIR, .path = "dir/"},
	    {.type = AE_IFREG, .path = "file", .data = "f"},
	    {.path = NULL},
	};
	const struct ent outside = {.hardlink = "../outside", .path = "evil"};
	const struct ent absolute = {.hardlink = "/etc/passwd", .path = "evil"};
	const struct ent via_link = {.hardlink = "link/secret", .path = "evil"};
	const struct ent via_file = {.hardlink = "file/x", .path = "evil"};
	const struct ent to_link = {.hardlink = "sym", .path = "evil"};
	const struct ent to_dir = {.hardlink = "dir", .path = "evil"};
	const struct ent missing = {.hardlink = "nothing/here", .path = "evil"};
	char secret[PATH_MAX];

	join(secret, fx->aside, "secret");
	assert_int_equal(close(open(secret, O_CREAT | O_WRONLY, 0600)), 0);
	write_archive(fx, "l1.tar", PAX, ARCHIVE_FILTER_NONE, layer1);
	extract_ok(fx, "l1.tar");
	refuse_one(fx, &outside, "entry 'evil': hard link target '../outside' leaves the bundle");
	refuse_one(fx, &absolute,
		   "entry 'evil': hard link target '/etc/passwd' is an absolute path");
	refuse_one(
	    fx, &via_link,
	    "entry 'evil': hard link target 'link/secret' passes through the symlink 'link'");
	refuse_one(fx, &via_file,
		   "entry 'evil': hard link target 'file/x' passes through 'file', which is not a "
		   "directory");
	refuse_one(fx, &to_link,
		   "entry 'evil': hard link target 'sym' is not an earlier regular file");
	refuse_one(fx, &to_dir,
		   "entry 'evil': hard link target 'dir' is not an earlier regular file");
	refuse_one(fx, &missing,
		   "entry 'evil': hard link target 'nothing/here' is not an earlier regular file");
	assert_absent(fx, "evil");
	assert_int_equal(lstat_at(fx, "link").st_nlink, 1);
}

static void test_setid_bits_stripped(void **state)
{
	static const struct ent ents[] = {
	    {.type = AE_IFREG, .path = "bin/su", .perm = 04755, .data = "su"},
	    {.type = AE_IFREG, .path = "bin/sg", .perm = 02711, .data = "sg"},
	    {.type = AE_IFDIR, .path = "shared/", .perm = 02775},
	    {.type = AE_IFREG, .path = "bin/plain", .perm = 0755, .data = "plain"},
	    {.path = NULL},
	};
	struct fx *fx = *state;

	write_archive(fx, "setid.tar", PAX, ARCHIVE_FILTER_NONE, ents);
	extract_ok(fx, "setid.tar");
	finish_ok(fx);
	assert_file(fx, "bin/su", "su", 0755);
	assert_file(fx, "bin/sg", "sg", 0711);
	assert_file(fx, "bin/plain", "plain", 0755);
	assert_dir(fx, "shared", 0775);
	assert_int_equal(fx->stats.setid_stripped, 3);
}

/* ------------------------------------------------------------ the size cap */

/* The header declares 64 MiB: refused before anything is written. */
static void test_cap_refuses_declared_size(void **state)
{
	static const struct ent ents[] = {
	    {.type = AE_IFREG, .path = "small", .data = "ok"},
	    {.type = AE_IFREG, .path = "zeros.bin", .zeros = 64 * MIB},
	    {.path = NULL},
	};
	struct fx *fx = *state;

	write_archive(fx, "bomb.tar.gz", PAX, ARCHIVE_FILTER_GZIP, ents);
	fx->lim.max_bytes = MIB;
	assert_refused(fx, "bomb.tar.gz", "extracted size exceeds stage.max_size (1.0 MiB)");
	assert_absent(fx, "zeros.bin");
	assert_int_equal(fx->stats.bytes, 2);
}

/* Through a pipe, the zip entry's size is only in its data descriptor, after the data: the cap
 * must stop the stream by counting what it writes. */
static void test_cap_stops_compression_bomb(void **state)
{
	static const struct ent ents[] = {
	    {.type = AE_IFREG, .path = "zeros.bin", .zeros = 64 * MIB, .size_unknown = true},
	    {.path = NULL},
	};
	struct fx *fx = *state;
	char path[PATH_MAX];
	struct stat st;

	write_archive(fx, "bomb.zip", ZIP, ARCHIVE_FILTER_NONE, ents);
	assert_int_equal(stat(in_arc(fx, "bomb.zip", path), &st), 0);
	assert_true(st.st_size < MIB / 4);
	fx->lim.max_bytes = MIB;
	assert_int_equal(extract_through_pipe(fx, "bomb.zip"), -1);
	assert_string_equal(fx->err, "extracted size exceeds stage.max_size (1.0 MiB)");
	assert_true(fx->stats.bytes <= MIB);
	assert_true(lstat_at(fx, "zeros.bin").st_size <= MIB);
}

static void test_cap_spans_layers(void **state)
{
	static const struct ent layer[] = {{.type = AE_IFREG, .path = "f", .zeros = 768 * KIB},
					   {.path = NULL}};
	static const struct ent exact[] = {{.type = AE_IFREG, .path = "g", .zeros = 256 * KIB},
					   {.path = NULL}};
	struct fx *fx = *state;

	write_archive(fx, "layer.tar", PAX, ARCHIVE_FILTER_NONE, layer);
	write_archive(fx, "exact.tar", PAX, ARCHIVE_FILTER_NONE, exact);
	fx->lim.max_bytes = MIB;
	extract_ok(fx, "layer.tar");
	extract_ok(fx, "exact.tar"); /* up to the cap itself is allowed */
	assert_int_equal(fx->stats.bytes, MIB);
	assert_refused(fx, "layer.tar", "extracted size exceeds stage.max_size (1.0 MiB)");
}

static void test_cap_message_units(void **state)
{
	struct fx *fx = *state;

	write_raw_tar(fx, "huge.tar", "huge.bin", "20000000000", 11); /* 2 GiB, data missing */
	fx->lim.max_bytes = (uint64_t)1536 * MIB;
	assert_refused(fx, "huge.tar", "extracted size exceeds stage.max_size (1.5 GiB)");
	fx->lim.max_bytes = 1000;
	assert_refused(fx, "huge.tar", "extracted size exceeds stage.max_size (1000 B)");
	fx->lim.max_bytes = (uint64_t)16 * 1024 * MIB;
	/* 17 GiB, in the base-256 form GNU tar uses past 8 GiB */
	write_raw_tar(fx, "huger.tar", "huge.bin", "\200\0\0\0\0\0\0\4\100\0\0\0", 12);
	assert_refused(fx, "huger.tar", "extracted size exceeds stage.max_size (16.0 GiB)");
}

/* ------------------------------------------------------------ directories made read-only */

static const struct ent ro_layer1[] = {
    {.type = AE_IFDIR, .path = "ro/", .perm = 0555, .mtime = T0 + 7},
    {.type = AE_IFREG, .path = "ro/a.py", .perm = 0444, .data = "a"},
    {.type = AE_IFREG, .path = "ro/sub/b.py", .data = "b"},
    {.type = AE_IFDIR, .path = "ro/sub/", .perm = 0500},
    /* Not even searchable: its child must be done before it. */
    {.type = AE_IFDIR, .path = "locked/", .perm = 0600},
    {.type = AE_IFDIR, .path = "locked/in/", .perm = 0750},
    {.type = AE_IFREG, .path = "locked/in/f", .data = "f"},
    {.path = NULL},
};
static const struct ent ro_layer2[] = {
    {.type = AE_IFREG, .path = "ro/a.py", .data = "a2"},
    {.type = AE_IFREG, .path = "ro/sub/c.py", .data = "c"},
    {.path = NULL},
};

/* Runs in a child as nobody when the tests run as root (root ignores modes); the archives are
 * opened before, so $TMPDIR need not be open to nobody. Exit status: 0, or 1 failed extraction,
 * 2 a directory not kept open until the finish, 3 failed finish. */
static int extract_ro_layers(struct fx *fx, const int layers[2])
{
	struct stat st;

	for (int i = 0; i < 2; i++) {
		if (pl_extract_archive_fd(layers[i], fx->outfd, &fx->lim, &fx->stats, fx->err,
					  sizeof(fx->err)) < 0) {
			fprintf(stderr, "%s\n", fx->err);
			return 1;
		}
	}
	if (fstatat(fx->outfd, "ro", &st, 0) < 0 || (st.st_mode & 07777) != 0700)
		return 2;
	if (pl_extract_finish(fx->outfd, fx->err, sizeof(fx->err)) < 0) {
		fprintf(stderr, "%s\n", fx->err);
		return 3;
	}
	return 0;
}

static int extract_ro_layers_unprivileged(struct fx *fx, const int layers[2])
{
	int status;
	pid_t pid;

	if (geteuid() != 0)
		return extract_ro_layers(fx, layers);
	assert_int_equal(fchown(fx->outfd, NOBODY, NOBODY), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (setgroups(0, NULL) < 0 || setgid(NOBODY) < 0 || setuid(NOBODY) < 0)
			_exit(99);
		_exit(extract_ro_layers(fx, layers));
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void test_readonly_directory_then_contents(void **state)
{
	struct fx *fx = *state;
	char path[PATH_MAX];
	int layers[2];
	struct stat st;

	write_archive(fx, "ro1.tar", PAX, ARCHIVE_FILTER_NONE, ro_layer1);
	write_archive(fx, "ro2.tar", PAX, ARCHIVE_FILTER_NONE, ro_layer2);
	layers[0] = open(in_arc(fx, "ro1.tar", path), O_RDONLY | O_CLOEXEC);
	layers[1] = open(in_arc(fx, "ro2.tar", path), O_RDONLY | O_CLOEXEC);
	assert_true(layers[0] >= 0 && layers[1] >= 0);
	assert_int_equal(extract_ro_layers_unprivileged(fx, layers), 0);
	close(layers[0]);
	close(layers[1]);
	st = lstat_at(fx, "ro/a.py");
	assert_int_equal(st.st_uid, geteuid() == 0 ? NOBODY : geteuid());
	assert_dir(fx, "ro", 0555);
	assert_mtime(fx, "ro", T0 + 7, 0);
	assert_dir(fx, "ro/sub", 0500);
	assert_dir(fx, "locked", 0600);
	assert_int_equal(lstat_at(fx, "ro/a.py").st_size, 2);
	assert_int_equal(lstat_at(fx, "ro/sub/b.py").st_size, 1);
	assert_int_equal(lstat_at(fx, "ro/sub/c.py").st_size, 1);
}

/* An error abandons the staging: what the failed call and earlier ones remembered is dropped. */
static void test_error_forgets_pending_directories(void **state)
{
	static const struct ent good[] = {{.type = AE_IFDIR, .path = "d/", .perm = 0500},
					  {.path = NULL}};
	struct fx *fx = *state;
	const struct ent bad = {.type = AE_IFREG, .path = "../x", .data = "x"};

	write_archive(fx, "good.tar", PAX, ARCHIVE_FILTER_NONE, good);
	extract_ok(fx, "good.tar");
	refuse_one(fx, &bad, "entry '../x': path leaves the bundle");
	finish_ok(fx);
	assert_dir(fx, "d", 0700);
}

/* ------------------------------------------------------------ messages */

static void test_names_in_messages_are_escaped_and_cut(void **state)
{
	struct fx *fx = *state;
	char name[700];
	size_t len;
	const struct ent bad = {.type = AE_IFREG, .path = name, .data = "x"};

	const struct ent ents[] = {bad, {.path = NULL}};
	const char *start = "entry '../\\x1b[31mred\\x0aline\\x5caaa";

	snprintf(name, sizeof(name), "../\033[31mred\nline\\");
	len = strlen(name);
	memset(name + len, 'a', 500);
	name[len + 500] = '\0';
	write_archive(fx, "bad.tar", PAX, ARCHIVE_FILTER_NONE, ents);
	assert_int_equal(extract(fx, "bad.tar"), -1);
	assert_int_equal(strncmp(fx->err, start, strlen(start)), 0);
	assert_non_null(strstr(fx->err, "aaa...': path leaves the bundle"));
	assert_true(strlen(fx->err) < 200);
	for (const char *p = fx->err; *p; p++)
		assert_true((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
}

static void test_truncated_archive(void **state)
{
	struct fx *fx = *state;
	static char noise[256 * KIB];
	struct ent ents[] = {{.type = AE_IFREG, .path = "big.bin", .data = noise}, {.path = NULL}};
	uint32_t x = 12345;
	char path[PATH_MAX];

	/* Incompressible text, so that half the file ends inside the entry's data. */
	for (size_t i = 0; i < sizeof(noise) - 1; i++) {
		x = x * 1103515245 + 12345;
		noise[i] = (char)('!' + (x >> 16) % 90);
	}
	write_archive(fx, "cut.tar.gz", PAX, ARCHIVE_FILTER_GZIP, ents);
	assert_int_equal(truncate(in_arc(fx, "cut.tar.gz", path), 100 * KIB), 0);
	assert_int_equal(extract(fx, "cut.tar.gz"), -1);
	assert_int_equal(strncmp(fx->err, "entry 'big.bin': read: ", 23), 0);
}

/* ------------------------------------------------------------ probe */

static void test_probe_accepts_every_format(void **state)
{
	static const struct {
		enum format format;
		int filter;
	} kinds[] = {
	    {PAX, ARCHIVE_FILTER_NONE},	   {PAX, ARCHIVE_FILTER_GZIP},
	    {PAX, ARCHIVE_FILTER_BZIP2},   {PAX, ARCHIVE_FILTER_XZ},
	    {PAX, ARCHIVE_FILTER_ZSTD},	   {PAX, ARCHIVE_FILTER_LZ4},
	    {GNUTAR, ARCHIVE_FILTER_NONE}, {USTAR, ARCHIVE_FILTER_GZIP},
	    {ZIP, ARCHIVE_FILTER_NONE},
	};
	struct fx *fx = *state;
	char path[PATH_MAX];

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		write_archive(fx, "probe.x", kinds[i].format, kinds[i].filter, conda_tree);
		fx->err[0] = '\0';
		if (pl_archive_probe(in_arc(fx, "probe.x", path), fx->err, sizeof(fx->err)) != 0)
			print_message("kind %zu: %s\n", i, fx->err);
		assert_int_equal(pl_archive_probe(path, fx->err, sizeof(fx->err)), 0);
	}
}

static void test_probe_refuses_other_things(void **state)
{
	struct fx *fx = *state;
	char path[PATH_MAX];

	write_text(fx, "notes.txt", "just some text, not an archive\n");
	assert_int_equal(pl_archive_probe(in_arc(fx, "notes.txt", path), fx->err, sizeof(fx->err)),
			 -1);
	assert_string_equal(fx->err, NOT_AN_ARCHIVE);
	write_text(fx, "zero-bytes", "");
	assert_int_equal(pl_archive_probe(in_arc(fx, "zero-bytes", path), fx->err, sizeof(fx->err)),
			 -1);
	assert_string_equal(fx->err, NOT_AN_ARCHIVE);
	assert_int_equal(pl_archive_probe(in_arc(fx, "missing", path), fx->err, sizeof(fx->err)),
			 -1);
	assert_string_equal(fx->err, "cannot open: No such file or directory");
	assert_int_equal(pl_archive_probe(fx->arc, fx->err, sizeof(fx->err)), -1);
	assert_string_equal(fx->err, "not a regular file");
}

/* A bundle looked up once (O_PATH) is probed and extracted through that lookup; a FIFO is
 * refused from its lookup, never opened (that would block). */
static void test_looked_up_bundles(void **state)
{
	struct fx *fx = *state;
	char path[PATH_MAX];
	struct stat st;
	int pathfd;

	write_archive(fx, "env.tar.zst", PAX, ARCHIVE_FILTER_ZSTD, conda_tree);
	pathfd = pl_bundle_lookup(in_arc(fx, "env.tar.zst", path), &st);
	assert_true(pathfd >= 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(pl_archive_probe_looked_up(pathfd, &st, fx->err, sizeof(fx->err)), 0);
	assert_int_equal(pl_extract_archive_looked_up(pathfd, &st, fx->outfd, &fx->lim, &fx->stats,
						      fx->err, sizeof(fx->err)),
			 0);
	close(pathfd);
	finish_ok(fx);
	check_conda_tree(fx, true);

	assert_int_equal(mkfifo(in_arc(fx, "fifo", path), 0600), 0);
	pathfd = pl_bundle_lookup(path, &st);
	assert_true(pathfd >= 0);
	assert_int_equal(pl_archive_probe_looked_up(pathfd, &st, fx->err, sizeof(fx->err)), -1);
	assert_string_equal(fx->err, "not a regular file");
	close(pathfd);
	errno = 0;
	assert_int_equal(pl_bundle_lookup(in_arc(fx, "missing", path), &st), -1);
	assert_int_equal(errno, ENOENT);
}

/* cpio, 7-Zip and compress(1) are readable by libarchive but are not bundle formats. */
static void test_other_formats_refused(void **state)
{
	struct fx *fx = *state;
	char path[PATH_MAX];

	write_archive(fx, "env.cpio", CPIO, ARCHIVE_FILTER_NONE, conda_tree);
	write_archive(fx, "env.7z", SEVENZIP, ARCHIVE_FILTER_NONE, conda_tree);
	write_archive(fx, "env.tar.Z", PAX, ARCHIVE_FILTER_COMPRESS, conda_tree);
	write_text(fx, "notes.txt", "just some text, not an archive\n");
	assert_int_equal(pl_archive_probe(in_arc(fx, "env.cpio", path), fx->err, sizeof(fx->err)),
			 -1);
	assert_string_equal(fx->err, NOT_AN_ARCHIVE);
	assert_int_equal(pl_archive_probe(in_arc(fx, "env.7z", path), fx->err, sizeof(fx->err)),
			 -1);
	assert_string_equal(fx->err, NOT_AN_ARCHIVE);
	assert_refused(fx, "env.tar.Z", NOT_AN_ARCHIVE);
	assert_refused(fx, "env.cpio", NOT_AN_ARCHIVE);
	assert_refused(fx, "notes.txt", NOT_AN_ARCHIVE);
	assert_int_equal(count_entries(fx->out), 0);
}

/* ------------------------------------------------------------ directory bundles */

static void make_in(const char *dir, const char *rel, const char *data, mode_t mode)
{
	char path[PATH_MAX];
	FILE *f;

	join(path, dir, rel);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(data, f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static void make_project(const struct fx *fx, char *proj)
{
	const struct timespec mtime[2] = {{.tv_sec = T0, .tv_nsec = 5},
					  {.tv_sec = T0, .tv_nsec = 5}};
	char path[PATH_MAX];

	join(proj, fx->arc, "proj");
	assert_int_equal(mkdir(proj, 0755), 0);
	make_in(proj, "run.sh", "#!/bin/sh\n", 0755);
	join(path, proj, "pkg");
	assert_int_equal(mkdir(path, 0750), 0);
	make_in(proj, "pkg/mod.py", "x = 1\n", 0640);
	join(path, proj, "pkg/mod.py");
	assert_int_equal(utimensat(AT_FDCWD, path, mtime, 0), 0);
	join(path, proj, "pkg/link.py");
	assert_int_equal(symlink("mod.py", path), 0);
	join(path, proj, "abs");
	assert_int_equal(symlink(fx->aside, path), 0);
	join(path, proj, "data");
	assert_int_equal(mkdir(path, 0755), 0);
	make_in(proj, "data/table.csv", "a,b\n", 0644);
	assert_int_equal(chmod(path, 0555), 0);
}

static int extract_dir(struct fx *fx, const char *path)
{
	fx->err[0] = '\0';
	return pl_extract_directory(path, fx->outfd, &fx->lim, &fx->stats, fx->err,
				    sizeof(fx->err));
}

static void check_project(struct fx *fx)
{
	assert_file(fx, "run.sh", "#!/bin/sh\n", 0755);
	assert_file(fx, "pkg/mod.py", "x = 1\n", 0640);
	assert_mtime(fx, "pkg/mod.py", T0, 5);
	assert_symlink(fx, "pkg/link.py", "mod.py");
	assert_symlink(fx, "abs", fx->aside);
	assert_file(fx, "data/table.csv", "a,b\n", 0644);
	assert_dir(fx, "pkg", 0750);
	assert_dir(fx, "data", 0555);
	assert_dir(fx, ".", 0700);
	assert_absent(fx, "proj");
	assert_int_equal(count_entries(fx->aside), 0);
}

static void test_directory_bundle(void **state)
{
	struct fx *fx = *state;
	char proj[PATH_MAX];

	make_project(fx, proj);
	assert_int_equal(extract_dir(fx, proj), 0);
	finish_ok(fx);
	check_project(fx);
	assert_int_equal(fx->stats.files, 3);
	assert_int_equal(fx->stats.dirs, 2);
	assert_int_equal(fx->stats.symlinks, 2);
	assert_int_equal(fx->stats.bytes, 10 + 6 + 4);
}

/* Named through a symlink or with a trailing slash, as `tar -C path -c .` would take it. */
static void test_directory_bundle_named_differently(void **state)
{
	struct fx *fx = *state;
	char proj[PATH_MAX];
	char alias[PATH_MAX];

	make_project(fx, proj);
	join(alias, fx->arc, "alias");
	assert_int_equal(symlink(proj, alias), 0);
	assert_int_equal(extract_dir(fx, alias), 0);
	finish_ok(fx);
	check_project(fx);
	fresh_out(fx);
	strcat(proj, "/");
	assert_int_equal(extract_dir(fx, proj), 0);
	finish_ok(fx);
	check_project(fx);
}

static void test_directory_bundle_special_files_refused(void **state)
{
	struct fx *fx = *state;
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	char proj[PATH_MAX];
	char path[PATH_MAX];
	int sock;

	make_project(fx, proj);
	join(path, proj, "pkg/fifo");
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(extract_dir(fx, proj), -1);
	assert_string_equal(fx->err, "entry 'pkg/fifo': FIFOs are not allowed");
	assert_int_equal(unlink(path), 0);

	join(path, proj, "sock");
	if (strlen(path) >= sizeof(addr.sun_path))
		return; /* $TMPDIR too long for a socket name */
	memcpy(addr.sun_path, path, strlen(path) + 1);
	sock = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(sock >= 0);
	assert_int_equal(bind(sock, (struct sockaddr *)&addr, sizeof(addr)), 0);
	assert_int_equal(extract_dir(fx, proj), -1);
	assert_string_equal(fx->err, "entry 'sock': sockets are not allowed");
	close(sock);
}

static void test_directory_bundle_not_a_directory(void **state)
{
	struct fx *fx = *state;
	char path[PATH_MAX];

	assert_int_equal(extract_dir(fx, in_arc(fx, "nothing", path)), -1);
	assert_int_equal(strncmp(fx->err, "cannot read the directory: ", 27), 0);
	assert_non_null(strstr(fx->err, ": No such file or directory"));
	write_text(fx, "plain", "not a directory\n");
	assert_int_equal(extract_dir(fx, in_arc(fx, "plain", path)), -1);
	assert_string_equal(fx->err, "not a directory");
}

/* stage.max_entries: empty files cost no bytes but an inode each; parents made for entries
 * that lack them count too; the cap holds across layers. */
static void test_entries_cap(void **state)
{
	struct fx *fx = *state;
	static char names[2000][16];
	static struct ent many[2001];
	const struct ent deep[] = {{.type = AE_IFREG, .path = "a/b/c/f", .perm = 0644, .data = "x"},
				   {0}};

	for (int i = 0; i < 2000; i++) {
		snprintf(names[i], sizeof(names[i]), "e%04d", i);
		many[i] =
		    (struct ent){.type = AE_IFREG, .path = names[i], .perm = 0644, .data = ""};
	}
	write_archive(fx, "many.tar", PAX, ARCHIVE_FILTER_NONE, many);
	fx->lim.max_entries = 1500;
	assert_int_equal(extract(fx, "many.tar"), -1);
	assert_non_null(strstr(fx->err, "more than 1500 entries"));
	assert_non_null(strstr(fx->err, "stage.max_entries"));
	assert_int_equal(pl_extract_entries(&fx->stats), 1500);
	assert_int_equal(fx->stats.bytes, 0);

	/* A fresh staging: 4 entries (3 implied parents and the file) against a cap of 3. */
	fresh_out(fx);
	memset(&fx->stats, 0, sizeof(fx->stats));
	write_archive(fx, "deep.tar", PAX, ARCHIVE_FILTER_NONE, deep);
	fx->lim.max_entries = 3;
	assert_int_equal(extract(fx, "deep.tar"), -1);
	assert_non_null(strstr(fx->err, "more than 3 entries"));
	fresh_out(fx);
	memset(&fx->stats, 0, sizeof(fx->stats));
	fx->lim.max_entries = 4;
	extract_ok(fx, "deep.tar");
	assert_int_equal(fx->stats.implied_dirs, 3);
	assert_int_equal(pl_extract_entries(&fx->stats), 4);
	/* A second layer draws on the same count. */
	assert_int_equal(extract(fx, "deep.tar"), -1);
	fx->lim.max_entries = 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	    T(test_every_compression),
	    T(test_entries_cap),
	    T(test_gnutar_and_ustar),
	    T(test_zip_with_data_descriptors),
	    T(test_zip_through_pipe),
	    T(test_tar_through_pipe),
	    T(test_long_names),
	    T(test_dot_components_and_slashes),
	    T(test_empty_archive),
	    T(test_sparse_entry),
	    T(test_layers_overwrite_files_and_merge_dirs),
	    T(test_file_over_directory_refused),
	    T(test_paths_outside_refused),
	    T(test_empty_name_refused),
	    T(test_top_as_file_refused),
	    T(test_special_files_refused),
	    T(test_path_through_symlink_refused),
	    T(test_symlink_from_earlier_layer_refused),
	    T(test_hardlink_to_earlier_entry),
	    T(test_bad_hardlinks_refused),
	    T(test_setid_bits_stripped),
	    T(test_cap_refuses_declared_size),
	    T(test_cap_stops_compression_bomb),
	    T(test_cap_spans_layers),
	    T(test_cap_message_units),
	    T(test_readonly_directory_then_contents),
	    T(test_error_forgets_pending_directories),
	    T(test_names_in_messages_are_escaped_and_cut),
	    T(test_truncated_archive),
	    T(test_probe_accepts_every_format),
	    T(test_probe_refuses_other_things),
	    T(test_looked_up_bundles),
	    T(test_other_formats_refused),
	    T(test_directory_bundle),
	    T(test_directory_bundle_named_differently),
	    T(test_directory_bundle_special_files_refused),
	    T(test_directory_bundle_not_a_directory),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
