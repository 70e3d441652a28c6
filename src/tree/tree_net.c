#include "tree_net.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <slurm/slurm.h>
#include <slurm/slurm_version.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "slurm_child.h"
#include "tree_topology.h"

/* Slurm's own configuration is not part of its public API, but the process we run in (slurmd's
 * prolog helper or slurmstepd) has loaded it: libslurmfull exports it, and its type is in
 * slurm.h. Looked up at run time so the plugin still loads where it is absent.
 * 23.02 to 24.04 hand the prolog and epilog a "lite" copy without PrologFlags: there it comes
 * from slurm.conf, read again in a child (slurm_child.h). */
void pl_slurm_facts_get(struct pl_slurm_facts *facts)
{
	const slurm_conf_t *conf = dlsym(RTLD_DEFAULT, "slurm_conf");

	memset(facts, 0, sizeof(*facts));
	if (!conf)
		return;
	facts->known = true;
	facts->prolog_alloc = (conf->prolog_flags & PROLOG_FLAG_ALLOC) != 0;
	facts->slurm_uid = conf->slurm_user_id;
#ifdef PROLOG_FLAG_RUN_IN_JOB
	facts->run_in_job = (conf->prolog_flags & PROLOG_FLAG_RUN_IN_JOB) != 0;
#endif
#if SLURM_VERSION_NUMBER >= SLURM_VERSION_NUM(23, 2, 0) &&                                         \
    SLURM_VERSION_NUMBER < SLURM_VERSION_NUM(24, 5, 0)
	if (!facts->prolog_alloc) {
		char err[256];

		facts->known =
		    pl_slurm_conf_prolog_alloc(&facts->prolog_alloc, err, sizeof(err)) == 0;
	}
#endif
}

/* yes: the site says PrologFlags=Alloc is set, where Slurm cannot tell the plugin (a
 * configuration file the child cannot read) or tells it wrong. Should the site be wrong, a node
 * whose parent's prolog is not running gives that parent up after tree.connect_timeout and reads
 * the shared file system itself, and a node without children waits twice that for them: slower,
 * never stuck. no: the prologs never build a tree (steps still do). */
const char *pl_prolog_tree_refusal(int prolog_alloc_setting, const struct pl_slurm_facts *facts)
{
	if (prolog_alloc_setting == PL_YES)
		return NULL;
	if (prolog_alloc_setting == PL_NO)
		return "tree.prolog_alloc is no in the site configuration";
	if (!facts->known)
		return "the Slurm configuration cannot be read here (tree.prolog_alloc: yes if "
		       "PrologFlags=Alloc is set)";
	if (!facts->prolog_alloc)
		return "PrologFlags=Alloc is not set: the job's prologs do not run together";
	return NULL;
}

/* Up to 22.05 the process has the whole slurm.conf and answers itself; from 23.02 slurmstepd
 * knows no node's address, and a child reads slurm.conf for it. */
static int slurm_node_address(const char *node, struct sockaddr_storage *addr, socklen_t *len)
{
#if SLURM_VERSION_NUMBER >= SLURM_VERSION_NUM(23, 2, 0)
	char err[256];

	return pl_slurm_conf_node_addr(node, addr, len, err, sizeof(err));
#else
	typedef int (*get_addr_fn)(const char *n, struct sockaddr_storage *a, uint16_t flags);
	get_addr_fn get_addr = (get_addr_fn)dlsym(RTLD_DEFAULT, "slurm_conf_get_addr");

	memset(addr, 0, sizeof(*addr));
	if (!get_addr || get_addr(node, addr, 0) != 0)
		return -1;
	return pl_sockaddr_len(addr, len);
#endif
}

int pl_node_address(const char *node, struct sockaddr_storage *addr, socklen_t *len, char *err,
		    size_t errlen)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
	struct addrinfo *res = NULL;
	int rc;

	if (slurm_node_address(node, addr, len) == 0)
		return 0;
	rc = getaddrinfo(node, NULL, &hints, &res);
	if (rc != 0 || !res) {
		snprintf(err, errlen, "cannot find the address of node %s: %s", node,
			 rc ? gai_strerror(rc) : "no address");
		return -1;
	}
	memcpy(addr, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static void set_port(struct sockaddr_storage *addr, unsigned port)
{
	if (addr->ss_family == AF_INET6)
		((struct sockaddr_in6 *)addr)->sin6_port = htons((uint16_t)port);
	else
		((struct sockaddr_in *)addr)->sin_port = htons((uint16_t)port);
}

/* A dual-stack socket where the node has IPv6, so IPv4 and IPv6 peers both reach it. */
static int bind_any(unsigned port)
{
	struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT};
	struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY)};
	int one = 1;
	int zero = 0;
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	a6.sin6_port = htons((uint16_t)port);
	a4.sin_port = htons((uint16_t)port);
	if (fd >= 0) {
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
		/* A port whose last connections linger in TIME_WAIT is free to listen on. */
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&a6, sizeof(a6)) == 0)
			return fd;
		int bind_errno = errno;

		close(fd);
		errno = bind_errno;
		if (errno == EADDRINUSE)
			return -1;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a4, sizeof(a4)) == 0)
		return fd;
	int bind_errno = errno;

	close(fd);
	errno = bind_errno;
	return -1;
}

int pl_tree_listen(uint32_t job_id, unsigned lo, unsigned hi, unsigned *port, char *err,
		   size_t errlen)
{
	int last_errno = 0;

	for (unsigned attempt = 0; attempt < PL_TREE_PORT_ATTEMPTS; attempt++) {
		int fd;

		*port = pl_tree_port(job_id, attempt, lo, hi);
		fd = bind_any(*port);
		if (fd >= 0 && listen(fd, 128) == 0)
			return fd;
		last_errno = errno;
		if (fd >= 0)
			close(fd);
	}
	snprintf(err, errlen, "no free port among the job's %d candidates in %u-%u (last: %s)",
		 PL_TREE_PORT_ATTEMPTS, lo, hi, strerror(last_errno));
	return -1;
}

int pl_tree_connect_start(const struct sockaddr_storage *addr, socklen_t len, unsigned port,
			  char *err, size_t errlen)
{
	struct sockaddr_storage to = *addr;
	int one = 1;
	int fd;

	set_port(&to, port);
	fd = socket(to.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&to, len) < 0 && errno != EINPROGRESS) {
		snprintf(err, errlen, "connect to port %u: %s", port, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int pl_connect_result(int fd, char *err, size_t errlen)
{
	socklen_t len = sizeof(int);
	int soerr = 0;

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		soerr = errno;
	if (soerr == 0)
		return 0;
	snprintf(err, errlen, "%s", strerror(soerr));
	return -1;
}

void pl_peer_name(int fd, char *buf, size_t len)
{
	struct sockaddr_storage a;
	socklen_t alen = sizeof(a);
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (getpeername(fd, (struct sockaddr *)&a, &alen) == 0) {
		if (a.ss_family == AF_INET6) {
			struct sockaddr_in6 *s = (struct sockaddr_in6 *)&a;

			/* An IPv4 peer of the dual-stack listener: say it as IPv4. */
			if (IN6_IS_ADDR_V4MAPPED(&s->sin6_addr))
				inet_ntop(AF_INET, &s->sin6_addr.s6_addr[12], host, sizeof(host));
			else
				inet_ntop(AF_INET6, &s->sin6_addr, host, sizeof(host));
			port = ntohs(s->sin6_port);
		} else if (a.ss_family == AF_INET) {
			struct sockaddr_in *s = (struct sockaddr_in *)&a;

			inet_ntop(AF_INET, &s->sin_addr, host, sizeof(host));
			port = ntohs(s->sin_port);
		}
	}
	snprintf(buf, len, "%s:%u", host, port);
}
