/* The site configuration as the plugstack.conf line selects and amends it. */
#ifndef PL_SITE_H
#define PL_SITE_H

#include <stddef.h>

#include "config.h"

/* Arguments: "config=PATH" picks the YAML file (default_path otherwise); every
 * other "KEY=VALUE" overrides one key of it, after the file is read. On failure
 * cfg holds the built-in defaults and err says what is wrong and where. */
int pl_site_load(int ac, char *const *av, const char *default_path, struct pl_config *cfg,
		 char *err, size_t errlen);

#endif
