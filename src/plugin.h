/* Process-wide state of the plugin: the site configuration, loaded once. */
#ifndef PL_PLUGIN_H
#define PL_PLUGIN_H

#include <slurm/spank.h>

#include "config.h"

/* Loads the configuration named by the plugstack arguments, once per process.
 * A broken configuration is remembered, not fatal: every context decides what
 * it means there (refuse a submission, fail a task, never fail a prolog). */
void pl_plugin_load(int ac, char **av);
const struct pl_config *pl_plugin_config(void);
/* NULL when the configuration is good. */
const char *pl_plugin_config_error(void);
/* Slurm's plugin ABI changes with every major release; a mismatch is logged. */
int pl_plugin_check_slurm_version(spank_t sp);
void pl_plugin_unload(void);

#endif
