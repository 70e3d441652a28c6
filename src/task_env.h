/* The environment of a task started from a staged tree (paper 004, Table 1). */
#ifndef PL_TASK_ENV_H
#define PL_TASK_ENV_H

#include <stdbool.h>
#include <stddef.h>

#define PL_TASK_ENV_MAX 8

struct pl_env_change {
	const char *name;
	char *value; /* NULL: unset */
};

struct pl_task_env {
	size_t n;
	struct pl_env_change change[PL_TASK_ENV_MAX];
};

/* PATH and LD_LIBRARY_PATH (when ld_prefix) get root's bin/ and lib/ in front;
 * PYTHONHOME is root; PYTHONPATH and PYTHONUSERBASE go, PYTHONNOUSERSITE is
 * set, so nothing on the shared file system is searched; PYLAUNCH_ROOT names
 * the tree for scripts. old_*: the task's values, NULL if unset. */
int pl_task_env_for_root(const char *root, const char *old_path, const char *old_ld, bool ld_prefix,
			 struct pl_task_env *env);
void pl_task_env_free(struct pl_task_env *env);

#endif
