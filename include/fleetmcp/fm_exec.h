/* Node executor: runs a fixed catalog of commands on a node (over SSH,
 * src/backends/exec_ssh.c) and nothing else.
 *
 * Callers name a catalog entry (fm_cmd_id) and pass typed arguments; the
 * catalog (src/backends/exec_catalog.c) validates every argument against
 * a strict pattern and builds the argv.  No caller ever supplies command
 * text, so nothing but the commands below can reach a node. */
#ifndef FM_EXEC_H
#define FM_EXEC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fleetmcp/fm_error.h"

/* Catalog entries.  Numbers are stable (stored in audit rows). */
typedef enum {
    FM_CMD_NVSMI_QUERY = 0, /* nvidia-smi -q [-i GPU] */
    FM_CMD_NVSMI_QUERY_GPU =
        1, /* nvidia-smi --query-gpu=<fixed fields> --format=csv,noheader,nounits */
    FM_CMD_NVSMI_RESET = 2,   /* nvidia-smi --gpu-reset -i BUS (mutating) */
    FM_CMD_DCGMI_DIAG = 3,    /* dcgmi diag -r LEVEL -j */
    FM_CMD_DCGMI_HEALTH = 4,  /* dcgmi health -c -j */
    FM_CMD_KERNEL_XID = 5,    /* journalctl -k ... -g 'NVRM: Xid' (current boot) */
    FM_CMD_IBSTAT = 6,        /* ibstat */
    FM_CMD_KERNEL_LOG = 7,    /* journalctl -k ... -g <fixed signals> (current boot) */
    FM_CMD_JOB_LOG_TAIL = 8,  /* sh -c <fixed script> sh PATH FILE: opens PATH once (dd,
                               * no link followed, no FIFO waited on), checks the
                               * descriptor is the regular file FILE
                               * (owner:dev:inode), tail -c <fixed bound> of it */
    FM_CMD_NODE_CLOCK = 9,    /* date +%s: the node's own clock, for its kernel stamps */
    FM_CMD_JOB_LOG_STAT = 10, /* stat -c <owner|type|size|dev:inode> -- PATH (not followed) */
} fm_cmd_id;

#define FM_CMD_COUNT 11

/* FM_CMD_JOB_LOG_STAT's format: owner's name, file type, size, device:inode. */
#define FM_JOB_LOG_STAT_FORMAT "%U|%F|%s|%d:%i"

/* The field list FM_CMD_NVSMI_QUERY_GPU asks for, in this order. */
#define FM_NVSMI_QUERY_FIELDS                                                                      \
    "index,pci.bus_id,uuid,name,temperature.gpu,power.draw,clocks.sm,memory.used,"                 \
    "memory.total,utilization.gpu,ecc.errors.uncorrected.volatile.total,"                          \
    "ecc.errors.uncorrected.aggregate.total"

/* Arguments; each command uses only the fields its catalog entry names.
 * Initialise with fm_cmd_args_init() so unused fields read as "absent". */
typedef struct fm_cmd_args {
    int gpu_index;    /* 0..63; -1 = absent (all GPUs) */
    char pci_bus[32]; /* "00000000:18:00.0"; "" = absent */
    int diag_level;   /* 1..3 (4 only when allowed by config); 0 = absent */
    char path[256];   /* a job output file, see fm_exec_valid_log_path; "" = absent */
    /* The file path must open as, OWNER:DEV:INODE (fm_exec_valid_file_ident;
     * FM_CMD_JOB_LOG_TAIL): its user may swap the path after its stat. */
    char file[128];
} fm_cmd_args;

void fm_cmd_args_init(fm_cmd_args *a);

/* What one command returned.  out/err_out are NUL-terminated heap copies
 * (may hold NULs inside: use the lengths); free with
 * fm_exec_result_free(). */
typedef struct fm_exec_result {
    int exit_status; /* remote exit status; -1 if unknown (signal, cut short) */
    char *out;       /* stdout, at most max_output_bytes */
    size_t out_len;
    bool truncated; /* stdout was longer than the cap */
    char *err_out;  /* stderr, at most FM_EXEC_MAX_STDERR bytes */
    size_t err_len;
    bool err_truncated;
    char exit_signal[32]; /* e.g. "KILL" when the command died on a signal */
    int64_t duration_ms;
} fm_exec_result;

#define FM_EXEC_MAX_STDERR 16384

void fm_exec_result_free(fm_exec_result *r);

/* The executor interface.  run() returns 0 when the command ran to its end
 * (whatever its exit status), or -1 with err set:
 *   INVALID      an argument fails its pattern (nothing was sent)
 *   NOTFOUND     the node has no address in the config
 *   UNAVAILABLE  connect/handshake failed
 *   HOSTKEY      the node's host key is unknown or changed
 *   AUTH         our key was refused
 *   TIMEOUT      connect or command deadline passed (the channel is closed)
 * A nonzero exit status is not an error: callers read out->exit_status. */
struct fm_exec_ops {
    const char *name;
    int (*run)(void *st, const char *node, fm_cmd_id cmd, const fm_cmd_args *a, fm_exec_result *out,
               fm_err *err);
    void (*close)(void *st);
};

/* Opens the libssh2 executor from the config's ssh section (borrowed).
 * Keys read: user, port, key_file, key_passphrase (secret ref), known_hosts,
 * hosts {node: address}, connect_timeout_ms, command_timeout_ms,
 * max_output_bytes, max_diag_level. */
int fm_exec_ssh_open(const json_t *ssh_section, const struct fm_exec_ops **ops, void **st,
                     fm_err *err);

/* ---- the catalog (src/backends/exec_catalog.c) ------------------------- */

#define FM_CMD_MAX_ARGV 8
#define FM_CMD_MAX_ARG 512 /* job_log_tail's constant script is the longest (~400) */
#define FM_CMD_MAX_REMOTE 1024

typedef struct fm_cmd_line {
    int argc;
    char argv[FM_CMD_MAX_ARGV][FM_CMD_MAX_ARG];
    char remote[FM_CMD_MAX_REMOTE]; /* argv, each element single-quoted */
} fm_cmd_line;

/* Validates a's fields for cmd and fills line.  max_diag_level is the
 * highest level config allows (3 unless raised to 4).  Returns 0, or -1
 * with INVALID naming the bad argument (clipped). */
int fm_cmd_build(fm_cmd_id cmd, const fm_cmd_args *a, int max_diag_level, fm_cmd_line *line,
                 fm_err *err);

/* Stable short name ("nvsmi_query"...) or NULL for an unknown id. */
const char *fm_cmd_name(int cmd);
/* True for commands that change node state (only FM_CMD_NVSMI_RESET). */
bool fm_cmd_mutates(fm_cmd_id cmd);

/* Strict patterns, shared with tools that take these values. */
bool fm_exec_valid_node(const char *s); /* ^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$ */
bool fm_exec_valid_pci_bus(
    const char *s); /* ^[0-9A-Fa-f]{8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7]$ */
/* A job's output file as Slurm records it, once expanded: absolute, at
 * most 255 bytes of [A-Za-z0-9._+@=,~/-], no "." or ".." component, and not
 * under a system tree (/etc, /proc, /sys, /dev, /boot, /root, /run, /usr,
 * /bin, /sbin, /lib, /lib32, /lib64, /libx32, /var/lib, /var/run, /snap): a job record is user
 * input, and the executor must not become a way to read the node's own files. */
bool fm_exec_valid_log_path(const char *s);
/* OWNER:DEV:INODE, what FM_CMD_JOB_LOG_STAT printed for a job's file:
 * ^[A-Za-z0-9._@-]{1,64}:[0-9]{1,20}:[0-9]{1,20}$ */
bool fm_exec_valid_file_ident(const char *s);
/* An IPv4/IPv6 literal or an RFC 1123 host name (what ssh.hosts may hold). */
bool fm_exec_valid_address(const char *s);

/* ---- parsers for what the catalog commands print (src/backends/exec_parse.c)
 * All take untrusted text with its length and return a NEW object with the
 * highlights; they never fail (missing data shows as absent fields). */

/* nvidia-smi -q: {"attached": n, "gpus_seen": n, "gpus": [{bus, temp_c,
 * ecc_dbe_vol, ecc_dbe_agg, remap_pending, remap_failure}], "unreachable": [bus...]} */
json_t *fm_parse_nvsmi_q(const char *text, size_t len, const char *err_text, size_t err_len);
/* journalctl Xid lines: {"lines": n, "xids": [{"pci","xid","count"}], "last": [line...]} */
json_t *fm_parse_kernel_xid(const char *text, size_t len, size_t last_n);
/* dcgmi health -c -j: {"parsed": bool, "overall": "Healthy"|"Warning"|"Failure",
 * "incidents": [{"gpu","system","health","message"}]} */
json_t *fm_parse_dcgmi_health(const char *text, size_t len);
/* ibstat: {"ports": [{"ca","port","state","phys_state","rate"}]} */
json_t *fm_parse_ibstat(const char *text, size_t len);
/* At most max bytes of untrusted output as a NEW JSON string: invalid
 * UTF-8 becomes '?', control characters other than newline/tab ' '. */
json_t *fm_exec_text(const char *s, size_t len, size_t max);

#endif
