/* Unit tests of src/monitor/sink_file.c and src/monitor/sink_syslog.c: whole lines from concurrent
 * writers, RFC 5424 messages, the splitting rule, and delivery over a datagram socket,
 * UDP and TCP on 127.0.0.1, with failures that must stay bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above first. */
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "monitor_collect.h"
#include "sink_file.h"
#include "sink_syslog.h"
#include "slurm_log_stub.h"

static char tmpdir[64];

static int make_tmpdir(void **state)
{
	(void)state;
	strcpy(tmpdir, "/tmp/pl-sinks-XXXXXX");
	pl_test_log_clear();
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_tmpdir(void **state)
{
	char cmd[96];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static char *read_all(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	char *buf;
	long size;

	assert_non_null(fp);
	fseek(fp, 0, SEEK_END);
	size = ftell(fp);
	rewind(fp);
	buf = malloc((size_t)size + 1);
	assert_int_equal(fread(buf, 1, (size_t)size, fp), (size_t)size);
	buf[size] = '\0';
	fclose(fp);
	*len = (size_t)size;
	return buf;
}

/* A record of about len bytes: {"who":W,"n":N,"pad":"xxx"} */
static char *make_record(int who, int n, size_t len, size_t *out_len)
{
	char *rec = malloc(len + 64);
	int head = sprintf(rec, "{\"who\":%d,\"n\":%d,\"pad\":\"", who, n);

	memset(rec + head, 'a' + (char)(who % 26), len);
	*out_len = (size_t)head + len;
	*out_len += (size_t)sprintf(rec + *out_len, "\"}");
	return rec;
}

/* ------------------------------------------------------------------ file sink */

static void test_file_sink_appends_lines(void **state)
{
	char path[128];
	struct stat st;
	size_t len;
	char *got;

	(void)state;
	snprintf(path, sizeof(path), "%s/records.jsonl", tmpdir);
	umask(022);
	assert_int_equal(pl_sink_file_write(path, "{\"a\":1}", 7), 0);
	assert_int_equal(pl_sink_file_write(path, "{\"b\":2}", 7), 0);
	got = read_all(path, &len);
	assert_string_equal(got, "{\"a\":1}\n{\"b\":2}\n");
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	free(got);
}

static void test_file_sink_refusals(void **state)
{
	char path[128], target[128];
	struct stat st;

	(void)state;
	snprintf(path, sizeof(path), "%s/missing/records.jsonl", tmpdir);
	assert_int_equal(pl_sink_file_write(path, "{}", 2), -1);
	assert_true(pl_test_log_contains("directory does not exist"));

	snprintf(target, sizeof(target), "%s/target", tmpdir);
	snprintf(path, sizeof(path), "%s/link.jsonl", tmpdir);
	assert_int_equal(symlink(target, path), 0);
	assert_int_equal(pl_sink_file_write(path, "{}", 2), -1);
	assert_true(pl_test_log_contains("symbolic link"));
	assert_int_equal(lstat(target, &st), -1);

	snprintf(path, sizeof(path), "%s/fifo.jsonl", tmpdir);
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(pl_sink_file_write(path, "{}", 2), -1); /* and does not block */

	snprintf(path, sizeof(path), "%s", tmpdir);
	assert_int_equal(pl_sink_file_write(path, "{}", 2), -1);
}

#define WRITERS 8
#define RECORDS 150

/* Epilogs of concurrent jobs append to one file: every line must come out whole. */
static void test_file_sink_concurrent_appends(void **state)
{
	char path[128];
	size_t len, lines = 0, seen[WRITERS] = {0};
	char *got, *line, *save = NULL;

	(void)state;
	snprintf(path, sizeof(path), "%s/concurrent.jsonl", tmpdir);
	for (int w = 0; w < WRITERS; w++) {
		pid_t pid = fork();

		assert_true(pid >= 0);
		if (pid == 0) {
			for (int n = 0; n < RECORDS; n++) {
				size_t rlen;
				char *rec =
				    make_record(w, n, (size_t)(97 * n + 13 * w) % 70000, &rlen);

				if (pl_sink_file_write(path, rec, rlen) < 0)
					_exit(1);
				free(rec);
			}
			_exit(0);
		}
	}
	for (int w = 0; w < WRITERS; w++) {
		int status;

		assert_true(wait(&status) > 0);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	got = read_all(path, &len);
	assert_int_equal(got[len - 1], '\n');
	for (line = strtok_r(got, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		int who, n;
		size_t rlen;
		char *want;

		assert_int_equal(sscanf(line, "{\"who\":%d,\"n\":%d,", &who, &n), 2);
		assert_true(who >= 0 && who < WRITERS && n == (int)seen[who]);
		want = make_record(who, n, (size_t)(97 * n + 13 * who) % 70000, &rlen);
		assert_int_equal(strlen(line), rlen);
		assert_memory_equal(line, want, rlen);
		free(want);
		seen[who]++;
		lines++;
	}
	assert_int_equal(lines, WRITERS * RECORDS);
	free(got);
}

/* ------------------------------------------------------------------ syslog messages */

static void test_facilities(void **state)
{
	(void)state;
	assert_int_equal(pl_syslog_facility("kern"), 0);
	assert_int_equal(pl_syslog_facility("user"), 1);
	assert_int_equal(pl_syslog_facility("authpriv"), 10);
	assert_int_equal(pl_syslog_facility("ftp"), 11);
	assert_int_equal(pl_syslog_facility("local0"), 16);
	assert_int_equal(pl_syslog_facility("local7"), 23);
	assert_int_equal(pl_syslog_facility("local8"), -1);
	assert_int_equal(pl_syslog_facility("local"), -1);
	assert_int_equal(pl_syslog_facility("local10"), -1);
	assert_int_equal(pl_syslog_facility("User"), -1);
}

static const struct pl_syslog_header example_header = {
    .facility = 19, /* local3 */
    .timestamp = "2024-05-01T12:00:00.123Z",
    .hostname = "node7.example.org",
    .procid = 4242,
    .id = "77.node7",
};

static void test_single_message_exact(void **state)
{
	struct pl_syslog_messages m;
	char err[128];

	(void)state;
	assert_int_equal(
	    pl_syslog_messages("{\"a\":1}", 7, &example_header, 8192, &m, err, sizeof(err)), 0);
	assert_int_equal(m.n, 1);
	assert_string_equal(m.msg[0], "<158>1 2024-05-01T12:00:00.123Z node7.example.org pylaunch "
				      "4242 pymonitor [pylaunch@32473 id=\"77.node7\" part=\"1\" "
				      "of=\"1\"] {\"a\":1}");
	assert_int_equal(m.len[0], strlen(m.msg[0]));
	pl_syslog_messages_free(&m);
}

static void test_header_values_escaped(void **state)
{
	struct pl_syslog_header h = example_header;
	struct pl_syslog_messages m;
	char err[128];

	(void)state;
	h.hostname = "bad host";
	h.id = "77.n\"o]d\\e\n";
	assert_int_equal(pl_syslog_messages("{}", 2, &h, 8192, &m, err, sizeof(err)), 0);
	assert_non_null(strstr(m.msg[0], " - pylaunch 4242 "));
	assert_non_null(strstr(m.msg[0], "id=\"77.n\\\"o\\]d\\\\e?\""));
	pl_syslog_messages_free(&m);
}

/* Parts of at most max bytes, numbered, same id, whose bodies concatenate to the record. */
static void check_split(size_t record_len, size_t max)
{
	struct pl_syslog_messages m;
	char err[128], *rec, *joined;
	size_t len, used = 0;

	rec = make_record(1, 1, record_len, &len);
	assert_int_equal(pl_syslog_messages(rec, len, &example_header, max, &m, err, sizeof(err)),
			 0);
	joined = malloc(len + 1);
	for (size_t k = 0; k < m.n; k++) {
		char want[64];
		const char *body = strstr(m.msg[k], "] ");

		assert_true(m.len[k] <= max);
		snprintf(want, sizeof(want), "part=\"%zu\" of=\"%zu\"]", k + 1, m.n);
		assert_non_null(strstr(m.msg[k], want));
		assert_non_null(strstr(m.msg[k], "id=\"77.node7\""));
		assert_non_null(body);
		body += 2;
		memcpy(joined + used, body, m.len[k] - (size_t)(body - m.msg[k]));
		used += m.len[k] - (size_t)(body - m.msg[k]);
		/* Every part but the last holds the same number of record bytes: full but for
		 * the digits its number lacks against the widest one. */
		if (k + 1 < m.n)
			assert_true(m.len[k] + 20 >= max);
	}
	assert_int_equal(used, len);
	assert_memory_equal(joined, rec, len);
	pl_syslog_messages_free(&m);
	free(joined);
	free(rec);
}

static void test_split_rule(void **state)
{
	(void)state;
	check_split(10, 480);
	check_split(20000, 1000);
	check_split(20000, 480);
	check_split(300000, 8192);
	check_split(1000000, 65507);
	check_split(0, 480);
}

static void test_split_max_too_small(void **state)
{
	struct pl_syslog_header h = example_header;
	struct pl_syslog_messages m;
	char err[128], id[600];

	(void)state;
	memset(id, 'i', sizeof(id) - 1);
	id[sizeof(id) - 1] = '\0';
	h.id = id;
	assert_int_equal(pl_syslog_messages("{}", 2, &h, 480, &m, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no room"));
}

/* ------------------------------------------------------------------ syslog delivery */

static int bound_socket(int family, int type, struct sockaddr *sa, socklen_t len)
{
	int fd = socket(family, type | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, sa, len), 0);
	return fd;
}

static int local_port(int fd)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	return ntohs(sin.sin_port);
}

static int loopback_socket(int type)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = 0};

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return bound_socket(AF_INET, type, (struct sockaddr *)&sin, sizeof(sin));
}

/* Receives datagrams until the last part, and checks the record they carry. */
static void receive_datagrams(int fd, const char *rec, size_t len, size_t max)
{
	char *buf = malloc(max + 1), *joined = malloc(len + 1);
	size_t used = 0, of = 0, part = 0;

	do {
		ssize_t n = recv(fd, buf, max + 1, 0);
		const char *body;

		assert_true(n > 0 && (size_t)n <= max);
		buf[n] = '\0';
		assert_int_equal(
		    sscanf(strstr(buf, "part="), "part=\"%zu\" of=\"%zu\"", &part, &of), 2);
		body = strstr(buf, "] ") + 2;
		memcpy(joined + used, body, (size_t)n - (size_t)(body - buf));
		used += (size_t)n - (size_t)(body - buf);
	} while (part < of);
	assert_int_equal(used, len);
	assert_memory_equal(joined, rec, len);
	free(buf);
	free(joined);
}

static void test_send_unix_datagrams(void **state)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	char address[128], *rec;
	size_t len;
	int fd;

	(void)state;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/log", tmpdir);
	fd = bound_socket(AF_UNIX, SOCK_DGRAM, (struct sockaddr *)&sun, sizeof(sun));
	snprintf(address, sizeof(address), "unix:%s", sun.sun_path);
	rec = make_record(2, 2, 30000, &len);
	assert_int_equal(pl_syslog_send(address, 1, 4096, rec, len, "1.n", pl_mon_now_ms() + 5000),
			 0);
	receive_datagrams(fd, rec, len, 4096);
	free(rec);
	close(fd);

	snprintf(address, sizeof(address), "unix:%s/nobody-listens", tmpdir);
	assert_int_equal(pl_syslog_send(address, 1, 4096, "{}", 2, "1.n", pl_mon_now_ms() + 5000),
			 -1);
	assert_true(pl_test_log_contains("nobody-listens"));
}

static void test_send_udp(void **state)
{
	char address[64], *rec;
	size_t len;
	int fd = loopback_socket(SOCK_DGRAM);

	(void)state;
	snprintf(address, sizeof(address), "udp://127.0.0.1:%d", local_port(fd));
	rec = make_record(3, 3, 100000, &len);
	assert_int_equal(
	    pl_syslog_send(address, 16, 65507, rec, len, "9.n1", pl_mon_now_ms() + 5000), 0);
	receive_datagrams(fd, rec, len, 65507);
	free(rec);
	close(fd);
}

/* Reads octet-counted frames ("LEN SP MSG") from a stream until the last part. */
static void receive_frames(int fd, const char *rec, size_t len)
{
	size_t cap = len * 2 + 65536, have = 0, pos = 0, used = 0, part = 0, of = 1;
	char *buf = malloc(cap + 1), *joined = malloc(len + 1);
	ssize_t n;

	while ((n = read(fd, buf + have, cap - have)) > 0)
		have += (size_t)n;
	buf[have] = '\0';
	while (part < of) {
		size_t frame;
		char *msg, *body, *end;

		frame = strtoul(buf + pos, &end, 10);
		assert_int_equal(*end, ' ');
		msg = end + 1;
		assert_true((size_t)(msg - buf) + frame <= have);
		assert_int_equal(
		    sscanf(strstr(msg, "part="), "part=\"%zu\" of=\"%zu\"", &part, &of), 2);
		body = strstr(msg, "] ") + 2;
		memcpy(joined + used, body, frame - (size_t)(body - msg));
		used += frame - (size_t)(body - msg);
		pos = (size_t)(msg - buf) + frame;
	}
	assert_int_equal(pos, have);
	assert_int_equal(used, len);
	assert_memory_equal(joined, rec, len);
	free(buf);
	free(joined);
}

static void test_send_tcp_octet_counting(void **state)
{
	char address[64], *rec;
	size_t len;
	int lfd = loopback_socket(SOCK_STREAM), cfd;

	(void)state;
	assert_int_equal(listen(lfd, 4), 0);
	snprintf(address, sizeof(address), "tcp://127.0.0.1:%d", local_port(lfd));
	rec = make_record(4, 4, 50000, &len);
	assert_int_equal(pl_syslog_send(address, 3, 8192, rec, len, "9.n1", pl_mon_now_ms() + 5000),
			 0);
	cfd = accept(lfd, NULL, NULL);
	assert_true(cfd >= 0);
	receive_frames(cfd, rec, len);
	free(rec);
	close(cfd);
	close(lfd);
}

static void test_send_tcp_refused(void **state)
{
	char address[64];
	int fd = loopback_socket(SOCK_STREAM);
	int port = local_port(fd);

	(void)state;
	close(fd); /* nobody listens there now */
	snprintf(address, sizeof(address), "tcp://127.0.0.1:%d", port);
	assert_int_equal(pl_syslog_send(address, 1, 8192, "{}", 2, "1.n", pl_mon_now_ms() + 5000),
			 -1);
	assert_true(pl_test_log_contains("refused"));
}

/* A collector that accepts but never reads: the sender gives up at its deadline. */
static void test_send_tcp_stalled_collector_is_bounded(void **state)
{
	char address[64], *rec;
	size_t len;
	int lfd = loopback_socket(SOCK_STREAM), small = 4096;
	long long t0, took;

	(void)state;
	setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	assert_int_equal(listen(lfd, 4), 0);
	snprintf(address, sizeof(address), "tcp://127.0.0.1:%d", local_port(lfd));
	rec = make_record(5, 5, 32 * 1024 * 1024, &len);
	t0 = pl_mon_now_ms();
	assert_int_equal(pl_syslog_send(address, 1, 1048576, rec, len, "1.n", t0 + 300), -1);
	took = pl_mon_now_ms() - t0;
	assert_true(took >= 250 && took < 3000);
	assert_true(pl_test_log_contains("timed out"));
	free(rec);
	close(lfd);
}

static void test_configured_sink(void **state)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct pl_sink sink = {.type = PL_SINK_SYSLOG, .facility = "local3", .max_message = 480};
	char address[128], buf[1024];
	int fd;
	ssize_t n;

	(void)state;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/log2", tmpdir);
	fd = bound_socket(AF_UNIX, SOCK_DGRAM, (struct sockaddr *)&sun, sizeof(sun));
	snprintf(address, sizeof(address), "unix:%s", sun.sun_path);
	sink.address = address;
	assert_int_equal(pl_sink_syslog_send(&sink, "{}", 2, "1.n", pl_mon_now_ms() + 5000), 0);
	n = recv(fd, buf, sizeof(buf) - 1, 0);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_memory_equal(buf, "<158>1 ", 7);
	sink.facility = "bogus";
	assert_int_equal(pl_sink_syslog_send(&sink, "{}", 2, "1.n", pl_mon_now_ms() + 5000), -1);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_file_sink_appends_lines, make_tmpdir,
					    remove_tmpdir),
	    cmocka_unit_test_setup_teardown(test_file_sink_refusals, make_tmpdir, remove_tmpdir),
	    cmocka_unit_test_setup_teardown(test_file_sink_concurrent_appends, make_tmpdir,
					    remove_tmpdir),
	    cmocka_unit_test(test_facilities),
	    cmocka_unit_test(test_single_message_exact),
	    cmocka_unit_test(test_header_values_escaped),
	    cmocka_unit_test(test_split_rule),
	    cmocka_unit_test(test_split_max_too_small),
	    cmocka_unit_test_setup_teardown(test_send_unix_datagrams, make_tmpdir, remove_tmpdir),
	    cmocka_unit_test_setup_teardown(test_send_udp, make_tmpdir, remove_tmpdir),
	    cmocka_unit_test_setup_teardown(test_send_tcp_octet_counting, make_tmpdir,
					    remove_tmpdir),
	    cmocka_unit_test_setup_teardown(test_send_tcp_refused, make_tmpdir, remove_tmpdir),
	    cmocka_unit_test_setup_teardown(test_send_tcp_stalled_collector_is_bounded, make_tmpdir,
					    remove_tmpdir),
	    cmocka_unit_test_setup_teardown(test_configured_sink, make_tmpdir, remove_tmpdir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
