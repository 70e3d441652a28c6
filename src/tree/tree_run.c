/* This node's tree process: its loop over the upstream, the downstream and its own extraction,
 * and how the prolog (or slurmstepd) starts it and learns its outcome. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "tree_down.h"
#include "tree_extract.h"
#include "tree_net.h"
#include "tree_node.h"
#include "tree_up.h"

/* Bytes a node holds of the stream: enough to ride out a consumer's hiccup and to let a node whose
 * parent failed resume from an ancestor; bounded so that no node holds the archive. */
#define RING_BYTES (32u << 20)
#define EXTRACT_PIPE_BYTES (1 << 20)
#define TICK_MS 100

static const char *role_of(const struct pl_node *node)
{
	size_t first;

	if (node->self == 0)
		return "root";
	return pl_tree_children(node->self, node->plan->nodes->n, node->plan->cfg->tree_fanout,
				&first)
		   ? "interior"
		   : "leaf";
}

/* ------------------------------------------------------------------ own extraction */

static int start_extractor(struct pl_node *node, char *err, size_t errlen)
{
	const struct pl_tree_plan *plan = node->plan;
	struct pl_tree_extract x = {.tree = plan->tree,
				    .job_id = plan->job_id,
				    .key = plan->key,
				    .max_bytes = plan->cfg->stage_max_size,
				    .max_entries = plan->cfg->stage_max_entries,
				    .bundles = plan->bundles};
	int fds[2];
	int rc;

	if (pipe2(fds, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return -1;
	}
	fcntl(fds[1], F_SETPIPE_SZ, EXTRACT_PIPE_BYTES);
	x.in_fd = fds[0];
	rc = pl_spawn_as_user(plan->user, pl_tree_extract_work, &x, fds[0], &node->ex.child, err,
			      errlen);
	close(fds[0]);
	if (rc < 0) {
		close(fds[1]);
		return -1;
	}
	fcntl(fds[1], F_SETFL, O_NONBLOCK);
	node->ex.fd = fds[1];
	node->ex.running = true;
	return 0;
}

static void close_extractor_input(struct pl_node *node)
{
	if (node->ex.fd >= 0)
		close(node->ex.fd);
	node->ex.fd = -1;
}

static bool extractor_may_read(const struct pl_node *node)
{
	return !node->plan->cfg->tree_store_and_forward || node->sealed;
}

/* Up to where the extractor may read: never the END frame before the seal is verified. */
static uint64_t extract_limit(const struct pl_node *node)
{
	if (!extractor_may_read(node))
		return 0;
	return pl_frame_release_limit(node->ring.hi, &node->dec, node->header_known, node->sealed);
}

static void feed_extractor(struct pl_node *node)
{
	struct pl_extractor *ex = &node->ex;
	uint64_t limit = extract_limit(node);

	while (ex->fd >= 0 && ex->pos < limit) {
		const uint8_t *data;
		size_t len = pl_ring_peek(&node->ring, ex->pos, &data);
		ssize_t n;

		if (len > limit - ex->pos)
			len = (size_t)(limit - ex->pos);
		n = write(ex->fd, data, len);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n < 0) {
			close_extractor_input(node); /* it stopped reading: its report says why */
			return;
		}
		ex->pos += (uint64_t)n;
	}
	if (ex->fd >= 0 && node->stream_end && node->sealed && ex->pos == node->ring.hi)
		close_extractor_input(node);
}

static void extractor_reported(struct pl_node *node)
{
	struct pl_extractor *ex = &node->ex;

	close_extractor_input(node);
	ex->ok = pl_user_child_finish(&ex->child, 0, ex->msg, sizeof(ex->msg)) == 0;
	ex->running = false;
	ex->finished = true;
}

static void stop_extractor(struct pl_node *node)
{
	close_extractor_input(node);
	if (node->ex.running)
		pl_user_child_kill(&node->ex.child);
	node->ex.running = false;
}

/* ------------------------------------------------------------------ the loop */

struct poll_set {
	struct pollfd fds[PL_TREE_MAX_PEERS + 4];
	struct pl_peer *peer[PL_TREE_MAX_PEERS + 4];
	int listen, up, ex_in, ex_report;
	nfds_t n;
};

static int add_fd(struct poll_set *ps, int fd, short events, struct pl_peer *p)
{
	if (fd < 0 || events == 0)
		return -1;
	ps->fds[ps->n] = (struct pollfd){.fd = fd, .events = events};
	ps->peer[ps->n] = p;
	return (int)ps->n++;
}

static void build_poll_set(struct pl_node *node, struct poll_set *ps)
{
	int fd;
	short ev;

	ps->n = 0;
	ps->listen = add_fd(ps, node->listen_fd, POLLIN, NULL);
	pl_up_poll_fd(node, &fd, &ev);
	ps->up = add_fd(ps, fd, ev, NULL);
	ps->ex_in = add_fd(ps, node->ex.fd, node->ex.pos < extract_limit(node) ? POLLOUT : 0, NULL);
	ps->ex_report = add_fd(ps, node->ex.running ? node->ex.child.report_fd : -1, POLLIN, NULL);
	for (size_t i = 0; i < PL_TREE_MAX_PEERS; i++) {
		struct pl_peer *p = &node->peers[i];

		if (p->state == PEER_FREE)
			continue;
		pl_down_poll_fd(node, p, &ev);
		if (add_fd(ps, p->fd, ev, p) < 0)
			add_fd(ps, p->fd, POLLERR, p); /* still visited for its timers */
	}
}

static short revents_of(const struct poll_set *ps, int i)
{
	return i >= 0 ? ps->fds[i].revents : 0;
}

static void dispatch(struct pl_node *node, struct poll_set *ps)
{
	if (revents_of(ps, ps->listen))
		pl_down_accept(node);
	pl_up_step(node, revents_of(ps, ps->up));
	if (revents_of(ps, ps->ex_report))
		extractor_reported(node);
	feed_extractor(node);
	for (nfds_t i = 0; i < ps->n; i++)
		if (ps->peer[i] && ps->peer[i]->state != PEER_FREE)
			pl_down_step(node, ps->peer[i], ps->fds[i].revents);
}

static bool own_part_done(struct pl_node *node)
{
	if (node->up.state == UP_FAILED) {
		stop_extractor(node);
		pl_down_abandon(node, node->up.direct_asked, node->up.why);
		return true;
	}
	return node->ex.finished && node->up.state == UP_DONE;
}

static void fill_outcome(const struct pl_node *node, struct pl_tree_outcome *out)
{
	memset(out, 0, sizeof(*out));
	out->role = role_of(node);
	snprintf(out->parent, sizeof(out->parent), "%s",
		 node->up.serving == PL_TREE_NONE ? "-" : pl_node_name(node, node->up.serving));
	out->reattached = node->up.reattached;
	out->bytes_in = node->ring.hi;
	out->shared_bytes = node->self == 0 ? node->dec.d.total : 0;
	out->seconds = (double)(pl_now_ms() - node->t0) / 1000.0;
	if (node->up.state == UP_FAILED) {
		out->result = PL_TREE_DIRECT;
		pl_text(out->message, sizeof(out->message), "%s", node->up.why);
	} else {
		out->result = node->ex.ok ? PL_TREE_STAGED : PL_TREE_FAILED;
		pl_text(out->message, sizeof(out->message), "%s", node->ex.msg);
	}
}

static void report(int fd, const struct pl_tree_outcome *out)
{
	if (write(fd, out, sizeof(*out)) != (ssize_t)sizeof(*out))
		_exit(2);
	close(fd);
}

static void run_loop(struct pl_node *node, int report_fd)
{
	struct pl_tree_outcome out;
	bool reported = false;
	struct poll_set ps;

	for (;;) {
		if (!reported && own_part_done(node)) {
			fill_outcome(node, &out);
			out.bytes_out = node->bytes_out;
			report(report_fd, &out);
			reported = true;
		}
		if (reported && !pl_down_busy(node))
			return;
		build_poll_set(node, &ps);
		if (poll(ps.fds, ps.n, TICK_MS) < 0 && errno != EINTR)
			return;
		dispatch(node, &ps);
	}
}

/* ------------------------------------------------------------------ set-up */

static void expect_children(struct pl_node *node)
{
	const struct pl_config *cfg = node->plan->cfg;
	long long until = node->t0 + (long long)cfg->tree_connect_timeout * 2000;
	size_t first;
	size_t n = pl_tree_children(node->self, node->plan->nodes->n, cfg->tree_fanout, &first);

	for (size_t i = 0; i < n; i++)
		node->expect_until[first + i] = node->first_until[first + i] = until;
}

static int node_init(struct pl_node *node, const struct pl_tree_plan *plan, char *err,
		     size_t errlen)
{
	const struct pl_config *cfg = plan->cfg;
	size_t first;

	memset(node, 0, sizeof(*node));
	node->plan = plan;
	node->self = plan->self;
	node->abandon_downstream = pl_down_abandon;
	node->t0 = pl_now_ms();
	node->listen_fd = -1;
	node->ex.fd = -1;
	node->up.fd = -1;
	node->up.source.pid = -1;
	node->up.source.report_fd = -1;
	for (size_t i = 0; i < PL_TREE_MAX_PEERS; i++)
		node->peers[i].fd = -1;
	pl_auth_backend_munge(&node->auth, NULL);
	pl_frame_decoder_init(&node->dec, plan->job_id, plan->key, cfg->stage_max_size);
	node->expect_until = calloc(plan->nodes->n, sizeof(*node->expect_until));
	node->first_until = calloc(plan->nodes->n, sizeof(*node->first_until));
	if (!node->expect_until || !node->first_until ||
	    pl_ring_init(&node->ring, RING_BYTES, cfg->tree_store_and_forward) < 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (pl_tree_children(node->self, plan->nodes->n, cfg->tree_fanout, &first) > 0) {
		node->listen_fd = pl_tree_listen(plan->job_id, cfg->tree_port_min,
						 cfg->tree_port_max, &node->port, err, errlen);
		if (node->listen_fd < 0)
			return -1;
		expect_children(node);
	}
	if (plan->relay_only) {
		node->ex.finished = node->ex.ok = true;
		snprintf(node->ex.msg, sizeof(node->ex.msg),
			 "passed the stream on without extracting it");
	} else if (start_extractor(node, err, errlen) < 0) {
		return -1;
	}
	return pl_up_start(node, err, errlen);
}

/* The tree process: never returns. */
static void tree_process(const struct pl_tree_plan *plan, int report_fd)
{
	static struct pl_node node;
	struct pl_tree_outcome out = {.result = PL_TREE_DIRECT, .role = "-"};

	/* Gone with the prolog; a peer that vanishes must be an error, not a signal. Its own group,
	 * so that the prolog can end it with its children (the user's extractor and reader). */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	setpgid(0, 0);
	prctl(PR_SET_NAME, "pylaunch-tree");
	signal(SIGPIPE, SIG_IGN);
	if (node_init(&node, plan, out.message, sizeof(out.message)) < 0) {
		stop_extractor(&node);
		report(report_fd, &out);
		_exit(0);
	}
	pl_debug("%s job %u on %s: tree process %d: %s, port %u", plan->context, plan->job_id,
		 pl_node_name(&node, node.self), (int)getpid(), role_of(&node), node.port);
	run_loop(&node, report_fd);
	stop_extractor(&node);
	pl_user_child_kill(&node.up.source); /* a reader still running: the session was given up */
	_exit(0);
}

int pl_tree_start(const struct pl_tree_plan *plan, struct pl_tree_run *run, char *err,
		  size_t errlen)
{
	int fds[2];

	if (pipe2(fds, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return -1;
	}
	run->pid = fork();
	if (run->pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (run->pid == 0) {
		close(fds[0]);
		tree_process(plan, fds[1]);
	}
	close(fds[1]);
	run->fd = fds[0];
	return 0;
}

/* Is a process of group pgid still running? Zombies do not count: orphans are reaped by
 * whoever adopts them, which in a container may be no one. */
static bool group_running(pid_t pgid)
{
	struct dirent *e;
	bool running = false;
	DIR *proc = opendir("/proc");

	while (proc && !running && (e = readdir(proc))) {
		char path[64], buf[512], state;
		const char *close_paren;
		int group = 0;
		ssize_t n;
		int fd;

		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%.20s/stat", e->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
		if (fd >= 0)
			close(fd);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		close_paren = strrchr(buf, ')');
		if (close_paren && sscanf(close_paren + 1, " %c %*d %d", &state, &group) == 2)
			running = group == pgid && state != 'Z' && state != 'X';
	}
	if (proc)
		closedir(proc);
	return running;
}

/* The tree process and everything it started are gone: the direct path may not meet a
 * straggling extractor of the tree in the same directory. */
static void end_group(pid_t pid)
{
	long long deadline = pl_now_ms() + 5000;

	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, WNOHANG);
	while (group_running(pid) && pl_now_ms() < deadline)
		usleep(5000);
}

static void describe_death(pid_t pid, char *msg, size_t len)
{
	int status;

	if (waitpid(pid, &status, WNOHANG) == pid && WIFSIGNALED(status))
		snprintf(msg, len, "the tree process was killed by signal %d", WTERMSIG(status));
	else
		snprintf(msg, len, "the tree process ended without an outcome");
}

void pl_tree_outcome(struct pl_tree_run *run, unsigned timeout, struct pl_tree_outcome *out)
{
	struct pollfd p = {.fd = run->fd, .events = POLLIN};
	int rc;

	memset(out, 0, sizeof(*out));
	out->result = PL_TREE_DIRECT;
	out->role = "-";
	snprintf(out->parent, sizeof(out->parent), "-");
	do
		rc = poll(&p, 1, (int)timeout * 1000);
	while (rc < 0 && errno == EINTR);
	if (rc == 0) {
		end_group(run->pid);
		pl_text(out->message, sizeof(out->message),
			"the tree gave nothing within %u s (stage.timeout)", timeout);
		return;
	}
	if (read(run->fd, out, sizeof(*out)) != (ssize_t)sizeof(*out)) {
		memset(out, 0, sizeof(*out));
		out->result = PL_TREE_DIRECT;
		out->role = "-";
		snprintf(out->parent, sizeof(out->parent), "-");
		usleep(10000); /* the pipe closes a moment before the process is reapable */
		describe_death(run->pid, out->message, sizeof(out->message));
		end_group(run->pid);
	}
}

void pl_tree_finish(struct pl_tree_run *run, unsigned timeout)
{
	long long deadline = pl_now_ms() + (long long)timeout * 1000;
	int status;

	close(run->fd);
	while (waitpid(run->pid, &status, WNOHANG) == 0) {
		if (pl_now_ms() >= deadline) {
			end_group(run->pid);
			waitpid(run->pid, &status, 0);
			return;
		}
		usleep(20000);
	}
}
