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
/* The Slurm release of the headers the plugin was built with, e.g. "24.11.5". Slurm loads a
 * plugin only when it was built for its own major release (plugin_version), so the one line
 * that says it at load is all a site needs to find a plugin left over from an upgrade. */
const char *pl_plugin_built_for(void);
void pl_plugin_unload(void);

#endif
