/* Prolog and epilog (job_script context): root, on every node of the job. */
#ifndef PL_CTX_JOB_SCRIPT_H
#define PL_CTX_JOB_SCRIPT_H

#include <slurm/spank.h>

int pl_job_script_prolog(spank_t sp, int ac, char **av);
int pl_job_script_epilog(spank_t sp, int ac, char **av);

/* slurm_spank_exit in slurmstepd: the epilog's work when Slurm will not call job_epilog
 * (PrologFlags=RunInJob) and this is the job's extern step; nothing otherwise. */
void pl_job_script_extern_step_exit(spank_t sp, int ac, char **av);

#endif
