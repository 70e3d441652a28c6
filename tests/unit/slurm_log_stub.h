/* Stand-ins for the Slurm log functions the plugin calls (the host process provides
 * them at run time): unit tests link slurm_log_stub.c and look at what was logged. */
#ifndef PL_SLURM_LOG_STUB_H
#define PL_SLURM_LOG_STUB_H

#include <stdbool.h>
#include <stddef.h>

/* The last line logged, as formatted (without a level). */
extern char pl_test_last_log[4096];

void slurm_error(const char *fmt, ...);
void slurm_info(const char *fmt, ...);
void slurm_verbose(const char *fmt, ...);
void slurm_debug(const char *fmt, ...);

/* Every line since the last clear is kept too (the last 64 KiB), as "LEVEL: text":
 * forgets them, counts them, looks for needle in them, or gives them one a line.
 * With PL_TEST_LOG set in the environment, lines are also echoed to stderr. */
void pl_test_log_clear(void);
size_t pl_test_log_count(void);
bool pl_test_log_contains(const char *needle);
const char *pl_test_log_text(void);

#endif
