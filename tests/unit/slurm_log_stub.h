/* The last line a unit test's code logged through slurm_*(). */
#ifndef PL_SLURM_LOG_STUB_H
#define PL_SLURM_LOG_STUB_H

extern char pl_test_last_log[4096];

void slurm_error(const char *fmt, ...);
void slurm_info(const char *fmt, ...);
void slurm_verbose(const char *fmt, ...);
void slurm_debug(const char *fmt, ...);

#endif
