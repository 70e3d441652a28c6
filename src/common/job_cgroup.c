#include "job_cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const controllers[PL_CGROUP_CONTROLLERS] = {"memory", "freezer"};

static bool is_dir(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Slurm's directory of this node in a controller's hierarchy: "slurm_<node>" (several slurmd
 * per host), else "slurm". 0 with prefix set, -1 when neither exists there. */
static int node_prefix(const char *mount, const char *ctrl, const char *node, char *prefix,
		       size_t len)
{
	char path[PATH_MAX];

	snprintf(prefix, len, "slurm_%s", node);
	snprintf(path, sizeof(path), "%s/%s/%s", mount, ctrl, prefix);
	if (is_dir(path))
		return 0;
	snprintf(prefix, len, "slurm");
	snprintf(path, sizeof(path), "%s/%s/%s", mount, ctrl, prefix);
	return is_dir(path) ? 0 : -1;
}

/* The prefix the node's slurmd uses: proctrack/cgroup makes it in freezer when slurmd starts,
 * task/cgroup in memory with the first step. */
static int find_prefix(const char *mount, const char *node, char *prefix, size_t len)
{
	for (size_t i = 0; i < PL_CGROUP_CONTROLLERS; i++)
		if (node_prefix(mount, controllers[i], node, prefix, len) == 0)
			return 0;
	return -1;
}

/* Slurm's cgroup/v1 takes this lock (flock of the controller's root) while it makes or
 * removes a job's directories; so do we. -1, or the fd to close. */
static int lock_root(const char *mount, const char *ctrl)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", mount, ctrl);
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0 && flock(fd, LOCK_EX) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int make_dir(const char *path, char *err, size_t errlen)
{
	if (mkdir(path, 0755) == 0 || (errno == EEXIST && is_dir(path)))
		return 0;
	snprintf(err, errlen, "cannot make the job's cgroup %s: %s", path, strerror(errno));
	return -1;
}

/* <mount>/<ctrl>/<prefix>/uid_U/job_J, each level made if missing. */
static int make_job_dir(const char *mount, const char *ctrl, const char *prefix, uid_t uid,
			uint32_t job_id, char *dir, char *err, size_t errlen)
{
	int lockfd = lock_root(mount, ctrl);
	int rc;

	if (lockfd < 0) {
		snprintf(err, errlen, "cannot lock the cgroup hierarchy %s/%s: %s", mount, ctrl,
			 strerror(errno));
		return -1;
	}
	snprintf(dir, PATH_MAX, "%s/%s/%s", mount, ctrl, prefix);
	rc = make_dir(dir, err, errlen);
	snprintf(dir + strlen(dir), PATH_MAX - strlen(dir), "/uid_%u", (unsigned)uid);
	rc = rc < 0 ? rc : make_dir(dir, err, errlen);
	snprintf(dir + strlen(dir), PATH_MAX - strlen(dir), "/job_%u", job_id);
	rc = rc < 0 ? rc : make_dir(dir, err, errlen);
	close(lockfd);
	return rc;
}

/* A controller of the v1 kind is mounted at <mount>/<ctrl> (its root has cgroup.procs). */
static bool mounted(const char *mount, const char *ctrl)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s/cgroup.procs", mount, ctrl);
	return access(path, F_OK) == 0;
}

int pl_job_cgroup_prepare(const char *mount, const char *node, uid_t uid, uint32_t job_id,
			  bool memory, struct pl_job_cgroup *cg, char *err, size_t errlen)
{
	char prefix[NAME_MAX];
	char path[PATH_MAX];

	cg->n = 0;
	snprintf(path, sizeof(path), "%s/cgroup.controllers", mount);
	if (access(path, F_OK) == 0) {
		snprintf(err, errlen, "cgroup v2 at %s, where %s", mount,
			 "Slurm makes the job's cgroup after the prolog");
		return 0;
	}
	if (!node || !*node || strchr(node, '/') ||
	    find_prefix(mount, node, prefix, sizeof(prefix))) {
		snprintf(err, errlen, "no cgroup v1 hierarchy of Slurm's under %s", mount);
		return 0;
	}
	for (size_t i = 0; i < PL_CGROUP_CONTROLLERS; i++) {
		if (!mounted(mount, controllers[i]) ||
		    (!memory && strcmp(controllers[i], "memory") == 0))
			continue;
		if (make_job_dir(mount, controllers[i], prefix, uid, job_id, cg->dirs[cg->n], err,
				 errlen) < 0) {
			cg->n = 0;
			return -1;
		}
		cg->n++;
	}
	return 0;
}

void pl_job_cgroup_existing_memory(const char *mount, const char *node, uid_t uid, uint32_t job_id,
				   struct pl_job_cgroup *cg)
{
	char prefix[NAME_MAX];

	cg->n = 0;
	if (!node || !*node || strchr(node, '/') ||
	    node_prefix(mount, "memory", node, prefix, sizeof(prefix)) < 0)
		return;
	snprintf(cg->dirs[0], sizeof(cg->dirs[0]), "%s/memory/%s/uid_%u/job_%u", mount, prefix,
		 (unsigned)uid, job_id);
	if (is_dir(cg->dirs[0]))
		cg->n = 1;
}

static int read_u64(const char *dir, const char *name, uint64_t *value)
{
	char path[PATH_MAX + 32];
	unsigned long long v;
	FILE *f;
	int rc;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "re");
	if (!f)
		return -1;
	rc = fscanf(f, "%llu", &v) == 1 ? 0 : -1;
	fclose(f);
	if (rc == 0)
		*value = v;
	return rc;
}

uint64_t pl_job_cgroup_memory_room(const struct pl_job_cgroup *cg, uint64_t reserve)
{
	uint64_t limit, usage;

	if (!cg || cg->n == 0 || read_u64(cg->dirs[0], "memory.limit_in_bytes", &limit) < 0 ||
	    read_u64(cg->dirs[0], "memory.usage_in_bytes", &usage) < 0 ||
	    limit >= (UINT64_MAX >> 2)) /* v1 says "no limit" with a page-rounded LLONG_MAX */
		return UINT64_MAX;
	return limit > usage + reserve ? limit - usage - reserve : 0;
}

int pl_cgroup2_self_path(const char *proc_cgroup, char *path, size_t len)
{
	char line[PATH_MAX + 8];
	FILE *f = fopen(proc_cgroup, "re");
	int rc = -1;

	if (!f)
		return -1;
	while (rc < 0 && fgets(line, sizeof(line), f)) {
		/* "/.." leads out of a cgroup namespace: not a path under our mount. */
		if (strncmp(line, "0::/", 4) != 0 || strstr(line, "/.."))
			continue;
		line[strcspn(line, "\n")] = '\0';
		rc = (size_t)snprintf(path, len, "%s", line + 3) < len ? 0 : -1;
	}
	fclose(f);
	return rc;
}

/* A level's room under its memory.max; UINT64_MAX where it has none ("max", or no memory
 * controller there and so no files). */
static uint64_t level_room(const char *dir, uint64_t reserve)
{
	uint64_t max, current;

	if (read_u64(dir, "memory.max", &max) < 0 || read_u64(dir, "memory.current", &current) < 0)
		return UINT64_MAX;
	return max > current + reserve ? max - current - reserve : 0;
}

uint64_t pl_cgroup2_memory_room(const char *mount, const char *self, uint64_t reserve)
{
	char dir[PATH_MAX];
	size_t root_len = strlen(mount);
	uint64_t room = UINT64_MAX;
	char *slash;

	snprintf(dir, sizeof(dir), "%s/cgroup.controllers", mount);
	if (self[0] != '/' || access(dir, F_OK) < 0)
		return UINT64_MAX;
	if ((size_t)snprintf(dir, sizeof(dir), "%s%s", mount, self) >= sizeof(dir))
		return UINT64_MAX;
	/* Every level up to the root's child: Slurm limits the job's level and the step's user
	 * level, a site may limit others (a slice), and the tightest is what the pages meet. */
	while (strlen(dir) > root_len) {
		uint64_t r = level_room(dir, reserve);

		room = r < room ? r : room;
		slash = strrchr(dir, '/');
		*slash = '\0';
	}
	return room;
}

static int join_one(const char *dir, char *err, size_t errlen)
{
	char path[PATH_MAX + 16];
	char pid[24];
	int len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	int fd;

	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || write(fd, pid, (size_t)len) != len) {
		snprintf(err, errlen, "cannot join the job's cgroup %s: %s", dir, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

int pl_job_cgroup_join(const struct pl_job_cgroup *cg, char *err, size_t errlen)
{
	for (size_t i = 0; cg && i < cg->n; i++)
		if (join_one(cg->dirs[i], err, errlen) < 0)
			return -1;
	return 0;
}

void pl_job_cgroup_release(const char *mount, const char *node, uid_t uid, uint32_t job_id)
{
	char prefix[NAME_MAX];
	char dir[PATH_MAX];

	if (!node || !*node || strchr(node, '/') ||
	    find_prefix(mount, node, prefix, sizeof(prefix)))
		return;
	for (size_t i = 0; i < PL_CGROUP_CONTROLLERS; i++) {
		int lockfd = lock_root(mount, controllers[i]);

		if (lockfd < 0)
			continue;
		snprintf(dir, sizeof(dir), "%s/%s/%s/uid_%u/job_%u", mount, controllers[i], prefix,
			 (unsigned)uid, job_id);
		/* Not empty (a step still there, or another job of the user's): stays. */
		if (rmdir(dir) == 0 || errno == ENOENT) {
			*strrchr(dir, '/') = '\0';
			(void)rmdir(dir);
		}
		close(lockfd);
	}
}

/* "Key=yes" (any case, blanks around '='), at the start of a line outside a comment. */
static bool line_says_yes(const char *line, const char *key)
{
	size_t klen = strlen(key);
	const char *p = line + strspn(line, " \t");

	if (strncasecmp(p, key, klen) != 0)
		return false;
	p += klen;
	p += strspn(p, " \t");
	if (*p++ != '=')
		return false;
	p += strspn(p, " \t");
	return strncasecmp(p, "yes", 3) == 0;
}

bool pl_cgroup_conf_limits_memory(const char *slurm_conf)
{
	char path[PATH_MAX];
	char line[1024];
	const char *slash = strrchr(slurm_conf, '/');
	bool limits = false;
	FILE *f;

	snprintf(path, sizeof(path), "%.*s/cgroup.conf", slash ? (int)(slash - slurm_conf) : 1,
		 slash ? slurm_conf : ".");
	f = fopen(path, "re");
	if (!f)
		return true;
	while (!limits && fgets(line, sizeof(line), f))
		limits = line_says_yes(line, "ConstrainRAMSpace") ||
			 line_says_yes(line, "ConstrainSwapSpace");
	fclose(f);
	return limits;
}
