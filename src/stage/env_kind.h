/* What kind of Python environment a staged tree is, once all its tiers are merged, and where the
 * task must look for it (README, "Kinds of bundle"). Reads the tree only: run as the user. */
#ifndef PL_ENV_KIND_H
#define PL_ENV_KIND_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

enum pl_env_kind {
	PL_KIND_PREFIX,	  /* its own interpreter and standard library: bin/python3,
			     lib/pythonX.Y/os.py */
	PL_KIND_VENV,	  /* pyvenv.cfg: an interpreter that lives elsewhere on the node */
	PL_KIND_PACKAGES, /* no interpreter: a pip --target directory or a site-packages tree */
	PL_KIND_CODE,	  /* anything else: application code for the node's interpreter */
};

#define PL_ENV_PATHS_MAX 4

struct pl_env_layout {
	enum pl_env_kind kind;
	/* The environment itself: the tree, or its one top-level directory when the archive
	 * put everything under one (conda-pack --arcroot, python-build-standalone's python/). */
	char home[PATH_MAX];
	bool home_bin; /* home/bin is a directory: it goes first on PATH */
	size_t npaths; /* PYTHONPATH entries, in order */
	char paths[PL_ENV_PATHS_MAX][PATH_MAX];
};

/* Fills out from the tree; -1 with errno only when the tree itself cannot be opened. */
int pl_env_detect(const char *tree, struct pl_env_layout *out);

const char *pl_env_kind_name(enum pl_env_kind kind);

/* The staging summary starts "kind=NAME;": NAME into buf, "-" when absent. */
void pl_env_kind_of_summary(const char *summary, char *buf, size_t len);

#endif
