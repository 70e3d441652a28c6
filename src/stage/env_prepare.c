#include "env_prepare.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Console scripts are small; a larger file in bin/ is a program, not a script to rewrite. */
#define SCRIPT_MAX (1024 * 1024)
#define CFG_MAX 65536

/* ------------------------------------------------------------ conda-pack */

/* conda-pack's bin/conda-unpack ("#!/usr/bin/env python") replaces the build prefix in the files
 * it lists with its own location, found from its path: run once per node, from the staged copy. */
static int run_conda_unpack(const char *home, char *msg, size_t len)
{
	char script[PATH_MAX + 32];
	char path_env[PATH_MAX + 32];
	int status;
	pid_t pid;

	snprintf(script, sizeof(script), "%s/bin/conda-unpack", home);
	if (access(script, X_OK) < 0)
		return 0;
	snprintf(path_env, sizeof(path_env), "PATH=%s/bin:/usr/bin:/bin", home);
	pid = fork();
	if (pid == 0) {
		char *argv[] = {script, NULL};
		char *envp[] = {path_env, "LC_ALL=C.UTF-8", NULL};
		int devnull = open("/dev/null", O_RDWR);

		if (devnull >= 0) {
			dup2(devnull, 0);
			dup2(devnull, 1);
			dup2(devnull, 2);
		}
		if (chdir(home) == 0)
			execve(script, argv, envp);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0) {
		snprintf(msg, len, "%s: bin/conda-unpack failed (status %d)", home,
			 pid < 0 ? -1 : status);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------ venv */

/* Reads at most max bytes of name below dirfd (no symlink followed at the last component). */
static char *read_small_at(int dirfd, const char *name, size_t max, size_t *n)
{
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	char *buf;
	ssize_t got;

	if (fd < 0)
		return NULL;
	buf = malloc(max + 1);
	got = buf ? read(fd, buf, max) : -1;
	close(fd);
	if (got < 0) {
		free(buf);
		return NULL;
	}
	buf[got] = '\0';
	*n = (size_t)got;
	return buf;
}

static char *read_small(const char *dir, const char *name, size_t max, size_t *n)
{
	int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	char *buf;
	int saved;

	if (dirfd < 0)
		return NULL;
	buf = read_small_at(dirfd, name, max, n);
	saved = errno;
	close(dirfd);
	errno = saved;
	return buf;
}

static const char *next_line(const char *line)
{
	const char *nl = strchr(line, '\n');

	return nl ? nl + 1 : NULL;
}

/* "key = value" of pyvenv.cfg into out. */
static int cfg_value(const char *cfg, const char *key, char *out, size_t len)
{
	size_t klen = strlen(key);

	for (const char *line = cfg; line && *line; line = next_line(line)) {
		const char *p = line + strspn(line, " \t");

		if (strncmp(p, key, klen) != 0)
			continue;
		p += klen;
		p += strspn(p, " \t");
		if (*p != '=')
			continue;
		p++;
		p += strspn(p, " \t");
		snprintf(out, len, "%.*s", (int)strcspn(p, "\r\n"), p);
		for (size_t n = strlen(out); n && (out[n - 1] == ' ' || out[n - 1] == '\t'); n--)
			out[n - 1] = '\0';
		return 0;
	}
	return -1;
}

static int venv_interpreter_runs(const char *venv, const char *home, char *msg, size_t len);

int pl_venv_check_home(const char *venv, char *msg, size_t len)
{
	char home[PATH_MAX];
	struct stat st;
	int found;
	size_t n;
	char *cfg = read_small(venv, "pyvenv.cfg", CFG_MAX, &n);
	int rc = 0;

	if (!cfg) {
		snprintf(msg, len, "%s/pyvenv.cfg: %s", venv, strerror(errno));
		return -1;
	}
	if (cfg_value(cfg, "home", home, sizeof(home)) < 0) {
		snprintf(msg, len, "%s/pyvenv.cfg: no 'home' line: not a venv Python can start",
			 venv);
		rc = -1;
	} else if ((found = stat(home, &st)) < 0 || !S_ISDIR(st.st_mode)) {
		const char *why = found < 0 ? strerror(errno) : "not a directory";

		snprintf(
		    msg, len,
		    "venv: the interpreter it was made with, in %s (pyvenv.cfg 'home'), is not on "
		    "this node: %s; make the venv from an interpreter every node has, or bundle a "
		    "full environment (conda-pack)",
		    home, why);
		rc = -1;
	}
	free(cfg);
	return rc == 0 ? venv_interpreter_runs(venv, home, msg, len) : rc;
}

/* The home directory alone is not enough: the venv's bin/python3 is a link to an interpreter
 * in it, and a node with another Python minor release has the directory but not that file. */
static int venv_interpreter_runs(const char *venv, const char *home, char *msg, size_t len)
{
	static const char *const names[] = {"bin/python3", "bin/python"};
	char path[PATH_MAX];
	char target[PATH_MAX] = "";
	ssize_t n;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", venv, names[i]);
		if (access(path, X_OK) == 0)
			return 0;
		if (target[0] == '\0' && (n = readlink(path, target, sizeof(target) - 1)) > 0)
			target[n] = '\0';
	}
	snprintf(
	    msg, len,
	    "venv: its interpreter %s (in %s, pyvenv.cfg 'home') is not on this node; make the "
	    "venv from an interpreter every node has, or bundle a full environment (conda-pack)",
	    target[0] ? target : "bin/python3", home);
	return -1;
}

/* One assignment's value: 'quoted', "quoted" or bare (shlex.quote leaves a plain path bare). */
static bool assigned_path(const char *v, char *out, size_t len)
{
	size_t n;

	if (*v == '"' || *v == '\'') {
		const char *end = strchr(v + 1, *v);

		if (!end)
			return false;
		n = (size_t)(end - v - 1);
		v++;
	} else {
		n = strcspn(v, " \t\r\n;");
	}
	if (*v != '/' || n < 2 || n >= len || v[n - 1] == '/')
		return false;
	snprintf(out, len, "%.*s", (int)n, v);
	return true;
}

/* bin/activate's VIRTUAL_ENV=... (venv, virtualenv, uv), skipping $(cygpath ...). */
static int made_at(const char *venv, char *out, size_t len)
{
	static const char var[] = "VIRTUAL_ENV=";
	char bin[PATH_MAX + 8];
	size_t n;
	char *text;
	bool found = false;

	snprintf(bin, sizeof(bin), "%s/bin", venv);
	text = read_small(bin, "activate", CFG_MAX, &n);
	for (char *p = text; !found && p && (p = strstr(p, var)); p++)
		if (p == text || p[-1] == ' ' || p[-1] == '\t' || p[-1] == '\n')
			found = assigned_path(p + strlen(var), out, len);
	free(text);
	return found ? 0 : -1;
}

/* The first two lines: the shebang, and pip's "'''exec' OLD/bin/python" line for long paths. */
static size_t head_len(const char *data, size_t n)
{
	const char *nl = memchr(data, '\n', n);

	if (nl)
		nl = memchr(nl + 1, '\n', n - (size_t)(nl + 1 - data));
	return nl ? (size_t)(nl - data) : n;
}

/* Through a temporary file and rename(): a task of an earlier step may be running the script. */
static int write_replacing(int binfd, const char *name, const struct stat *st, const char *data,
			   size_t n, const char *old, const char *new)
{
	char tmp[NAME_MAX + 32];
	size_t head = head_len(data, n);
	size_t olen = strlen(old);
	FILE *f;
	int fd;
	size_t i = 0;

	snprintf(tmp, sizeof(tmp), ".%s.pylaunch", name);
	fd = openat(binfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		    st->st_mode & 07777);
	if (fd < 0 || !(f = fdopen(fd, "w"))) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	while (i < n) {
		if (i < head && i + olen <= head && memcmp(data + i, old, olen) == 0 &&
		    data[i + olen] == '/') {
			fputs(new, f);
			i += olen;
		} else {
			fputc(data[i++], f);
		}
	}
	if (fclose(f) != 0 || renameat(binfd, tmp, binfd, name) < 0) {
		unlinkat(binfd, tmp, 0);
		return -1;
	}
	return 0;
}

static bool names_old_location(const char *data, size_t n, const char *old)
{
	size_t head = head_len(data, n);
	size_t olen = strlen(old);

	if (n < 2 || data[0] != '#' || data[1] != '!')
		return false;
	for (size_t i = 0; i + olen < head; i++)
		if (memcmp(data + i, old, olen) == 0 && data[i + olen] == '/')
			return true;
	return false;
}

static int rewrite_one(int binfd, const char *name, const char *old, const char *new,
		       unsigned *count)
{
	struct stat st;
	size_t n;
	char *data;
	int rc = 0;

	if (fstatat(binfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > SCRIPT_MAX)
		return 0;
	data = read_small_at(binfd, name, (size_t)st.st_size, &n);
	if (!data)
		return -1;
	if (names_old_location(data, n, old)) {
		rc = write_replacing(binfd, name, &st, data, n, old, new);
		*count += rc == 0;
	}
	free(data);
	return rc;
}

int pl_venv_rewrite_scripts(const char *venv, unsigned *count, char *msg, size_t len)
{
	char bin[PATH_MAX + 8];
	char old[PATH_MAX];
	struct dirent *e;
	DIR *d;
	int fd;
	int rc = 0;

	*count = 0;
	if (made_at(venv, old, sizeof(old)) < 0 || strcmp(old, venv) == 0)
		return 0;
	snprintf(bin, sizeof(bin), "%s/bin", venv);
	/* A bin/ that is a symlink leads out of the tree, to files that are not the staged copy's.
	 */
	fd = open(bin, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	while (rc == 0 && (e = readdir(d)))
		if (e->d_name[0] != '.' && rewrite_one(dirfd(d), e->d_name, old, venv, count) < 0) {
			snprintf(msg, len, "%s/%s: cannot rewrite its shebang: %s", bin, e->d_name,
				 strerror(errno));
			rc = -1;
		}
	closedir(d);
	return rc;
}

int pl_env_prepare(const struct pl_env_layout *env, char *msg, size_t len)
{
	unsigned rewritten;

	switch (env->kind) {
	case PL_KIND_VENV:
		if (pl_venv_check_home(env->home, msg, len) < 0)
			return -1;
		return pl_venv_rewrite_scripts(env->home, &rewritten, msg, len);
	default:
		return run_conda_unpack(env->home, msg, len);
	}
}
