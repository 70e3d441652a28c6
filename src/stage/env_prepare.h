/* What a staged environment needs once per node, after its tiers are merged and before any task
 * runs, done as the user: conda-pack's bin/conda-unpack for a prefix; for a venv, a check that
 * the interpreter it was made from is on this node, and its console scripts pointed at the staged
 * copy (their shebangs name where the venv was made, as conda's name the build prefix). */
#ifndef PL_ENV_PREPARE_H
#define PL_ENV_PREPARE_H

#include <stddef.h>

#include "env_kind.h"

/* 0, or -1 with "WHAT: reason" in msg. */
int pl_env_prepare(const struct pl_env_layout *env, char *msg, size_t len);

/* The parts, for the unit tests. */
int pl_venv_check_home(const char *venv, char *msg, size_t len);
/* Rewrites "#!OLD/..." in the first two lines of every regular file in venv/bin, OLD being the
 * venv's location when it was made (bin/activate's VIRTUAL_ENV); *count: files rewritten. */
int pl_venv_rewrite_scripts(const char *venv, unsigned *count, char *msg, size_t len);

#endif
