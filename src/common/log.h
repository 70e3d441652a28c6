/* Messages of the plugin: one prefix, errno text on errors, debug behind a switch. */
#ifndef PL_LOG_H
#define PL_LOG_H

#include <stdbool.h>

#define PL_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* When on, pl_debug() lines are logged at info level so they reach the slurmd
 * log without raising SlurmdDebug for every plugin on the node. */
void pl_log_set_debug(bool on);
bool pl_log_debug_enabled(void);

void pl_error(const char *fmt, ...) PL_PRINTF(1, 2);
/* Appends ": <strerror(errnum)>" to the message. */
void pl_error_errno(int errnum, const char *fmt, ...) PL_PRINTF(2, 3);
void pl_info(const char *fmt, ...) PL_PRINTF(1, 2);
void pl_verbose(const char *fmt, ...) PL_PRINTF(1, 2);
void pl_debug(const char *fmt, ...) PL_PRINTF(1, 2);

#endif
