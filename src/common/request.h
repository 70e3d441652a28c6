/* What a job asked of pylaunch, resolved for the context at hand. */
#ifndef PL_REQUEST_H
#define PL_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

/* The options as given (raw); filled by the option callbacks. */
struct pl_request {
	char *pybundle;
	bool pymonitor_given;
	bool pymonitor;
};

struct pl_resolved {
	char *pybundle; /* absolute, comma-joined; NULL if not asked for */
	bool pymonitor;
	const char *pymonitor_from; /* "option" or "site default" */
};

/* normalized: the list as the submitting command normalised it (NULL if it did
 * not reach this context); base_dir: what a raw relative path is resolved
 * against when it did not. */
int pl_request_resolve(const struct pl_request *req, const char *normalized, const char *base_dir,
		       bool monitor_default, struct pl_resolved *out, char *err, size_t errlen);
void pl_resolved_free(struct pl_resolved *r);

#endif
