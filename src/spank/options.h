/* The plugin's command-line options and what a job asked for with them. */
#ifndef PL_OPTIONS_H
#define PL_OPTIONS_H

#include <stdbool.h>

#include <slurm/spank.h>

#include "request.h"

/* The normalised values travel under these names: set by srun/sbatch/salloc in
 * the job's environment (the SPANK_ prefix survives --export=NONE) and, through
 * spank_job_control_setenv(), in the prolog/epilog environment, which adds the
 * same SPANK_ prefix. */
#define PL_JOB_CONTROL_PYBUNDLE "PYLAUNCH_PYBUNDLE"
#define PL_JOB_CONTROL_PYBUNDLE_KEY "PYLAUNCH_PYBUNDLE_KEY"
#define PL_JOB_CONTROL_PYMONITOR "PYLAUNCH_PYMONITOR"
#define PL_ENV_PYBUNDLE "SPANK_" PL_JOB_CONTROL_PYBUNDLE
#define PL_ENV_PYBUNDLE_KEY "SPANK_" PL_JOB_CONTROL_PYBUNDLE_KEY
#define PL_ENV_PYMONITOR "SPANK_" PL_JOB_CONTROL_PYMONITOR

/* sbatch and salloc ignore a static spank_options table: register here, from
 * slurm_spank_init, in every context that parses options. */
int pl_options_register(spank_t sp);
/* Prolog/epilog: slurm_spank_init is not called there, so no callback ran. */
int pl_options_read_job_script(spank_t sp);
/* As if the option had been given (the same checks): for a value that came another way
 * (options_env.c). */
int pl_options_set_pybundle(const char *arg);
int pl_options_set_pymonitor(const char *arg, bool forwarded);
const struct pl_request *pl_options_request(void);
bool pl_options_used(void);
/* True when arg is the job's own value of the option, inherited by an srun
 * inside an allocation rather than typed on its command line. */
bool pl_options_inherited(const char *option, const char *arg);
void pl_options_clear(void);

#endif
