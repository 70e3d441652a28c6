#include "site.h"

#include <stdio.h>
#include <string.h>

#define CONFIG_ARG "config="

static int find_config_path(int ac, char *const *av, const char *default_path, const char **path,
			    char *err, size_t errlen)
{
	*path = NULL;
	for (int i = 0; i < ac; i++) {
		if (strncmp(av[i], CONFIG_ARG, strlen(CONFIG_ARG)) != 0)
			continue;
		if (*path) {
			snprintf(err, errlen, "plugstack argument '%s': config= given twice",
				 av[i]);
			return -1;
		}
		*path = av[i] + strlen(CONFIG_ARG);
		if (**path != '/') {
			snprintf(err, errlen, "plugstack argument '%s': expected an absolute path",
				 av[i]);
			return -1;
		}
	}
	if (!*path)
		*path = default_path;
	return 0;
}

static int apply_override(struct pl_config *cfg, const char *arg, char *err, size_t errlen)
{
	char key[128];
	const char *eq = strchr(arg, '=');

	if (!eq || eq == arg || (size_t)(eq - arg) >= sizeof(key)) {
		snprintf(
		    err, errlen,
		    "plugstack argument '%s': expected KEY=VALUE (e.g. config=PATH, tree.fanout=4)",
		    arg);
		return -1;
	}
	memcpy(key, arg, (size_t)(eq - arg));
	key[eq - arg] = '\0';
	return pl_config_set(cfg, key, eq + 1, err, errlen);
}

static int apply_overrides(struct pl_config *cfg, int ac, char *const *av, char *err, size_t errlen)
{
	for (int i = 0; i < ac; i++) {
		if (strncmp(av[i], CONFIG_ARG, strlen(CONFIG_ARG)) == 0)
			continue;
		if (apply_override(cfg, av[i], err, errlen) < 0)
			return -1;
	}
	return 0;
}

int pl_site_load(int ac, char *const *av, const char *default_path, struct pl_config *cfg,
		 char *err, size_t errlen)
{
	const char *path;

	pl_config_init_defaults(cfg);
	if (find_config_path(ac, av, default_path, &path, err, errlen) < 0 ||
	    pl_config_load_file(cfg, path, err, errlen) < 0 ||
	    apply_overrides(cfg, ac, av, err, errlen) < 0 ||
	    pl_config_validate(cfg, err, errlen) < 0)
		goto fail;
	return 0;
fail:
	pl_config_free(cfg);
	pl_config_init_defaults(cfg);
	return -1;
}
