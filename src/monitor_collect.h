/* --pymonitor, epilog side: reads the per-process import logs the hook
 * (share/sitecustomize.py) wrote into the job's spool on this node, and
 * aggregates them into what one record per job and node reports.
 *
 * Every log is the user's: it may be truncated (a process killed in the middle of
 * nothing: writes are whole lines), crafted, huge or not a log at all. A file that
 * is not a regular file owned by the job's user of at most PL_MON_LOG_MAX bytes,
 * or that does not start with the format line, is skipped with a log line; a line
 * that is too long, not valid UTF-8, holds a control character or does not parse
 * is skipped and counted. Nothing in a log can make the epilog fail or run longer
 * than its deadline. */
#ifndef PL_MONITOR_COLLECT_H
#define PL_MONITOR_COLLECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PL_MON_FORMAT_LINE "pylaunch-monitor 1"
#define PL_MON_LOG_SUFFIX ".log"
/* The hook stops at 4096 packages a process; a log of 1 MiB holds far more. */
#define PL_MON_LOG_MAX (1024 * 1024)
#define PL_MON_LINE_MAX 8192
#define PL_MON_NAME_MAX 256
#define PL_MON_VERSION_MAX 128
#define PL_MON_IMPORTS_MAX 8192
/* Bounds of one node's aggregate (and so of the record): past them the record
 * says "truncated" and counts what it could not list. */
#define PL_MON_PACKAGES_MAX 8192
#define PL_MON_VERSIONS_MAX 16
#define PL_MON_TALLY_MAX 64
#define PL_MON_STEPS_MAX 256
#define PL_MON_RANKS_MAX 65536

/* A package the process imported: the last "import" or "unimport" line of the name
 * was an import. */
struct pl_mon_import {
	char *name;
	char *version; /* the first "version" line of the name; NULL when none */
};

/* One process, as its log tells it. Strings are NULL when the log lacks them. */
struct pl_mon_process {
	long long pid, ppid, rank; /* -1 when absent */
	char *job, *step, *executable, *python, *pyver, *implementation, *main, *container;
	double start; /* Unix time; 0 when absent */
	bool exited;  /* an "exit" line: the interpreter reached its normal exit */
	bool forked;
	struct pl_mon_import *imports; /* sorted by name, distinct */
	size_t n_imports;
	size_t lines_skipped;
};

/* Parses one log held in data (not NUL-terminated). Returns 0, or -1 with a reason in
 * err when the data is not a log of this format at all (wrong first line), or when
 * memory ran out. Lines that do not parse are skipped and counted in p->lines_skipped;
 * an unterminated last line is one of them. p need not be initialised; free it with
 * pl_mon_process_free() whatever the result. */
int pl_mon_parse(const char *data, size_t len, struct pl_mon_process *p, char *err, size_t errlen);
void pl_mon_process_free(struct pl_mon_process *p);

/* A count of processes under up to three strings (an interpreter: executable,
 * version, implementation; a main: one string). */
struct pl_mon_tally {
	char *keys[3];
	uint32_t processes;
};

struct pl_mon_tallies {
	struct pl_mon_tally *items;
	size_t n, cap, max;
	uint32_t dropped; /* processes whose key did not fit under max */
};

struct pl_mon_package {
	char *name;
	uint32_t processes;
	uint32_t incomplete; /* of those, processes without a normal exit */
	uint32_t *ranks;     /* sorted, distinct */
	size_t n_ranks, cap_ranks;
	bool ranks_truncated;
	struct pl_mon_tallies versions;
};

/* What one node saw of one job. */
struct pl_mon_node {
	uint32_t processes, incomplete, forked;
	uint32_t logs_read, logs_skipped;
	uint64_t lines_skipped;
	double start; /* earliest start of a process, 0 when none gave one */
	bool partial; /* the deadline stopped the reading */
	struct pl_mon_tallies steps, mains, interpreters, containers;
	struct pl_mon_package *packages;
	size_t n_packages, cap_packages;
	uint32_t packages_dropped; /* imports of packages past PL_MON_PACKAGES_MAX */
	size_t *index;		   /* open addressing over packages: position + 1, 0 = free */
	size_t index_cap;
};

void pl_mon_node_init(struct pl_mon_node *node);
void pl_mon_node_free(struct pl_mon_node *node);
/* Adds one process; -1 when memory ran out (the node stays consistent). */
int pl_mon_node_add(struct pl_mon_node *node, const struct pl_mon_process *p);
/* Orders for the record: packages by name, tallies by processes (most first), then
 * keys. Call once, after the last pl_mon_node_add(). */
void pl_mon_node_sort(struct pl_mon_node *node);
/* True when any bound of the aggregate was reached. */
bool pl_mon_node_truncated(const struct pl_mon_node *node);

/* Reads every "*.log" directly in the spool directory dir_fd (other names, the hook's
 * .hook directory and its byte-code cache included, are left alone): regular files
 * owned by uid, of the job job_id (their "job" line), opened without following
 * symbolic links or blocking on FIFOs. Stops at deadline_ms (CLOCK_MONOTONIC, in
 * ms; 0 = none) and sets node->partial. Skipped files are logged (the first few by
 * name, then a count). Returns 0, or -1 when the directory cannot be read. */
int pl_mon_collect(int dir_fd, uid_t uid, const char *job_id, long long deadline_ms,
		   struct pl_mon_node *node);

/* CLOCK_MONOTONIC in ms, the clock of every deadline of the monitor. */
long long pl_mon_now_ms(void);

#endif
