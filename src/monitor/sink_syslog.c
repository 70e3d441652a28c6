#include "sink_syslog.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "monitor_collect.h"
#include "monitor_record.h"

/* The smallest part worth sending: a max_message this close to the header is a mistake. */
#define MIN_CHUNK 64
#define HOST_MAX 255

static const char *const facility_names[] = {
    "kern", "user", "mail", "daemon", "auth",	  "syslog",
    "lpr",  "news", "uucp", "cron",   "authpriv", "ftp",
};

int pl_syslog_facility(const char *name)
{
	for (size_t i = 0; i < sizeof(facility_names) / sizeof(facility_names[0]); i++)
		if (strcmp(name, facility_names[i]) == 0)
			return (int)i;
	if (strncmp(name, "local", 5) == 0 && name[5] >= '0' && name[5] <= '7' && !name[6])
		return 16 + (name[5] - '0');
	return -1;
}

/* ------------------------------------------------------------------ messages */

static bool is_header_token(const char *s)
{
	size_t len = s ? strlen(s) : 0;

	if (len == 0 || len > HOST_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (s[i] < 33 || s[i] > 126)
			return false;
	return true;
}

/* An SD-PARAM value: '"', '\' and ']' escaped, anything but printable ASCII as '?'. */
static void add_param_value(struct pl_text *t, const char *s)
{
	for (; *s; s++) {
		char c = (*s >= 32 && *s <= 126) ? *s : '?';

		if (c == '"' || c == '\\' || c == ']')
			pl_text_add(t, "\\", 1);
		pl_text_add(t, &c, 1);
	}
}

static void add_header(struct pl_text *t, const struct pl_syslog_header *h, size_t part, size_t of)
{
	pl_text_addf(t, "<%d>1 %s %s %s %ld %s [%s id=\"",
		     h->facility * 8 + PL_SYSLOG_SEVERITY_INFO, h->timestamp,
		     is_header_token(h->hostname) ? h->hostname : "-", PL_SYSLOG_APP_NAME,
		     h->procid, PL_SYSLOG_MSGID, PL_SYSLOG_SD_ID);
	add_param_value(t, h->id);
	pl_text_addf(t, "\" part=\"%zu\" of=\"%zu\"] ", part, of);
}

static size_t header_len(const struct pl_syslog_header *h, size_t part, size_t of)
{
	struct pl_text t = {0};
	size_t len;

	add_header(&t, h, part, of);
	len = t.failed ? (size_t)-1 : t.len;
	pl_text_free(&t);
	return len;
}

/* The number of parts and the bytes of record in each (all but the last full). */
static int plan_parts(size_t len, const struct pl_syslog_header *h, size_t max_message,
		      size_t *parts, size_t *chunk)
{
	size_t n = 1;

	for (;;) {
		size_t head = header_len(h, n, n); /* the widest header of n parts */
		size_t need;

		if (head == (size_t)-1 || head + MIN_CHUNK > max_message)
			return -1;
		*chunk = max_message - head;
		need = len ? (len + *chunk - 1) / *chunk : 1;
		if (need <= n) {
			*parts = n;
			return 0;
		}
		n = need;
	}
}

void pl_syslog_messages_free(struct pl_syslog_messages *m)
{
	for (size_t i = 0; i < m->n; i++)
		free(m->msg[i]);
	free(m->msg);
	free(m->len);
	memset(m, 0, sizeof(*m));
}

int pl_syslog_messages(const char *record, size_t len, const struct pl_syslog_header *h,
		       size_t max_message, struct pl_syslog_messages *out, char *err, size_t errlen)
{
	size_t parts, chunk;

	memset(out, 0, sizeof(*out));
	if (plan_parts(len, h, max_message, &parts, &chunk) < 0) {
		snprintf(err, errlen, "max_message %zu leaves no room after the header",
			 max_message);
		return -1;
	}
	out->msg = calloc(parts, sizeof(*out->msg));
	out->len = calloc(parts, sizeof(*out->len));
	if (!out->msg || !out->len)
		goto oom;
	for (size_t k = 0; k < parts; k++) {
		struct pl_text t = {0};
		size_t from = k * chunk;
		size_t n = len - from < chunk ? len - from : chunk;

		add_header(&t, h, k + 1, parts);
		pl_text_add(&t, record + from, n);
		out->msg[k] = t.buf;
		out->len[k] = t.len;
		out->n = k + 1;
		if (t.failed || !t.buf)
			goto oom;
	}
	return 0;
oom:
	pl_syslog_messages_free(out);
	snprintf(err, errlen, "out of memory");
	return -1;
}

/* ------------------------------------------------------------------ transport */

static int ms_left(long long deadline_ms)
{
	long long left;

	if (!deadline_ms)
		return -1;
	left = deadline_ms - pl_mon_now_ms();
	return left <= 0 ? 0 : (left > 60000 ? 60000 : (int)left);
}

/* 0 when fd is ready for events, -1 (errno ETIMEDOUT or poll's) otherwise. */
static int wait_for(int fd, short events, long long deadline_ms)
{
	for (;;) {
		struct pollfd p = {.fd = fd, .events = events};
		int wait = ms_left(deadline_ms);
		int rc;

		if (wait == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		rc = poll(&p, 1, wait);
		if (rc > 0)
			return 0;
		if (rc < 0 && errno != EINTR)
			return -1;
	}
}

static int send_bytes(int fd, const char *buf, size_t len, long long deadline_ms)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return -1;
		if (wait_for(fd, POLLOUT, deadline_ms) < 0)
			return -1;
	}
	return 0;
}

static int send_datagram(int fd, const char *msg, size_t len, long long deadline_ms)
{
	for (;;) {
		ssize_t n = send(fd, msg, len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n >= 0)
			return (size_t)n == len ? 0 : -1;
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS && errno != EINTR)
			return -1;
		if (wait_for(fd, POLLOUT, deadline_ms) < 0)
			return -1;
	}
}

/* RFC 6587 octet counting: "LEN SP MSG". */
static int send_framed(int fd, const char *msg, size_t len, long long deadline_ms)
{
	char prefix[32];
	int n = snprintf(prefix, sizeof(prefix), "%zu ", len);

	if (send_bytes(fd, prefix, (size_t)n, deadline_ms) < 0)
		return -1;
	return send_bytes(fd, msg, len, deadline_ms);
}

static int send_messages(int fd, bool stream, const struct pl_syslog_messages *m,
			 long long deadline_ms)
{
	for (size_t i = 0; i < m->n; i++) {
		int rc = stream ? send_framed(fd, m->msg[i], m->len[i], deadline_ms)
				: send_datagram(fd, m->msg[i], m->len[i], deadline_ms);

		if (rc < 0)
			return -1;
	}
	return 0;
}

static int connect_within(int fd, const struct sockaddr *sa, socklen_t salen, long long deadline_ms)
{
	int soerr = 0;
	socklen_t soerr_len = sizeof(soerr);

	if (connect(fd, sa, salen) == 0)
		return 0;
	if (errno != EINPROGRESS && errno != EAGAIN)
		return -1;
	if (wait_for(fd, POLLOUT, deadline_ms) < 0)
		return -1;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &soerr_len) < 0)
		return -1;
	errno = soerr;
	return soerr ? -1 : 0;
}

static int open_unix(const char *path, long long deadline_ms)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd >= 0 && connect_within(fd, (struct sockaddr *)&sun, sizeof(sun), deadline_ms) < 0) {
		int saved = errno;

		close(fd);
		errno = saved;
		fd = -1;
	}
	return fd;
}

/* "HOST:PORT" or "[V6]:PORT" into host and port. */
static int split_host_port(const char *hostport, char *host, size_t hostlen, const char **port)
{
	const char *colon = strrchr(hostport, ':');
	size_t len;

	if (!colon)
		return -1;
	len = (size_t)(colon - hostport);
	if (len >= 2 && hostport[0] == '[' && hostport[len - 1] == ']') {
		hostport++;
		len -= 2;
	}
	if (len == 0 || len >= hostlen)
		return -1;
	memcpy(host, hostport, len);
	host[len] = '\0';
	*port = colon + 1;
	return 0;
}

/* A connected socket to the first address of hostport that answers; -1 with *why set. */
static int open_inet(const char *hostport, int type, long long deadline_ms, const char **why)
{
	struct addrinfo hints = {.ai_socktype = type, .ai_flags = AI_NUMERICSERV}, *res = NULL;
	char host[HOST_MAX + 1];
	const char *port;
	int fd = -1, rc;

	if (split_host_port(hostport, host, sizeof(host), &port) < 0) {
		*why = "not HOST:PORT";
		return -1;
	}
	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
		*why = gai_strerror(rc);
		return -1;
	}
	*why = NULL;
	for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
			    ai->ai_protocol);
		if (fd >= 0 && connect_within(fd, ai->ai_addr, ai->ai_addrlen, deadline_ms) < 0) {
			int saved = errno;

			close(fd);
			errno = saved;
			fd = -1;
		}
	}
	freeaddrinfo(res);
	return fd;
}

static int open_target(const char *address, bool *stream, long long deadline_ms, const char **why)
{
	*stream = false;
	*why = NULL;
	if (strcmp(address, "local") == 0)
		return open_unix(PL_SYSLOG_LOCAL_SOCKET, deadline_ms);
	if (strncmp(address, "unix:", 5) == 0)
		return open_unix(address + 5, deadline_ms);
	if (strncmp(address, "udp://", 6) == 0)
		return open_inet(address + 6, SOCK_DGRAM, deadline_ms, why);
	if (strncmp(address, "tcp://", 6) == 0) {
		*stream = true;
		return open_inet(address + 6, SOCK_STREAM, deadline_ms, why);
	}
	*why = "unknown address";
	return -1;
}

static void fill_header(struct pl_syslog_header *h, int facility, const char *id, char *ts,
			size_t tslen, char *host, size_t hostlen)
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	pl_monitor_rfc3339((double)now.tv_sec + now.tv_nsec / 1e9, ts, tslen);
	if (gethostname(host, hostlen) < 0)
		host[0] = '\0';
	host[hostlen - 1] = '\0';
	h->facility = facility;
	h->timestamp = ts;
	h->hostname = host;
	h->procid = (long)getpid();
	h->id = id;
}

int pl_syslog_send(const char *address, int facility, size_t max_message, const char *record,
		   size_t len, const char *id, long long deadline_ms)
{
	struct pl_syslog_header h;
	struct pl_syslog_messages m = {0};
	char ts[40], host[HOST_MAX + 1], err[128];
	const char *why = NULL;
	bool stream;
	int fd = -1;
	int rc = -1;

	fill_header(&h, facility, id, ts, sizeof(ts), host, sizeof(host));
	if (pl_syslog_messages(record, len, &h, max_message, &m, err, sizeof(err)) < 0) {
		pl_error("monitor: syslog sink %s: %s", address, err);
		return -1;
	}
	fd = open_target(address, &stream, deadline_ms, &why);
	if (fd < 0) {
		if (why)
			pl_error("monitor: syslog sink %s: %s", address, why);
		else
			pl_error_errno(errno, "monitor: syslog sink %s: connect", address);
		goto done;
	}
	if (send_messages(fd, stream, &m, deadline_ms) < 0) {
		pl_error_errno(errno, "monitor: syslog sink %s: send", address);
		goto done;
	}
	pl_debug("monitor: syslog sink %s: record %s sent in %zu message%s", address, id, m.n,
		 m.n == 1 ? "" : "s");
	rc = 0;
done:
	if (fd >= 0)
		close(fd);
	pl_syslog_messages_free(&m);
	return rc;
}

int pl_sink_syslog_send(const struct pl_sink *sink, const char *record, size_t len, const char *id,
			long long deadline_ms)
{
	const char *address = sink->address ? sink->address : "local";
	int facility = pl_syslog_facility(sink->facility ? sink->facility : "user");

	if (facility < 0) {
		pl_error("monitor: syslog sink %s: unknown facility %s", address, sink->facility);
		return -1;
	}
	return pl_syslog_send(address, facility, sink->max_message ? sink->max_message : 8192,
			      record, len, id, deadline_ms);
}
