/* slurmstepd (remote context): the batch step and every srun step. */
#ifndef PL_CTX_REMOTE_H
#define PL_CTX_REMOTE_H

#include <slurm/spank.h>

int pl_remote_init(spank_t sp, int ac, char **av);
int pl_remote_post_opt(spank_t sp);
int pl_remote_task_init(spank_t sp);
void pl_remote_exit(void);

#endif
