/* --pymonitor, epilog side: reads the per-process import logs the hook
 * (share/monitor/sitecustomize.py) wrote into the job's spool on this node, and
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

/* The first line of a log: this prefix and the format, 1 (before pylaunch 2) or 2. */
#define PL_MON_FORMAT_PREFIX "pylaunch-monitor "
#define PL_MON_FORMAT_MAX 2
#define PL_MON_LOG_SUFFIX ".log"
/* Left by the hook when it could not write a log (a full spool): <pid>-<random>.unlogged. */
#define PL_MON_UNLOGGED_SUFFIX ".unlogged"
/* Left by task_init for a task that execs a Python interpreter: <pid>.python-task. */
#define PL_MON_TASK_SUFFIX ".python-task"
#define PL_MON_PIDS_MAX 65536
/* The hook stops at 4096 packages a process; a log of 1 MiB holds far more. */
#define PL_MON_LOG_MAX (1024 * 1024)
#define PL_MON_LINE_MAX 8192
#define PL_MON_NAME_MAX 256
#define PL_MON_VERSION_MAX 128
#define PL_MON_ORIGINS_MAX 8
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
	char *version; /* the "dist" line's version, else the first "version" line; or NULL */
	char *dist;    /* the distribution that installed it ("dist" line); NULL when none */
	char *origin;  /* bundle, venv, user, system, other ("dist" line); NULL when unknown */
};

/* One process, as its log tells it. Strings are NULL when the log lacks them. */
struct pl_mon_process {
	long long pid, ppid, rank; /* -1 when absent */
	char *job, *step, *executable, *python, *pyver, *implementation, *main, *container;
	char *hook;   /* how the hook got in: sitecustomize, usercustomize, pth (format 2) */
	double start; /* Unix time; 0 when absent */
	bool exited;  /* an "exit" line: the interpreter reached its normal exit */
	bool forked;
	long long status;	       /* "status": the exit status; -1 when not known */
	long long inherited;	       /* "inherited": packages a fork child got from its parent */
	long long truncated;	       /* "truncated": packages past the hook's 4096 */
	long long lost;		       /* "lost": lines the hook could not write */
	struct pl_mon_import *imports; /* sorted by name, distinct */
	size_t n_imports;
	size_t lines_skipped;
};

/* Parses one log held in data (not NUL-terminated). Returns 0, or -1 with a reason in
 * err when the data is not a log of this format at all (wrong first line), or when
 * memory ran out. Lines that do not parse are skipped and counted in p->lines_skipped;
 * an unterminated last line is one of them. The log ends at its first NUL byte (the
 * hook preallocates its log with zeros). p need not be initialised; free it with
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
	struct pl_mon_tallies origins;
	char *distribution; /* of a package: the first distribution a process named */
};

/* Packages (or distributions) by name, with an open-addressing index. */
struct pl_mon_table {
	struct pl_mon_package *items;
	size_t n, cap;
	uint32_t dropped; /* imports of names past PL_MON_PACKAGES_MAX */
	size_t *index;	  /* position + 1, 0 = free */
	size_t index_cap;
};

/* What one node saw of one job. */
struct pl_mon_node {
	uint32_t processes, incomplete, forked;
	uint32_t logs_read, logs_skipped;
	uint64_t lines_skipped;
	double start; /* earliest start of a process, 0 when none gave one */
	bool partial; /* the deadline stopped the reading */
	struct pl_mon_tallies steps, mains, interpreters, containers, statuses, hooks;
	struct pl_mon_table pkgs;	 /* by import name */
	struct pl_mon_table dists;	 /* by distribution: attr and attrs count once a process */
	uint32_t processes_truncated;	 /* processes whose hook stopped at 4096 packages */
	uint64_t imports_truncated;	 /* the packages they could not list */
	uint64_t lines_lost;		 /* lines the hooks could not write (full spool) */
	uint32_t unlogged;		 /* processes that could not write a log (.unlogged) */
	uint32_t python_tasks;		 /* tasks that exec'd Python (task_init's notes) */
	uint32_t python_tasks_unhooked;	 /* of those, the ones that left no log: -I, -S, -E */
	long long *log_pids, *task_pids; /* pids of logs and .unlogged markers; of task notes */
	size_t n_log_pids, n_task_pids;
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

/* Counts the task notes whose pid left neither a log nor an .unlogged marker. Called by
 * pl_mon_collect() after the last file. */
void pl_mon_node_match_tasks(struct pl_mon_node *node);

/* Reads every "*.log" directly in the spool directory dir_fd (other names, the hook's
 * .hook directory and its byte-code cache included, are left alone): regular files
 * owned by uid, of the job job_id (their "job" line), opened without following
 * symbolic links or blocking on FIFOs. Stops at deadline_ms (CLOCK_MONOTONIC, in
 * ms; 0 = none) and sets node->partial. Skipped files are logged (the first few by
 * name, then a count). "*.unlogged" files and task_init's "*.python-task" notes are
 * counted (their names only). Returns 0, or -1 when the directory cannot be read. */
int pl_mon_collect(int dir_fd, uid_t uid, const char *job_id, long long deadline_ms,
		   struct pl_mon_node *node);

/* CLOCK_MONOTONIC in ms, the clock of every deadline of the monitor. */
long long pl_mon_now_ms(void);

#endif
