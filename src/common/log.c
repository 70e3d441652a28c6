#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <slurm/spank.h>

#define PL_LOG_MAX 2048

enum pl_level { PL_LEVEL_ERROR, PL_LEVEL_INFO, PL_LEVEL_VERBOSE, PL_LEVEL_DEBUG };

static bool debug_on;

void pl_log_set_debug(bool on)
{
	debug_on = on;
}

bool pl_log_debug_enabled(void)
{
	return debug_on;
}

/* slurm_*() take a format: the message always goes through "%s" so a '%' in a
 * user-supplied path can never be read as a conversion. */
static void emit(enum pl_level level, int errnum, const char *fmt, va_list ap)
{
	char buf[PL_LOG_MAX];
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);

	if (errnum && n >= 0 && (size_t)n < sizeof(buf))
		snprintf(buf + n, sizeof(buf) - (size_t)n, ": %s", strerror(errnum));

	switch (level) {
	case PL_LEVEL_ERROR:
		slurm_error("pylaunch: %s", buf);
		break;
	case PL_LEVEL_INFO:
		slurm_info("pylaunch: %s", buf);
		break;
	case PL_LEVEL_VERBOSE:
		slurm_verbose("pylaunch: %s", buf);
		break;
	case PL_LEVEL_DEBUG:
		if (debug_on)
			slurm_info("pylaunch: debug: %s", buf);
		else
			slurm_debug("pylaunch: %s", buf);
		break;
	}
}

#define PL_EMIT(level, errnum)                                                                     \
	do {                                                                                       \
		va_list ap;                                                                        \
		va_start(ap, fmt);                                                                 \
		emit(level, errnum, fmt, ap);                                                      \
		va_end(ap);                                                                        \
	} while (0)

void pl_error(const char *fmt, ...)
{
	PL_EMIT(PL_LEVEL_ERROR, 0);
}

void pl_error_errno(int errnum, const char *fmt, ...)
{
	PL_EMIT(PL_LEVEL_ERROR, errnum);
}

void pl_info(const char *fmt, ...)
{
	PL_EMIT(PL_LEVEL_INFO, 0);
}

void pl_verbose(const char *fmt, ...)
{
	PL_EMIT(PL_LEVEL_VERBOSE, 0);
}

void pl_debug(const char *fmt, ...)
{
	PL_EMIT(PL_LEVEL_DEBUG, 0);
}
