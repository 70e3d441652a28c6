#include "optparse.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void pop_segment(char *out, size_t *len)
{
	while (*len > 1 && out[*len - 1] != '/')
		(*len)--;
	if (*len > 1)
		(*len)--;
	out[*len] = '\0';
}

static int push_segment(char *out, size_t *len, const char *seg, size_t seglen)
{
	size_t need = *len + (*len > 1 ? 1 : 0) + seglen;

	if (need >= PATH_MAX)
		return -1;
	if (*len > 1)
		out[(*len)++] = '/';
	memcpy(out + *len, seg, seglen);
	*len += seglen;
	out[*len] = '\0';
	return 0;
}

/* Folds path into out (which holds an absolute, normalised prefix). */
static int fold_segments(char *out, size_t *len, const char *path)
{
	const char *p = path;

	while (*p) {
		const char *end = strchrnul(p, '/');
		size_t seglen = (size_t)(end - p);

		if (seglen == 2 && p[0] == '.' && p[1] == '.')
			pop_segment(out, len);
		else if (seglen > 0 && !(seglen == 1 && p[0] == '.') &&
			 push_segment(out, len, p, seglen) < 0)
			return -1;
		p = *end ? end + 1 : end;
	}
	return 0;
}

char *pl_path_absolute(const char *path, const char *base_dir)
{
	char out[PATH_MAX] = "/";
	size_t len = 1;

	if (!path || !*path || !base_dir || base_dir[0] != '/') {
		errno = EINVAL;
		return NULL;
	}
	if ((path[0] != '/' && fold_segments(out, &len, base_dir) < 0) ||
	    fold_segments(out, &len, path) < 0) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	return strdup(out);
}

static bool has_control_char(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (iscntrl((unsigned char)s[i]))
			return true;
	return false;
}

/* One element of the list, [s, s+n), checked and made absolute. */
static int parse_element(const char *s, size_t n, size_t index, const char *base_dir,
			 struct pl_bundle_list *out, char *err, size_t errlen)
{
	char elem[PATH_MAX];

	if (n == 0) {
		snprintf(err, errlen, "--pybundle: file name %zu of the list is empty", index + 1);
		return -1;
	}
	if (n >= sizeof(elem)) {
		snprintf(err, errlen, "--pybundle: file name %zu is longer than %d bytes",
			 index + 1, PATH_MAX - 1);
		return -1;
	}
	if (has_control_char(s, n)) {
		snprintf(err, errlen, "--pybundle: file name %zu contains a control character",
			 index + 1);
		return -1;
	}
	if (out->n == PL_MAX_BUNDLES) {
		snprintf(err, errlen, "--pybundle: more than %d bundles", PL_MAX_BUNDLES);
		return -1;
	}
	memcpy(elem, s, n);
	elem[n] = '\0';
	out->paths[out->n] = pl_path_absolute(elem, base_dir);
	if (!out->paths[out->n]) {
		snprintf(err, errlen, "--pybundle: %s: %s", elem, strerror(errno));
		return -1;
	}
	out->n++;
	return 0;
}

int pl_bundle_list_parse(const char *arg, const char *base_dir, struct pl_bundle_list *out,
			 char *err, size_t errlen)
{
	const char *p = arg;
	size_t index = 0;

	memset(out, 0, sizeof(*out));
	if (!arg || !*arg) {
		snprintf(err, errlen,
			 "--pybundle: no file given (expected --pybundle=FILE[,FILE|DIR...])");
		return -1;
	}
	if (!base_dir || base_dir[0] != '/') {
		snprintf(
		    err, errlen,
		    "--pybundle: cannot resolve relative paths without an absolute base directory");
		return -1;
	}
	for (;;) {
		const char *end = strchrnul(p, ',');

		if (parse_element(p, (size_t)(end - p), index++, base_dir, out, err, errlen) < 0)
			goto fail;
		if (!*end)
			return 0;
		p = end + 1;
	}
fail:
	pl_bundle_list_free(out);
	return -1;
}

char *pl_bundle_list_join(const struct pl_bundle_list *list)
{
	size_t total = 1;
	char *joined;
	char *p;

	for (size_t i = 0; i < list->n; i++)
		total += strlen(list->paths[i]) + 1;
	joined = malloc(total);
	if (!joined)
		return NULL;
	p = joined;
	*p = '\0';
	for (size_t i = 0; i < list->n; i++) {
		size_t len = strlen(list->paths[i]);

		if (i > 0)
			*p++ = ',';
		memcpy(p, list->paths[i], len + 1);
		p += len;
	}
	return joined;
}

void pl_bundle_list_free(struct pl_bundle_list *list)
{
	for (size_t i = 0; i < list->n; i++)
		free(list->paths[i]);
	memset(list, 0, sizeof(*list));
}

int pl_monitor_parse(const char *arg, bool *on, char *err, size_t errlen)
{
	if (!arg || strcasecmp(arg, "yes") == 0) {
		*on = true;
		return 0;
	}
	if (strcasecmp(arg, "no") == 0) {
		*on = false;
		return 0;
	}
	snprintf(err, errlen, "--pymonitor=%s: expected yes or no (or --pymonitor alone for yes)",
		 arg);
	return -1;
}
