/* The configuration: defaults, plugstack settings, freeing, and the file read from disk (its
 * text goes to the YAML reader, config_yaml.c). The schema is config_schema.c, a value's parsing
 * config_value.c, the checks config_validate.c. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config_internal.h"

/* ------------------------------------------------------------------ defaults, set, free */

void pl_config_init_defaults(struct pl_config *cfg)
{
	struct problem p;

	memset(cfg, 0, sizeof(*cfg));
	cfg->source = strdup(DEFAULTS_SOURCE);
	/* Only allocation can fail here (the unit tests parse every default); validate reports
	 * the field left NULL. */
	for (size_t i = 0; i < ARRAY_SIZE(config_keys); i++)
		if (config_keys[i].def)
			cfg_apply_text(&config_keys[i], cfg, config_keys[i].def, &p);
}

void pl_config_free(struct pl_config *cfg)
{
	cfg_free_fields(config_keys, ARRAY_SIZE(config_keys), cfg);
	free(cfg->source);
	memset(cfg, 0, sizeof(*cfg));
}

int pl_config_set(struct pl_config *cfg, const char *name, const char *value, char *err,
		  size_t errlen)
{
	const struct key *k;
	struct problem p;
	struct shown shown_name, shown_value;

	int rc;

	name = name ? name : "";
	value = value ? value : "";
	k = cfg_find_key(name);
	if (k)
		rc = cfg_apply_text(k, cfg, value, &p);
	else
		rc = cfg_unknown_key(&p, name, true);
	if (rc < 0)
		snprintf(err, errlen, "plugstack argument '%s=%s': %s", cfg_show(&shown_name, name),
			 cfg_show(&shown_value, value), p.reason);
	return rc;
}

/* ------------------------------------------------------------------ reading the file */

/* Opens path for reading if it is a regular file; *fd stays -1 when it does not exist. */
static int open_regular_file(const char *path, int *fd, char *err, size_t errlen)
{
	struct stat st;

	/* O_NONBLOCK: a FIFO put there must not hang slurmd; it is refused below. */
	*fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (*fd < 0) {
		if (errno == ENOENT)
			return 0;
		cfg_file_error(err, errlen, path, strerror(errno));
		return -1;
	}
	if (fstat(*fd, &st) < 0)
		cfg_file_error(err, errlen, path, strerror(errno));
	else if (S_ISDIR(st.st_mode))
		cfg_file_error(err, errlen, path, strerror(EISDIR));
	else if (!S_ISREG(st.st_mode))
		cfg_file_error(err, errlen, path, "not a regular file");
	else
		return 0;
	close(*fd);
	*fd = -1;
	return -1;
}

static int read_up_to(int fd, char *buf, size_t cap, size_t *len)
{
	*len = 0;
	while (*len < cap) {
		ssize_t n = read(fd, buf + *len, cap - *len);

		if (n == 0)
			break;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		*len += (size_t)n;
	}
	return 0;
}

/* The whole file in *text (not NUL-terminated); *text stays NULL when it does not exist. */
static int read_config_file(const char *path, char **text, size_t *len, char *err, size_t errlen)
{
	char *buf = NULL;
	int fd, rc = -1;

	*text = NULL;
	if (open_regular_file(path, &fd, err, errlen) < 0)
		return -1;
	if (fd < 0)
		return 0;
	/* One byte more than allowed: reading it proves the file too large, however it grew. */
	buf = malloc(PL_CONFIG_MAX_FILE_SIZE + 1);
	if (!buf) {
		cfg_file_error(err, errlen, path, strerror(ENOMEM));
		goto out;
	}
	if (read_up_to(fd, buf, PL_CONFIG_MAX_FILE_SIZE + 1, len) < 0) {
		cfg_file_error(err, errlen, path, strerror(errno));
		goto out;
	}
	if (*len > PL_CONFIG_MAX_FILE_SIZE) {
		cfg_file_error(err, errlen, path,
			       "larger than 1 MiB: not a pylaunch configuration");
		goto out;
	}
	*text = buf;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	close(fd);
	return rc;
}

int pl_config_load_file(struct pl_config *cfg, const char *path, char *err, size_t errlen)
{
	char *text = NULL, *source = NULL;
	size_t len = 0;
	int rc = -1;

	if (!path || !*path) {
		snprintf(err, errlen, "no configuration file named");
		return -1;
	}
	if (read_config_file(path, &text, &len, err, errlen) < 0)
		goto out;
	if (!text) {
		rc = 0; /* no file: cfg stays as it is */
		goto out;
	}
	source = strdup(path);
	if (!source) {
		cfg_file_error(err, errlen, path, strerror(ENOMEM));
		goto out;
	}
	if (cfg_load_text(cfg, path, text, len, err, errlen) < 0)
		goto out;
	free(cfg->source);
	cfg->source = source;
	source = NULL;
	rc = 0;
out:
	free(source);
	free(text);
	return rc;
}
