#include "env_kind.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool exists_at(int dirfd, const char *path)
{
	struct stat st;

	return fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static bool is_dir_at(int dirfd, const char *path)
{
	struct stat st;

	return fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s);
	size_t m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Calls fn for each entry of dir (below dirfd) until it returns true. */
static bool any_entry(int dirfd, const char *dir, bool (*fn)(int, const char *, void *), void *arg)
{
	int fd = openat(dirfd, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct dirent *e;
	bool found = false;
	DIR *d;

	if (fd < 0)
		return false;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return false;
	}
	while (!found && (e = readdir(d)))
		if (e->d_name[0] != '.')
			found = fn(fd, e->d_name, arg);
	closedir(d);
	return found;
}

static bool stdlib_in(int libfd, const char *name, void *arg)
{
	char os_py[NAME_MAX + 16];

	(void)arg;
	if (strncmp(name, "python3", 7) != 0)
		return false;
	snprintf(os_py, sizeof(os_py), "%s/os.py", name);
	return exists_at(libfd, os_py);
}

/* A full prefix: what PYTHONHOME may point at. */
static bool is_prefix(int dirfd)
{
	return (exists_at(dirfd, "bin/python3") || exists_at(dirfd, "bin/python")) &&
	       any_entry(dirfd, "lib", stdlib_in, NULL);
}

static bool is_venv(int dirfd)
{
	struct stat st;

	return fstatat(dirfd, "pyvenv.cfg", &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
}

static bool kind_of_dir(int dirfd, enum pl_env_kind *kind)
{
	if (is_prefix(dirfd))
		*kind = PL_KIND_PREFIX;
	else if (is_venv(dirfd))
		*kind = PL_KIND_VENV;
	else
		return false;
	return true;
}

struct arcroot {
	int found;
	enum pl_env_kind kind;
	char name[NAME_MAX + 1];
};

static bool note_arcroot(int dirfd, const char *name, void *arg)
{
	struct arcroot *a = arg;
	enum pl_env_kind kind;
	bool is_env = false;
	int fd;

	if (!is_dir_at(dirfd, name))
		return false;
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0) {
		is_env = kind_of_dir(fd, &kind);
		close(fd);
	}
	if (is_env && a->found++ == 0) {
		a->kind = kind;
		snprintf(a->name, sizeof(a->name), "%s", name);
	}
	return false;
}

static bool installed_package(int dirfd, const char *name, void *arg)
{
	(void)arg;
	return (ends_with(name, ".dist-info") || ends_with(name, ".egg-info")) &&
	       is_dir_at(dirfd, name);
}

static void add_path(struct pl_env_layout *out, const char *tree, const char *sub)
{
	if (out->npaths == PL_ENV_PATHS_MAX)
		return;
	snprintf(out->paths[out->npaths], sizeof(out->paths[0]), "%s%s%s", tree, sub ? "/" : "",
		 sub ? sub : "");
	out->npaths++;
}

struct site_dirs {
	struct pl_env_layout *out;
	const char *tree;
};

static bool site_packages_in(int libfd, const char *name, void *arg)
{
	struct site_dirs *s = arg;
	char sub[NAME_MAX + 32];

	if (strncmp(name, "python3", 7) != 0)
		return false;
	snprintf(sub, sizeof(sub), "%s/site-packages", name);
	if (is_dir_at(libfd, sub)) {
		snprintf(sub, sizeof(sub), "lib/%s/site-packages", name);
		add_path(s->out, s->tree, sub);
	}
	return false;
}

/* Without an interpreter of its own: the tree's packages go on PYTHONPATH. */
static void classify_without_interpreter(int dirfd, const char *tree, struct pl_env_layout *out)
{
	struct site_dirs s = {out, tree};
	bool target_dir = any_entry(dirfd, ".", installed_package, NULL);

	if (target_dir)
		add_path(out, tree, NULL);
	any_entry(dirfd, "lib", site_packages_in, &s);
	out->kind = out->npaths ? PL_KIND_PACKAGES : PL_KIND_CODE;
	if (out->kind == PL_KIND_CODE)
		add_path(out, tree, NULL);
}

static void find_environment(int dirfd, const char *tree, struct pl_env_layout *out)
{
	struct arcroot a = {0};

	snprintf(out->home, sizeof(out->home), "%s", tree);
	if (kind_of_dir(dirfd, &out->kind))
		goto found;
	any_entry(dirfd, ".", note_arcroot, &a);
	if (a.found != 1) {
		classify_without_interpreter(dirfd, tree, out);
		return;
	}
	out->kind = a.kind;
	snprintf(out->home, sizeof(out->home), "%s/%s", tree, a.name);
found:
	/* A pip --target tier merged over the environment: its packages sit at the top. */
	if (any_entry(dirfd, ".", installed_package, NULL))
		add_path(out, tree, NULL);
}

static bool bin_dir(const char *home)
{
	char bin[PATH_MAX + 8];
	struct stat st;

	snprintf(bin, sizeof(bin), "%s/bin", home);
	return lstat(bin, &st) == 0 && S_ISDIR(st.st_mode);
}

int pl_env_detect(const char *tree, struct pl_env_layout *out)
{
	int dirfd = open(tree, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	memset(out, 0, sizeof(*out));
	if (dirfd < 0)
		return -1;
	find_environment(dirfd, tree, out);
	close(dirfd);
	out->home_bin = bin_dir(out->home);
	return 0;
}

const char *pl_env_kind_name(enum pl_env_kind kind)
{
	switch (kind) {
	case PL_KIND_PREFIX:
		return "prefix";
	case PL_KIND_VENV:
		return "venv";
	case PL_KIND_PACKAGES:
		return "packages";
	case PL_KIND_CODE:
		return "code";
	}
	return "?";
}

void pl_env_kind_of_summary(const char *summary, char *buf, size_t len)
{
	size_t n;

	if (!summary || strncmp(summary, "kind=", 5) != 0) {
		snprintf(buf, len, "-");
		return;
	}
	summary += 5;
	n = strcspn(summary, "; ");
	snprintf(buf, len, "%.*s", (int)n, summary);
}
