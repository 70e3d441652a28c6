/* The syslog sink of --pymonitor: RFC 5424 messages to the node's syslog socket
 * (/dev/log, datagrams), or to a collector over UDP (one datagram a message) or TCP
 * (octet-counting framing, RFC 6587: "LEN SP MESSAGE").
 *
 * A message is
 *   <PRI>1 TIMESTAMP HOSTNAME pylaunch PROCID pymonitor [pylaunch@32473 id="JOB.NODE" part="K"
 * of="N"] JSON with severity info and the configured facility. A record longer than fits in
 * max_message bytes (the whole message, framing excepted) is cut into N parts of
 * consecutive bytes, in order; every part carries the same id and its number, and
 * concatenating the JSON of parts 1..N gives the record back. The record is ASCII,
 * so a cut never splits a character. A record that fits is one message, part="1"
 * of="1". 32473 is the example enterprise number of RFC 5612: pylaunch has no
 * number of its own, and receivers match on the SD-ID "pylaunch@32473".
 *
 * Failures (no socket, name not resolved, connection refused, a stalled collector)
 * are logged and never fatal; nothing waits past the deadline, except name
 * resolution, which is left to the system resolver (use an address or /etc/hosts). */
#ifndef PL_SINK_SYSLOG_H
#define PL_SINK_SYSLOG_H

#include <stddef.h>

#include "config.h"

#define PL_SYSLOG_LOCAL_SOCKET "/dev/log"
#define PL_SYSLOG_APP_NAME "pylaunch"
#define PL_SYSLOG_MSGID "pymonitor"
#define PL_SYSLOG_SD_ID "pylaunch@32473"
#define PL_SYSLOG_SEVERITY_INFO 6

/* The RFC 5424 facility code of a name of pylaunch.yaml (user, local0, ...), -1 if unknown. */
int pl_syslog_facility(const char *name);

struct pl_syslog_header {
	int facility;
	const char *timestamp; /* RFC 3339 */
	const char *hostname;  /* printed as "-" when empty or not printable ASCII */
	long procid;
	const char *id; /* "JOB.NODE" */
};

struct pl_syslog_messages {
	char **msg;
	size_t *len;
	size_t n;
};

/* Cuts record into messages of at most max_message bytes. Returns 0, or -1 with a reason
 * in err (max_message too small for the header, out of memory). */
int pl_syslog_messages(const char *record, size_t len, const struct pl_syslog_header *h,
		       size_t max_message, struct pl_syslog_messages *out, char *err,
		       size_t errlen);
void pl_syslog_messages_free(struct pl_syslog_messages *m);

/* Sends record to address: "local", "udp://HOST:PORT", "tcp://HOST:PORT", or (for the
 * tests) "unix:PATH", a datagram socket. deadline_ms on CLOCK_MONOTONIC (0 = none).
 * Returns 0, or -1 after logging why. */
int pl_syslog_send(const char *address, int facility, size_t max_message, const char *record,
		   size_t len, const char *id, long long deadline_ms);

/* The same for a configured sink. */
int pl_sink_syslog_send(const struct pl_sink *sink, const char *record, size_t len, const char *id,
			long long deadline_ms);

#endif
