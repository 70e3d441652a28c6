/* What the record says of the job: its metadata from the epilog's environment, and whether
 * its user is staff (monitor.staff_groups). */
#include "monitor_record_internal.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"

/* ------------------------------------------------------------------ job metadata */

static const char *env_value(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

static long long env_number(const char *name)
{
	const char *v = env_value(name);
	char *end;
	unsigned long long n;

	if (!v || v[0] < '0' || v[0] > '9')
		return -1;
	errno = 0;
	n = strtoull(v, &end, 10);
	return (*end || errno || n > UINT32_MAX) ? -1 : (long long)n;
}

void pl_job_meta_from_env(struct pl_job_meta *meta, uint32_t job_id, uid_t uid)
{
	struct timespec now;

	memset(meta, 0, sizeof(*meta));
	meta->job_id = job_id;
	meta->uid = (long long)uid;
	meta->cluster = env_value("SLURM_CLUSTER_NAME");
	meta->user = env_value("SLURM_JOB_USER");
	meta->account = env_value("SLURM_JOB_ACCOUNT");
	meta->partition = env_value("SLURM_JOB_PARTITION");
	/* Not in the prolog/epilog environment of Slurm 22.05; taken where a release sets it. */
	meta->qos = env_value("SLURM_JOB_QOS");
	meta->node = env_value("SLURMD_NODENAME");
	meta->num_nodes = env_number("SLURM_JOB_NUM_NODES");
	meta->exit_status = env_number("SLURM_JOB_EXIT_CODE");
	clock_gettime(CLOCK_REALTIME, &now);
	meta->end_time = (double)now.tv_sec + now.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------ staff */

bool pl_monitor_groups_intersect(const gid_t *gids, size_t n, const gid_t *staff, size_t m)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < m; j++)
			if (gids[i] == staff[j])
				return true;
	return false;
}

/* The gid of the group called name; false when there is none (or NSS fails). */
static bool group_gid(const char *name, gid_t *gid)
{
	size_t size = 16384;
	bool found = false;

	for (;;) {
		struct group gr, *res = NULL;
		char *buf = malloc(size);
		int rc;

		if (!buf)
			return false;
		rc = getgrnam_r(name, &gr, buf, size, &res);
		if (rc == 0 && res) {
			*gid = res->gr_gid;
			found = true;
		}
		free(buf);
		if (rc != ERANGE || size >= NSS_BUF_MAX)
			return found;
		size *= 2;
	}
}

/* uid's user name into buf; false when uid has no passwd entry. */
static bool user_name(uid_t uid, char *name, size_t len)
{
	struct passwd pw, *res = NULL;
	char buf[16384];

	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) != 0 || !res ||
	    strlen(res->pw_name) >= len)
		return false;
	strcpy(name, res->pw_name);
	return true;
}

/* uid's groups, primary gid included; the count, or -1. *gids is malloc'ed. */
static int user_groups(uid_t uid, gid_t gid, gid_t **gids)
{
	char name[256];
	int n = 64;

	*gids = NULL;
	if (!user_name(uid, name, sizeof(name))) {
		if (!(*gids = malloc(sizeof(**gids))))
			return -1;
		(*gids)[0] = gid;
		return 1;
	}
	for (;;) {
		int want = n;
		gid_t *grown = realloc(*gids, (size_t)n * sizeof(**gids));

		if (!grown)
			break;
		*gids = grown;
		if (getgrouplist(name, gid, *gids, &want) >= 0)
			return want;
		if (want <= n || want > GROUPS_MAX)
			break;
		n = want;
	}
	free(*gids);
	*gids = NULL;
	return -1;
}

bool pl_monitor_is_staff(uid_t uid, gid_t gid, char *const *groups, size_t n_groups)
{
	gid_t staff[PL_CONFIG_MAX_STAFF_GROUPS];
	size_t m = 0;
	gid_t *gids = NULL;
	int n;
	bool is_staff = false;

	for (size_t i = 0; i < n_groups && m < sizeof(staff) / sizeof(staff[0]); i++)
		if (groups[i] && group_gid(groups[i], &staff[m]))
			m++;
	if (m == 0)
		return false;
	n = user_groups(uid, gid, &gids);
	if (n > 0)
		is_staff = pl_monitor_groups_intersect(gids, (size_t)n, staff, m);
	free(gids);
	return is_staff;
}
