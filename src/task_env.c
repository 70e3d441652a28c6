#include "task_env.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Slurm's own default when a task has no PATH at all. */
#define DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"

static int add(struct pl_task_env *env, const char *name, char *value, bool unset)
{
	if (!value && !unset)
		return -1;
	env->change[env->n].name = name;
	env->change[env->n].value = value;
	env->n++;
	return 0;
}

static char *prefixed(const char *dir, const char *sub, const char *old)
{
	char *out = NULL;

	if (old && *old)
		return asprintf(&out, "%s/%s:%s", dir, sub, old) < 0 ? NULL : out;
	return asprintf(&out, "%s/%s", dir, sub) < 0 ? NULL : out;
}

int pl_task_env_for_root(const char *root, const char *old_path, const char *old_ld, bool ld_prefix,
			 struct pl_task_env *env)
{
	int rc = 0;

	memset(env, 0, sizeof(*env));
	rc |= add(env, "PATH", prefixed(root, "bin", old_path ? old_path : DEFAULT_PATH), false);
	rc |= add(env, "PYTHONHOME", strdup(root), false);
	rc |= add(env, "PYTHONPATH", NULL, true);
	rc |= add(env, "PYTHONUSERBASE", NULL, true);
	rc |= add(env, "PYTHONNOUSERSITE", strdup("1"), false);
	rc |= add(env, "PYLAUNCH_ROOT", strdup(root), false);
	if (ld_prefix)
		rc |= add(env, "LD_LIBRARY_PATH", prefixed(root, "lib", old_ld), false);
	if (rc) {
		pl_task_env_free(env);
		return -1;
	}
	return 0;
}

void pl_task_env_free(struct pl_task_env *env)
{
	for (size_t i = 0; i < env->n; i++)
		free(env->change[i].value);
	memset(env, 0, sizeof(*env));
}
