/* Leftovers: stage trees and spools of jobs whose epilog never ran on this node (slurmd
 * restarted or the node rebooted while they ran, or whose epilog ran out of
 * epilog.timeout). */
#ifndef PL_SWEEP_H
#define PL_SWEEP_H

#include <stdint.h>

#include "config.h"

/* Purges the trees (and monitor spools) of every job other than current_job that slurmctld says
 * is over (or no longer knows), until deadline_ms (CLOCK_MONOTONIC ms): what is left then is for
 * the next epilog's sweep. A job it reports as pending, running, suspended or completing is left
 * alone, and so is everything when it cannot be asked. */
void pl_stage_sweep(const struct pl_config *cfg, uint32_t current_job, long long deadline_ms);

#endif
