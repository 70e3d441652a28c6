/* The site configuration: built-in defaults, amended by the YAML file (etc/pylaunch.yaml is the
 * annotated example, every key at its default) and then by KEY=VALUE arguments on the
 * plugstack.conf line. One schema (config_schema.c) serves the file and the arguments alike.
 * Pure apart from reading the file; errors come back as one line of text for the caller to log. */
#ifndef PL_CONFIG_H
#define PL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A configuration file is a few kilobytes; anything bigger is a mistake or an attack. */
#define PL_CONFIG_MAX_FILE_SIZE (1024 * 1024)
#define PL_CONFIG_MAX_SINKS 16
#define PL_CONFIG_MAX_STAFF_GROUPS 64
#define PL_CONFIG_MAX_BUNDLES 64
#define PL_BUNDLE_NAME_MAX 64

enum pl_sink_type { PL_SINK_FILE, PL_SINK_SYSLOG };

/* A setting that may leave the answer to Slurm: "auto", or a boolean. */
enum pl_auto_bool { PL_AUTO, PL_YES, PL_NO };

struct pl_sink {
	enum pl_sink_type type;
	char *path;	    /* file: absolute path of the JSON Lines file (required) */
	char *address;	    /* syslog: "local" (default), "udp://HOST:PORT" or "tcp://HOST:PORT" */
	char *facility;	    /* syslog: RFC 5424 name, "user" (default) .. "local7" */
	size_t max_message; /* syslog: longest message in bytes, 8192 (default); 480..1M */
};

struct pl_config {
	char *source;		 /* path it was read from, or "(defaults)" */
	bool debug;		 /* debug: false */
	char *stage_dir;	 /* stage.dir: /dev/shm/pylaunch */
	uint64_t stage_max_size; /* stage.max_size: 16G, extracted bytes per job and node */
	unsigned
	    stage_max_entries; /* stage.max_entries: 500000, extracted entries per job and node */
	bool stage_ld_library_path; /* stage.ld_library_path: true */
	unsigned stage_timeout;	    /* stage.timeout: 600 s, bound for staging in the prolog */
	unsigned epilog_timeout;    /* epilog.timeout: 60 s, bound for the whole epilog */
	bool tree_enabled;	    /* tree.enabled: true (false: every node reads itself) */
	unsigned tree_fanout;	    /* tree.fanout: 4 (1..64) */
	unsigned tree_port_min;	    /* tree.ports: 47000-47999 */
	unsigned tree_port_max;
	unsigned tree_connect_timeout; /* tree.connect_timeout: 5 s */
	unsigned tree_stall_timeout;   /* tree.stall_timeout: 30 s */
	bool tree_store_and_forward;   /* tree.store_and_forward: false (benchmarks) */
	bool monitor_default;	       /* monitor.default: off */
	double monitor_sample_rate;    /* monitor.sample_rate: 1.0 */
	char *monitor_spool_dir;       /* monitor.spool_dir: /dev/shm/pylaunch-spool */
	char *monitor_hook_dir; /* monitor.hook_dir: where make install put sitecustomize.py */
	unsigned monitor_epilog_timeout; /* monitor.epilog_timeout: 30 s */
	size_t monitor_record_max;	 /* monitor.record_max: 1 MiB, bytes of one record */
	char **staff_groups;		 /* monitor.staff_groups: [] */
	size_t n_staff_groups;
	struct pl_sink *sinks; /* monitor.sinks: [] */
	size_t n_sinks;
	char **bundles; /* bundles: {} ("NAME=/PATH" each), chosen by --pybundle=@NAME */
	size_t n_bundles;
	/* tree.prolog_alloc: auto (believe Slurm), yes or no: PrologFlags=Alloc is set */
	enum pl_auto_bool tree_prolog_alloc;
	char *policy_default_bundle; /* policy.default_bundle: "" (none), a name in bundles */
	unsigned policy_min_nodes;   /* policy.min_nodes: 2, jobs it applies to */
	bool cache_enabled;	     /* cache.enabled: false (cache.h, the node cache) */
	uint64_t cache_max_size;     /* cache.max_size: 8G, bytes of cached trees per node */
	unsigned cache_max_entries;  /* cache.max_entries: 16, cached trees per node */
	bool cache_verify_digest;    /* cache.verify_digest: false (true: hash the bundles) */
};

/* Fills cfg with the built-in defaults; cfg need not be initialised. Should an allocation fail,
 * the string in question is NULL and pl_config_validate() refuses it. */
void pl_config_init_defaults(struct pl_config *cfg);

/* Reads path into cfg (which holds defaults, or what an earlier call left). A key the file gives
 * replaces the value in cfg, lists included; keys it does not give keep theirs; cfg->source
 * becomes path. A file that does not exist (ENOENT) leaves cfg alone and returns 0; an empty
 * file (or comments only, or "---") changes only cfg->source. Any other problem returns -1 with
 * one line in err, "FILE:LINE: KEY: REASON" (or "FILE: REASON" when the file cannot be read,
 * e.g. "FILE: Permission denied"); cfg may then be partly updated, but can always be freed.
 * Refused: files over PL_CONFIG_MAX_FILE_SIZE, anything but a regular file, more than one
 * YAML document, anchors, aliases and tags, unknown and duplicate keys. */
int pl_config_load_file(struct pl_config *cfg, const char *path, char *err, size_t errlen);

/* One override from the plugstack.conf line, dotted key and value as written there:
 * ("tree.fanout", "4"), ("monitor.default", "on"), ("stage.dir", "/tmp/x"), ("debug", "yes"),
 * ("monitor.staff_groups", "staff,admins"; "" for none). Every key but monitor.sinks can be set.
 * On failure cfg is unchanged and err holds
 * "plugstack argument 'tree.fanout=abc': expected an integer between 1 and 64". */
int pl_config_set(struct pl_config *cfg, const char *key, const char *value, char *err,
		  size_t errlen);

/* The checks that need the whole configuration, once everything is applied: every value within
 * its bounds, paths absolute, stage.dir and monitor.spool_dir apart, every sink complete.
 * err: "SOURCE: KEY: REASON". */
int pl_config_validate(const struct pl_config *cfg, char *err, size_t errlen);

/* Frees what cfg holds and zeroes it; a zeroed cfg may be freed again. */
void pl_config_free(struct pl_config *cfg);

/* The dotted name of the index-th key of the schema, NULL past the last (for documentation
 * checks and for listing the keys in messages). */
const char *pl_config_key_name(size_t index);

/* The path of the site bundle name, or NULL. */
const char *pl_config_bundle(const struct pl_config *cfg, const char *name);

/* "file" or "syslog". */
const char *pl_sink_type_name(enum pl_sink_type type);

#endif
