#include "options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "optparse.h"

enum { OPT_PYBUNDLE = 1, OPT_PYMONITOR };

static struct pl_request request;

/* Inside an allocation srun re-reads the options of the job from
 * SLURM_SPANK__SLURM_SPANK_OPTION_<plugin>_<option> (Slurm 22.05, plugstack.c);
 * a value found there came from sbatch/salloc, not from this command line. */
bool pl_options_inherited(const char *option, const char *arg)
{
	char name[128];
	const char *inherited;

	snprintf(name, sizeof(name), "SLURM_SPANK__SLURM_SPANK_OPTION_pylaunch_%s", option);
	inherited = getenv(name);
	return inherited && arg && strcmp(inherited, arg) == 0;
}

/* Callbacks may run twice in remote context on Slurm 22.05: each one replaces
 * what an earlier call stored, so a second run changes nothing. */
static int set_pybundle(const char *arg)
{
	struct pl_bundle_list syntax_check;
	char err[PL_ERRLEN];

	/* Only the syntax is checked here; "/" stands in for the base directory,
	 * which the submitting context supplies later. */
	if (pl_bundle_list_parse(arg, "/", &syntax_check, err, sizeof(err)) < 0) {
		pl_error("%s", err);
		return -1;
	}
	pl_bundle_list_free(&syntax_check);
	free(request.pybundle);
	request.pybundle = strdup(arg);
	if (!request.pybundle) {
		pl_error("--pybundle: out of memory");
		return -1;
	}
	return 0;
}

static int set_pymonitor(const char *arg, bool forwarded)
{
	char err[PL_ERRLEN];
	bool on;

	/* A bare --pymonitor is forwarded as "" (and as "(null)" in the job
	 * control environment, plugstack.c _option_setenv); only where the user
	 * typed it is "--pymonitor=" an error. */
	if (forwarded && arg && (!*arg || strcmp(arg, "(null)") == 0))
		arg = NULL;

	if (pl_monitor_parse(arg, &on, err, sizeof(err)) < 0) {
		pl_error("%s", err);
		return -1;
	}
	request.pymonitor_given = true;
	request.pymonitor = on;
	return 0;
}

static int option_callback(int val, const char *optarg, int remote)
{
	switch (val) {
	case OPT_PYBUNDLE:
		return set_pybundle(optarg);
	case OPT_PYMONITOR:
		return set_pymonitor(optarg, remote || pl_options_inherited("pymonitor", optarg));
	default:
		return -1;
	}
}

static struct spank_option pybundle_option = {
    .name = "pybundle",
    .arginfo = "FILE[,FILE|DIR...]",
    .usage =
	"[pylaunch] stage these Python environment archives (tar, tar.gz/zst/xz/bz2/lz4, "
	"zip) or directories on every node, in order, and start Python from the node-local copy",
    .has_arg = 1,
    .val = OPT_PYBUNDLE,
    .cb = option_callback,
};

/* has_arg 2: optional argument, so it must be attached: --pymonitor=no. */
static struct spank_option pymonitor_option = {
    .name = "pymonitor",
    .arginfo = "yes|no",
    .usage = "[pylaunch] record the Python packages every process of the job imports "
	     "(default: the site's choice)",
    .has_arg = 2,
    .val = OPT_PYMONITOR,
    .cb = option_callback,
};

int pl_options_register(spank_t sp)
{
	spank_err_t rc;

	rc = spank_option_register(sp, &pybundle_option);
	if (rc == ESPANK_SUCCESS)
		rc = spank_option_register(sp, &pymonitor_option);
	if (rc != ESPANK_SUCCESS) {
		pl_error("cannot register the options: %s", spank_strerror(rc));
		return -1;
	}
	return 0;
}

int pl_options_read_job_script(spank_t sp)
{
	char *arg = NULL;
	int rc = 0;

	if (spank_option_getopt(sp, &pybundle_option, &arg) == ESPANK_SUCCESS &&
	    set_pybundle(arg) < 0)
		rc = -1;
	arg = NULL;
	if (spank_option_getopt(sp, &pymonitor_option, &arg) == ESPANK_SUCCESS &&
	    set_pymonitor(arg, true) < 0)
		rc = -1;
	return rc;
}

int pl_options_set_pybundle(const char *arg)
{
	return set_pybundle(arg);
}

int pl_options_set_pymonitor(const char *arg, bool forwarded)
{
	return set_pymonitor(arg, forwarded);
}

const struct pl_request *pl_options_request(void)
{
	return &request;
}

bool pl_options_used(void)
{
	return request.pybundle || request.pymonitor_given;
}

void pl_options_clear(void)
{
	free(request.pybundle);
	memset(&request, 0, sizeof(request));
}
