#include "ctx_submit.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bundle.h"
#include "log.h"
#include "options.h"
#include "options_env.h"
#include "optparse.h"
#include "plugin.h"
#include "site_bundles.h"

int pl_submit_init(spank_t sp, int ac, char **av)
{
	pl_plugin_load(ac, av);
	return pl_options_register(sp);
}

/* A relative path is the user's, relative to where they typed it; one that
 * srun inherited from #SBATCH/salloc is relative to where the job was submitted. */
static int submit_base_dir(const char *raw, char *buf, size_t len)
{
	const char *submit_dir = getenv("SLURM_SUBMIT_DIR");

	if (submit_dir && submit_dir[0] == '/' && pl_options_inherited("pybundle", raw)) {
		if (strlen(submit_dir) >= len)
			return -1;
		strcpy(buf, submit_dir);
		return 0;
	}
	return getcwd(buf, len) ? 0 : -1;
}

/* The environment carries the value to every step (inner sruns included) and
 * the job control environment carries it to the prolog and epilog. */
static int hand_on(spank_t sp, const char *job_control_name, const char *env_name,
		   const char *value)
{
	spank_err_t rc;

	if (setenv(env_name, value, 1) < 0) {
		pl_error_errno(errno, "cannot set %s", env_name);
		return -1;
	}
	rc = spank_job_control_setenv(sp, job_control_name, value, 1);
	if (rc != ESPANK_SUCCESS)
		pl_verbose("%s not handed to the prolog: %s", job_control_name, spank_strerror(rc));
	return 0;
}

/* An srun inside a job that inherits the job's --pybundle uses what the prolog staged: the job's
 * normalised list and key are in its environment already. Checking the files again would cost
 * the shared file system an open per srun, for bundles every node already has. */
static bool inherited_from_job(const char *raw)
{
	const char *list = getenv(PL_ENV_PYBUNDLE);
	const char *from_env = getenv(PL_ENV_PYBUNDLE_FROM_ENV);
	bool same = pl_options_pybundle_from_env() ? from_env && strcmp(from_env, raw) == 0
						   : pl_options_inherited("pybundle", raw);

	return same && list && *list && pl_key_valid(getenv(PL_ENV_PYBUNDLE_KEY));
}

static int hand_on_pybundle(spank_t sp, const char *raw)
{
	char base[PATH_MAX];
	char err[PL_ERRLEN];
	struct pl_bundle_list list;
	struct pl_bundle_summary sum;
	char *expanded = NULL;
	char *joined = NULL;
	int rc = -1;

	if (pl_pybundle_is_no(raw)) {
		pl_verbose("--pybundle=no: no bundle, not even the site's default");
		return 0;
	}
	if (inherited_from_job(raw)) {
		pl_verbose("--pybundle: the job's (%s)", getenv(PL_ENV_PYBUNDLE));
		return 0;
	}
	if (submit_base_dir(raw, base, sizeof(base)) < 0) {
		pl_error_errno(errno, "--pybundle: cannot determine the current directory");
		return -1;
	}
	/* @NAME: the site's bundle of that name, checked below like any other. */
	if (pl_site_bundles_expand(pl_plugin_config(), raw, &expanded, err, sizeof(err)) < 0 ||
	    pl_bundle_list_parse(expanded, base, &list, err, sizeof(err)) < 0) {
		pl_error("%s", err);
		free(expanded);
		return -1;
	}
	free(expanded);
	/* Checked here, as the user, so a wrong name is refused before the job
	 * is queued rather than failing on every node. */
	if (pl_bundles_check(&list, pl_plugin_config()->stage_max_size, &sum, err, sizeof(err)) <
	    0) {
		pl_error("--pybundle: %s", err);
		goto out;
	}
	joined = pl_bundle_list_join(&list);
	if (!joined) {
		pl_error("--pybundle: out of memory");
		goto out;
	}
	pl_verbose("--pybundle=%s (key %s, %llu bytes)", joined, sum.key,
		   (unsigned long long)sum.bytes);
	if (hand_on(sp, PL_JOB_CONTROL_PYBUNDLE, PL_ENV_PYBUNDLE, joined) == 0 &&
	    hand_on(sp, PL_JOB_CONTROL_PYBUNDLE_KEY, PL_ENV_PYBUNDLE_KEY, sum.key) == 0)
		rc = 0;
	if (rc == 0 && pl_options_pybundle_from_env() &&
	    setenv(PL_ENV_PYBUNDLE_FROM_ENV, raw, 1) < 0)
		rc = -1;
out:
	free(joined);
	pl_bundle_list_free(&list);
	return rc;
}

int pl_submit_post_opt(spank_t sp)
{
	const struct pl_request *req = pl_options_request();
	const char *config_error = pl_plugin_config_error();

	if (pl_options_from_user_env() < 0)
		return -1;
	if (config_error) {
		/* A broken site file must be seen, but must not stop jobs that do
		 * not use pylaunch; those that do are refused before queueing. */
		pl_error("site configuration: %s", config_error);
		if (pl_options_used()) {
			pl_error("--pybundle/--pymonitor cannot be honoured until the site "
				 "configuration is fixed");
			return -1;
		}
		return 0;
	}
	if (req->pybundle && hand_on_pybundle(sp, req->pybundle) < 0)
		return -1;
	if (req->pymonitor_given && hand_on(sp, PL_JOB_CONTROL_PYMONITOR, PL_ENV_PYMONITOR,
					    req->pymonitor ? "yes" : "no") < 0)
		return -1;
	return 0;
}
