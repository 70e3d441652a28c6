/* pylaunch: the site's command on a node, as root (pylaunch(8), "NODE CACHE").
 *
 *   pylaunch [--config FILE] cache list  [--user NAME]
 *   pylaunch [--config FILE] cache purge [--user NAME]
 *
 * It must run in the mount namespace of the node's slurmd (where the views are mounted). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"
#include "config.h"
#include "pl_build.h"

#define USAGE "usage: pylaunch [--config FILE] cache list|purge [--user NAME]\n"

static int fail(const char *what, int err)
{
	fprintf(stderr, "pylaunch: %s: %s\n", what, strerror(err));
	return 1;
}

/* stage.dir, which must be root's; and whether the cache exists at all. */
static int open_base(const char *dir, int *fd, bool *exists)
{
	struct stat st;

	*fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (*fd < 0)
		return errno == ENOENT ? (*exists = false, 0) : fail(dir, errno);
	if (fstat(*fd, &st) < 0 || st.st_uid != 0) {
		close(*fd);
		return fail(dir, errno ? errno : EPERM);
	}
	*exists = fstatat(*fd, PL_CACHE_DIR, &st, AT_SYMLINK_NOFOLLOW) == 0;
	return 0;
}

static void user_name(uid_t uid, char *buf, size_t len)
{
	struct passwd *pw = getpwuid(uid);

	if (pw)
		snprintf(buf, len, "%s", pw->pw_name);
	else
		snprintf(buf, len, "%u", (unsigned)uid);
}

static void list(struct pl_cache *c, uid_t uid)
{
	struct pl_cache_list l;
	uint64_t bytes = 0;
	size_t n = 0;
	char user[64], when[32];

	if (pl_cache_scan(c, &l) < 0)
		return;
	printf("%-16s %-12s %10s %9s %-19s %s\n", "NAME", "USER", "MIB", "ENTRIES", "LAST USE",
	       "JOBS");
	for (size_t i = 0; i < l.n; i++) {
		struct pl_cache_entry *e = &l.e[i];
		struct tm tm;

		if (uid != (uid_t)-1 && e->uid != uid)
			continue;
		user_name(e->uid, user, sizeof(user));
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S",
			 localtime_r(&e->used.tv_sec, &tm));
		printf("%-16.16s %-12s %10.1f %9" PRIu64 " %-19s %u%s\n", e->name, user,
		       (double)e->bytes / (1024.0 * 1024.0), e->entries, when, e->in_use,
		       e->purging ? " (purged: removed when its jobs end)" : "");
		bytes += e->bytes;
		n++;
	}
	printf("pylaunch: cache holds %zu trees, %.1f MiB\n", n, (double)bytes / (1024.0 * 1024.0));
	pl_cache_list_free(&l);
}

static void purge(struct pl_cache *c, uid_t uid)
{
	size_t kept, removed = pl_cache_purge(c, uid, &kept);

	printf("pylaunch: removed %zu trees\n", removed);
	if (kept)
		printf("pylaunch: %zu trees are in use by running jobs: no later job reuses them, "
		       "and each is removed when the last job using it ends\n",
		       kept);
}

static int run(const struct pl_config *cfg, const char *verb, uid_t uid)
{
	struct pl_cache c;
	char err[512];
	bool exists;
	int basefd;

	if (open_base(cfg->stage_dir, &basefd, &exists))
		return 1;
	if (!exists) {
		if (basefd >= 0)
			close(basefd);
		if (strcmp(verb, "list") == 0)
			printf("pylaunch: cache holds 0 trees, 0.0 MiB\n");
		return 0;
	}
	if (pl_cache_open(basefd, &c, err, sizeof(err)) < 0 || pl_cache_lock(&c) < 0) {
		fprintf(stderr, "pylaunch: %s: %s\n", cfg->stage_dir, err);
		close(basefd);
		return 1;
	}
	if (strcmp(verb, "list") == 0)
		list(&c, uid);
	else
		purge(&c, uid);
	pl_cache_close(&c);
	close(basefd);
	return 0;
}

static int load(const char *path, struct pl_config *cfg)
{
	char err[1024];

	pl_config_init_defaults(cfg);
	if (pl_config_load_file(cfg, path, err, sizeof(err)) < 0 ||
	    pl_config_validate(cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "pylaunch: %s\n", err);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *config = PL_DEFAULT_CONFIG, *verb, *user = NULL;
	struct pl_config cfg;
	uid_t uid = (uid_t)-1;
	int i = 1, rc;

	if (i + 1 < argc && strcmp(argv[i], "--config") == 0) {
		config = argv[i + 1];
		i += 2;
	}
	if (argc - i < 2 || strcmp(argv[i], "cache") != 0 ||
	    (strcmp(argv[i + 1], "list") != 0 && strcmp(argv[i + 1], "purge") != 0)) {
		fputs(USAGE, stderr);
		return 2;
	}
	verb = argv[i + 1];
	i += 2;
	if (argc - i == 2 && strcmp(argv[i], "--user") == 0)
		user = argv[i + 1];
	else if (argc != i) {
		fputs(USAGE, stderr);
		return 2;
	}
	if (user) {
		struct passwd *pw = getpwnam(user);

		if (!pw) {
			fprintf(stderr, "pylaunch: --user %s: no such user\n", user);
			return 2;
		}
		uid = pw->pw_uid;
	}
	if (geteuid() != 0) {
		fputs("pylaunch: cache: must run as root on the node\n", stderr);
		return 1;
	}
	if (load(config, &cfg) < 0)
		return 1;
	rc = run(&cfg, verb, uid);
	pl_config_free(&cfg);
	return rc;
}
