/* Stand-ins for the Slurm log functions the plugin calls (the host process
 * provides them at run time): unit tests link these and read the last line. */
#include <stdarg.h>
#include <stdio.h>

#include "slurm_log_stub.h"

char pl_test_last_log[4096];

static void capture(const char *fmt, va_list ap)
{
	vsnprintf(pl_test_last_log, sizeof(pl_test_last_log), fmt, ap);
}

#define STUB(name)                                                                                 \
	void name(const char *fmt, ...)                                                            \
	{                                                                                          \
		va_list ap;                                                                        \
		va_start(ap, fmt);                                                                 \
		capture(fmt, ap);                                                                  \
		va_end(ap);                                                                        \
	}

STUB(slurm_error)
STUB(slurm_info)
STUB(slurm_verbose)
STUB(slurm_debug)
