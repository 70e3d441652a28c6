/* srun (local context) and sbatch/salloc (allocator context): submit time. */
#ifndef PL_CTX_SUBMIT_H
#define PL_CTX_SUBMIT_H

#include <slurm/spank.h>

int pl_submit_init(spank_t sp, int ac, char **av);
int pl_submit_post_opt(spank_t sp);

#endif
