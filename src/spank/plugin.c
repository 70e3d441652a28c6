#include "pl_build.h" /* configure: PL_DEFAULT_CONFIG, PL_BUILT_SLURM_RELEASE */

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

/* slurmd's start-up line says it: a build whose tree stream goes in clear is not for a site. */
const char *pl_plugin_built_for(void)
{
#ifdef PL_TREE_CIPHER_DISABLED
	return PL_BUILT_SLURM_RELEASE " with --disable-tree-cipher: the tree stream is sent in "
				      "clear, for benchmarks only";
#else
	return PL_BUILT_SLURM_RELEASE;
#endif
}

void pl_plugin_unload(void)
{
	if (plugin.loaded)
		pl_config_free(&plugin.cfg);
	memset(&plugin, 0, sizeof(plugin));
}
