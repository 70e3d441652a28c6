#include "tree_bind.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* "ADDRESS PORT", the same text for an IPv4 address whether the socket is IPv4 or IPv6. */
static int endpoint_text(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];
	unsigned port;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
		port = ntohs(a->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;

		if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr))
			inet_ntop(AF_INET, &a->sin6_addr.s6_addr[12], ip, sizeof(ip));
		else
			inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
		port = ntohs(a->sin6_port);
	} else {
		return -1;
	}
	snprintf(buf, len, "%s %u", ip, port);
	return 0;
}

int pl_channel_binding(int fd, bool parent_side, uint8_t out[PL_SHA256_LEN])
{
	struct sockaddr_storage local, peer;
	socklen_t llen = sizeof(local), plen = sizeof(peer);
	char l[INET6_ADDRSTRLEN + 8], p[INET6_ADDRSTRLEN + 8], text[2 * sizeof(l) + 2];

	memset(out, 0, PL_SHA256_LEN);
	if (getsockname(fd, (struct sockaddr *)&local, &llen) < 0 ||
	    getpeername(fd, (struct sockaddr *)&peer, &plen) < 0 ||
	    endpoint_text(&local, l, sizeof(l)) < 0 || endpoint_text(&peer, p, sizeof(p)) < 0)
		return -1;
	snprintf(text, sizeof(text), "%s %s", parent_side ? p : l, parent_side ? l : p);
	return pl_sha256(text, strlen(text), out);
}
