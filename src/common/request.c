#include "request.h"

#include <stdlib.h>
#include <string.h>

#include "optparse.h"

static int resolve_pybundle(const char *value, const char *base_dir, char **out, char *err,
			    size_t errlen)
{
	struct pl_bundle_list list;

	if (pl_bundle_list_parse(value, base_dir, &list, err, errlen) < 0)
		return -1;
	*out = pl_bundle_list_join(&list);
	pl_bundle_list_free(&list);
	return *out ? 0 : -1;
}

int pl_request_resolve(const struct pl_request *req, const char *normalized, const char *base_dir,
		       bool monitor_default, struct pl_resolved *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	out->pymonitor = req->pymonitor_given ? req->pymonitor : monitor_default;
	out->pymonitor_from = req->pymonitor_given ? "option" : "site default";
	/* --pybundle=no: nothing to stage (it opts out of the site's default bundle). */
	if (!req->pybundle || strcmp(req->pybundle, "no") == 0)
		return 0;
	/* The normalised list is already absolute; parsing it again re-checks
	 * it, since it crossed a boundary the user controls (the environment). */
	if (normalized && *normalized)
		return resolve_pybundle(normalized, "/", &out->pybundle, err, errlen);
	return resolve_pybundle(req->pybundle, base_dir, &out->pybundle, err, errlen);
}

void pl_resolved_free(struct pl_resolved *r)
{
	free(r->pybundle);
	memset(r, 0, sizeof(*r));
}
