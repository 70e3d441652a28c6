/* Questions for Slurm's own library that are not safe to ask in the process we run in.
 *
 * From 23.02 slurmstepd (which runs the job prolog and epilog) loads only a "lite" copy of
 * slurm.conf and none of the auth/hash plugins: slurm_load_job() there crashes (23.02) or
 * calls fatal() (23.11+), and slurm_conf_get_addr() knows no node. SchedMD's answer is
 * slurm_init() first, which re-reads the configuration and loads plugins for good - and can
 * fatal() too. So each question is asked in a forked child that does slurm_conf_reinit() and
 * slurm_init() and writes its answers to a pipe: whatever goes wrong there (a fault, a fatal,
 * a hang, killed after a timeout) is "cannot tell" here, never a failed prolog or epilog. */
#ifndef PL_SLURM_CHILD_H
#define PL_SLURM_CHILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum pl_job_fate {
	PL_JOB_UNKNOWN = 0, /* cannot tell: the tree stays */
	PL_JOB_ALIVE = 1,   /* pending, running, suspended or completing */
	PL_JOB_OVER = 2,    /* ended, or unknown to slurmctld (purged) */
};

/* At most this many jobs per question; the rest wait for a later one. */
#define PL_SLURM_MAX_JOBS 256

/* The fate of each of the n jobs, from slurmctld. Returns how many got an answer; err says
 * why the others did not (the child's exit, a timeout). */
size_t pl_slurm_job_fates(const uint32_t *ids, size_t n, enum pl_job_fate *fates, char *err,
			  size_t errlen);

/* PrologFlags=Alloc, from slurm.conf re-read in a child: 0 with *alloc set, -1 with err. */
int pl_slurm_conf_prolog_alloc(bool *alloc, char *err, size_t errlen);

/* The NodeAddr of node, from slurm.conf re-read in a child: 0 with addr and len, -1. */
int pl_slurm_conf_node_addr(const char *node, struct sockaddr_storage *addr, socklen_t *len,
			    char *err, size_t errlen);

/* The length of addr's family's address (IPv4 or IPv6): 0, or -1 for another family. */
int pl_sockaddr_len(const struct sockaddr_storage *addr, socklen_t *len);

#endif
