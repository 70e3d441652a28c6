/* The options without a command line: launchers that cannot pass SPANK options (slurmrestd,
 * batchspawner, Nextflow, Snakemake) set PYLAUNCH_PYBUNDLE / PYLAUNCH_PYMONITOR in the submitting
 * environment instead. An option given on the command line wins. */
#ifndef PL_OPTIONS_ENV_H
#define PL_OPTIONS_ENV_H

#include <stdbool.h>

#define PL_USER_ENV_PYBUNDLE "PYLAUNCH_PYBUNDLE"
#define PL_USER_ENV_PYMONITOR "PYLAUNCH_PYMONITOR"
/* The raw value an earlier submission (sbatch, salloc) of this job took from the environment:
 * an srun inside the job that sees the same value uses what the job staged. */
#define PL_ENV_PYBUNDLE_FROM_ENV "SPANK_PYLAUNCH_PYBUNDLE_FROM_ENV"

/* srun, sbatch, salloc: the variables stand for options not given. -1: a value is malformed
 * (logged, as for the option). */
int pl_options_from_user_env(void);
/* True when the --pybundle value came from PYLAUNCH_PYBUNDLE. */
bool pl_options_pybundle_from_env(void);

/* slurmstepd, prolog, epilog: Slurm forwards only options given on a command line; the values
 * the submitting side handed on (SPANK_PYLAUNCH_PYBUNDLE, SPANK_PYLAUNCH_PYMONITOR; NULL if
 * absent) stand for the options not given. */
void pl_options_adopt_handed_on(const char *pybundle, const char *pymonitor);

#endif
