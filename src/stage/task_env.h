/* The environment of a task started from a staged tree (paper 004, Table 1), by the tree's kind
 * (README, "Kinds of bundle"). */
#ifndef PL_TASK_ENV_H
#define PL_TASK_ENV_H

#include <stdbool.h>
#include <stddef.h>

#include "env_kind.h"

#define PL_TASK_ENV_MAX 12

struct pl_env_change {
	const char *name;
	char *value; /* NULL: unset */
};

struct pl_task_env {
	size_t n;
	struct pl_env_change change[PL_TASK_ENV_MAX];
};

/* Always: PYTHONPATH and PYTHONUSERBASE purged of the user's values, PYTHONNOUSERSITE set, so
 * nothing on the shared file system is searched; PYLAUNCH_ROOT names the tree, PYLAUNCH_KIND its
 * kind; the environment's bin/ (if any) first on PATH; the layout's paths on PYTHONPATH.
 * A prefix: PYTHONHOME is its home, and LD_LIBRARY_PATH (when ld_prefix) gets its lib/.
 * A venv: no PYTHONHOME, VIRTUAL_ENV. Packages, code: no PYTHONHOME, the node's interpreter runs.
 * old_*: the task's values, NULL if unset. */
int pl_task_env_for_tree(const char *root, const struct pl_env_layout *layout, const char *old_path,
			 const char *old_ld, bool ld_prefix, struct pl_task_env *env);
void pl_task_env_free(struct pl_task_env *env);

#endif
