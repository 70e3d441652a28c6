#include "pl_build.h" /* configure: PL_DEFAULT_CONFIG, PL_BUILT_SLURM_* */

#include "plugin.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "optparse.h"
#include "site.h"

static struct {
	bool loaded;
	bool ok;
	struct pl_config cfg;
	char error[PL_ERRLEN];
} plugin;

void pl_plugin_load(int ac, char **av)
{
	if (plugin.loaded)
		return;
	plugin.loaded = true;
	plugin.ok = pl_site_load(ac, av, PL_DEFAULT_CONFIG, &plugin.cfg, plugin.error,
				 sizeof(plugin.error)) == 0;
	pl_log_set_debug(plugin.ok && plugin.cfg.debug);
}

const struct pl_config *pl_plugin_config(void)
{
	return &plugin.cfg;
}

const char *pl_plugin_config_error(void)
{
	return plugin.ok ? NULL : plugin.error;
}

int pl_plugin_check_slurm_version(spank_t sp)
{
	char *major = NULL;
	char *minor = NULL;
	char built[32];
	char running[32];

	if (spank_get_item(sp, S_SLURM_VERSION_MAJOR, &major) != ESPANK_SUCCESS ||
	    spank_get_item(sp, S_SLURM_VERSION_MINOR, &minor) != ESPANK_SUCCESS)
		return 0;
	snprintf(built, sizeof(built), "%d.%02d", PL_BUILT_SLURM_MAJOR, PL_BUILT_SLURM_MINOR);
	snprintf(running, sizeof(running), "%s.%02d", major, atoi(minor));
	if (strcmp(built, running) == 0)
		return 0;
	pl_error("built for Slurm %s but loaded by Slurm %s: rebuild pylaunch against this release",
		 built, running);
	return -1;
}

void pl_plugin_unload(void)
{
	if (plugin.loaded)
		pl_config_free(&plugin.cfg);
	memset(&plugin, 0, sizeof(plugin));
}
