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

/* The layout's entries joined, NULL (unset) when there are none. */
static int add_pythonpath(struct pl_task_env *env, const struct pl_env_layout *layout)
{
	size_t need = 1;
	char *joined;

	if (!layout->npaths)
		return add(env, "PYTHONPATH", NULL, true);
	for (size_t i = 0; i < layout->npaths; i++)
		need += strlen(layout->paths[i]) + 1;
	joined = calloc(1, need);
	if (!joined)
		return -1;
	for (size_t i = 0; i < layout->npaths; i++) {
		if (i)
			strcat(joined, ":");
		strcat(joined, layout->paths[i]);
	}
	return add(env, "PYTHONPATH", joined, false);
}

static int add_path(struct pl_task_env *env, const struct pl_env_layout *layout,
		    const char *old_path)
{
	const char *old = old_path ? old_path : DEFAULT_PATH;

	return add(env, "PATH", layout->home_bin ? prefixed(layout->home, "bin", old) : strdup(old),
		   false);
}

static int add_by_kind(struct pl_task_env *env, const struct pl_env_layout *layout,
		       const char *old_ld, bool ld_prefix)
{
	int rc = 0;

	switch (layout->kind) {
	case PL_KIND_PREFIX:
		rc |= add(env, "PYTHONHOME", strdup(layout->home), false);
		if (ld_prefix)
			rc |= add(env, "LD_LIBRARY_PATH", prefixed(layout->home, "lib", old_ld),
				  false);
		break;
	case PL_KIND_VENV:
		/* Python finds the venv from pyvenv.cfg beside bin/python; a PYTHONHOME would
		 * point the interpreter's standard library into the venv, which has none. */
		rc |= add(env, "PYTHONHOME", NULL, true);
		rc |= add(env, "VIRTUAL_ENV", strdup(layout->home), false);
		break;
	default:
		rc |= add(env, "PYTHONHOME", NULL, true);
		break;
	}
	return rc;
}

int pl_task_env_for_tree(const char *root, const struct pl_env_layout *layout, const char *old_path,
			 const char *old_ld, bool ld_prefix, struct pl_task_env *env)
{
	int rc = 0;

	memset(env, 0, sizeof(*env));
	rc |= add_path(env, layout, old_path);
	rc |= add_by_kind(env, layout, old_ld, ld_prefix);
	rc |= add_pythonpath(env, layout);
	rc |= add(env, "PYTHONUSERBASE", NULL, true);
	rc |= add(env, "PYTHONNOUSERSITE", strdup("1"), false);
	rc |= add(env, "PYLAUNCH_ROOT", strdup(root), false);
	rc |= add(env, "PYLAUNCH_KIND", strdup(pl_env_kind_name(layout->kind)), false);
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
