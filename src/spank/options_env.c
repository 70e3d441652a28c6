#include "options_env.h"

#include <stdlib.h>

#include "log.h"
#include "options.h"

static bool pybundle_from_env;

static const char *nonempty_env(const char *name)
{
	const char *value = getenv(name);

	return value && *value ? value : NULL;
}

int pl_options_from_user_env(void)
{
	const struct pl_request *req = pl_options_request();
	const char *bundle = nonempty_env(PL_USER_ENV_PYBUNDLE);
	const char *monitor = nonempty_env(PL_USER_ENV_PYMONITOR);

	pybundle_from_env = false;
	if (!req->pybundle && bundle) {
		if (pl_options_set_pybundle(bundle) < 0) {
			pl_error("(the value of %s, used as --pybundle)", PL_USER_ENV_PYBUNDLE);
			return -1;
		}
		pybundle_from_env = true;
		pl_verbose("--pybundle from %s=%s", PL_USER_ENV_PYBUNDLE, bundle);
	}
	if (!req->pymonitor_given && monitor && pl_options_set_pymonitor(monitor, false) < 0) {
		pl_error("(the value of %s, used as --pymonitor)", PL_USER_ENV_PYMONITOR);
		return -1;
	}
	return 0;
}

bool pl_options_pybundle_from_env(void)
{
	return pybundle_from_env;
}

void pl_options_adopt_handed_on(const char *pybundle, const char *pymonitor)
{
	const struct pl_request *req = pl_options_request();

	/* Checked again by pl_request_resolve: the value crossed the user's environment. */
	if (!req->pybundle && pybundle && *pybundle && pl_options_set_pybundle(pybundle) < 0)
		pl_error("%s: ignored", "SPANK_" PL_USER_ENV_PYBUNDLE);
	if (!req->pymonitor_given && pymonitor && *pymonitor &&
	    pl_options_set_pymonitor(pymonitor, true) < 0)
		pl_error("%s: ignored", "SPANK_" PL_USER_ENV_PYMONITOR);
}
