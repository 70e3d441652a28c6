/* The network side of the fan-out tree: where a node of the job is, the listening socket, the
 * connections, and the two facts of the Slurm configuration the tree depends on. Errors come
 * back as one line in a caller buffer; no logging. All sockets are non-blocking and
 * close-on-exec. */
#ifndef PL_TREE_NET_H
#define PL_TREE_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

struct pl_slurm_facts {
	bool known;	   /* the running Slurm's configuration could be read */
	bool prolog_alloc; /* PrologFlags=Alloc: every node's prolog runs at allocation */
	bool run_in_job;   /* PrologFlags=RunInJob (24.05+): the prolog runs in the extern step */
	uid_t slurm_uid;   /* SlurmUser, whose credentials a tree accepts besides root's */
};

/* Read from the configuration slurmd or slurmstepd loaded (we run inside one of them). */
void pl_slurm_facts_get(struct pl_slurm_facts *facts);

/* Why the job's prologs may not build a tree (NULL: they may), from the site's tree.prolog_alloc
 * (an enum pl_auto_bool of config.h) and, when that is auto, from what Slurm says. */
const char *pl_prolog_tree_refusal(int prolog_alloc_setting, const struct pl_slurm_facts *facts);

/* The address of a node: Slurm's NodeAddr for it where Slurm can tell, else its name resolved. */
int pl_node_address(const char *node, struct sockaddr_storage *addr, socklen_t *len, char *err,
		    size_t errlen);

/* Listens on the first free candidate port of the job (tree_topology.h), any address: the fd,
 * and the port in *port; -1 with the reason when every candidate is taken. */
int pl_tree_listen(uint32_t job_id, unsigned lo, unsigned hi, unsigned *port, char *err,
		   size_t errlen);

/* Starts a connection to addr:port; the fd (connecting: wait for POLLOUT, then
 * pl_connect_result()) or -1. */
int pl_tree_connect_start(const struct sockaddr_storage *addr, socklen_t len, unsigned port,
			  char *err, size_t errlen);
/* 0 once connected, else -1 and the errno text in err. */
int pl_connect_result(int fd, char *err, size_t errlen);

/* The peer's address as text, for the log. */
void pl_peer_name(int fd, char *buf, size_t len);

#endif
