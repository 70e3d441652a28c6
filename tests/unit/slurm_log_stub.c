/* Stand-ins for the Slurm log functions the plugin calls (the host process
 * provides them at run time): unit tests link these and read what was logged. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slurm_log_stub.h"

#define KEPT_MAX (64 * 1024)

char pl_test_last_log[4096];

static char kept[KEPT_MAX];
static size_t kept_len;
static size_t kept_count;

void pl_test_log_clear(void)
{
	kept[0] = '\0';
	kept_len = 0;
	kept_count = 0;
}

size_t pl_test_log_count(void)
{
	return kept_count;
}

bool pl_test_log_contains(const char *needle)
{
	return strstr(kept, needle) != NULL;
}

const char *pl_test_log_text(void)
{
	return kept;
}

static void keep(const char *level)
{
	size_t len = strlen(level) + 2 + strlen(pl_test_last_log) + 1;

	if (getenv("PL_TEST_LOG"))
		fprintf(stderr, "%s: %s\n", level, pl_test_last_log);
	kept_count++;
	if (kept_len + len + 1 > KEPT_MAX)
		kept_len = 0; /* only the latest lines matter to a test */
	kept_len += (size_t)snprintf(kept + kept_len, KEPT_MAX - kept_len, "%s: %s\n", level,
				     pl_test_last_log);
}

static void capture(const char *level, const char *fmt, va_list ap)
{
	vsnprintf(pl_test_last_log, sizeof(pl_test_last_log), fmt, ap);
	keep(level);
}

#define STUB(name, level)                                                                          \
	void name(const char *fmt, ...)                                                            \
	{                                                                                          \
		va_list ap;                                                                        \
		va_start(ap, fmt);                                                                 \
		capture(level, fmt, ap);                                                           \
		va_end(ap);                                                                        \
	}

STUB(slurm_error, "error")
STUB(slurm_info, "info")
STUB(slurm_verbose, "verbose")
STUB(slurm_debug, "debug")
