/* Private to src/diagnose: the compiled signature catalog. */
#ifndef FM_DIAG_INT_H
#define FM_DIAG_INT_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <jansson.h>
#include <pcre2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fleetmcp/fm_diagnose.h"

/* Text sources, in the order the engine walks them. */
enum {
    DS_KERNEL = 0,
    DS_JOB,
    DS_EVENTS,
    DS_REASON,
    DS_STATE,
    DS_JOBS,
    DS_HISTORY,
    DS_METRICS,
    DS_N
};

/* Independent evidence kinds for corroboration: kernel, job, events,
 * metrics, slurm (reason, state, jobs), history, correlation. */
enum { DK_KERNEL = 0, DK_JOB, DK_EVENTS, DK_METRICS, DK_SLURM, DK_HISTORY, DK_CORR, DK_N };

enum { ST_WEAK = 0, ST_STRONG = 1, ST_DECISIVE = 2 };

enum { OP_GT, OP_GE, OP_LT, OP_LE, OP_EQ, OP_NE, OP_AND };

#define DIAG_MAX_CLASSES 8
#define DIAG_MAX_LABELS 8
#define DIAG_MAX_LITS 16

typedef struct diag_re {
    pcre2_code *code; /* NULL: absent */
} diag_re;

typedef struct diag_metric {
    diag_re name;
    int op;
    double thr;
    int nlabels;
    char *label_key[DIAG_MAX_LABELS];
    diag_re label_re[DIAG_MAX_LABELS];
    int min_series;
    int sustained; /* >0: every sample of the series holds, at least this many */
    bool rising;
    double fell_from; /* >0, with sustained: the last samples hold after one at least this */
    bool counter;     /* cumulative: a large value that did not move is history */
    bool has_with;
    diag_re with_name;
    int with_op;
    double with_thr;
    /* vs: the threshold is vs_factor times the latest sample of another
     * field on the same GPU (a power limit against its default) */
    bool has_vs;
    diag_re vs_name;
    double vs_factor;
    /* outlier: one series' latest value at least this many times the
     * median of all matching series (one slow rank among its peers) */
    double outlier;
} diag_metric;

typedef struct diag_sig {
    char id[64];
    char group[64];
    int cls[DIAG_MAX_CLASSES]; /* taxonomy indexes */
    int ncls;
    bool xid;      /* class from the Xid table via the `xid` capture */
    bool anomaly;  /* no class: an anomaly that must not read as healthy */
    bool marker;   /* no class, no anomaly: a state (the node answers now)
                    * that explains rules can require */
    int level;     /* anomaly points at: 1 node, 0 job, -1 by its source */
    bool recovery; /* Xid 154's recovery action via the key / val captures */
    int boot;      /* 1 marks a (re)boot: errors before it in its source are history;
                    * 2 opens an earlier boot's section (history up to the next mark);
                    * 3 a line's boot id (val), 4 the current boot id (val),
                    * 5 uptime (key days, val h:mm or minutes), 6 boot time (val),
                    * 7 a repair on record dated in val */
    bool multi;    /* every match of the line, not the first (several ranks' records
                    * on one line: "rank 0 ... 0.81s | rank 8 ... 0.80s"; a limit and
                    * its default on one line) */
    int quote;     /* no evidence: 1 the line (quoted), 2 its entry (a note quoting),
                    * 3 the line, which says a counter it names did not move,
                    * 4 its source, which injects errors on purpose (and DCGM's samples) */
    int mca;       /* MCA status word in (?<mca>...): 1 counts only uncorrected, 2 only corrected */
    int xid_cap;   /* strongest strength an xid signature may give */
    unsigned srcmask; /* 1 << DS_* */
    int strength;
    diag_re re;
    diag_re exclude;
    diag_re also;
    diag_re unless;   /* any text line matching it explains the signature away */
    diag_re requires; /* some text line of any source must match */
    diag_re ctx;
    diag_re ctx_stop;
    int ctx_before;
    bool ctx_negate;
    int min_count;
    int min_hosts; /* >1: the lines must name at least this many hosts ((?<host>)) */
    int nlit;
    bool is_metric;
    diag_metric m;
    uint32_t cap_xid, cap_pid, cap_key, cap_val, cap_mca, cap_host; /* group numbers, 0: none */
} diag_sig;

enum {
    RT_MULTI_JOB,
    RT_FOLLOWS_JOB,
    RT_FOLLOWS_NODE,
    RT_SAME_STEP_DIFF,
    RT_CAPTURE_DISAGREE,
    RT_DISTINCT_VALUES,
    RT_OUTLIER,
    RT_CONFIG_CHOSEN,
    RT_EXPLAINS,
    RT_ABSORB,
    RT_BELOW_REFERENCE,
    RT_UNOWNED,
    RT_SLOWDOWN_AFTER
};

typedef struct diag_rule {
    char id[64];
    int type;
    int strength;
    int min_jobs;
    int window_min;
    char states[16][24];
    int nstates;
    int cls;         /* fault_class / if */
    int targets[16]; /* classes / demote / from */
    int ntargets;
    double min;
    double factor;
    int min_keys;
    int sig;             /* capture rules: index into sigs of their pattern */
    diag_re reference;   /* below_reference: the key naming the reference value */
    diag_re block;       /* distinct_values: a line opening a new block (one rank's stack
                          * dump); only the first value of each block counts */
    char if_anomaly[64]; /* explains: an anomaly group instead of a class */
    char and_seen[64];   /* explains: a marker group that must also be seen;
                          * slowdown_after_change: the change it follows */
    char wide_seen[64];  /* slowdown_after_change: a marker group saying the
                          * slowdown is everywhere (the cluster's, not the node's) */
    bool low;            /* outlier by host: the one host far below the rest (the
                          * others' wait for it) instead of far above */
} diag_rule;

typedef struct diag_xid {
    int code;
    int cls; /* -1: no class (informational, or unexplained) */
    int strength;
    bool informational; /* nothing to explain */
    int contained;      /* 1 contained, 0 uncontained, -1 not an ECC error */
    char action[32];    /* NVIDIA's immediate action */
    char invest[32];    /* NVIDIA's investigatory action */
    char mnemonic[64];
    char name[124];
} diag_xid;

/* Xid 154's recovery actions: driver code and label -> resolution bucket. */
typedef struct diag_xrec {
    int code;
    char label[44];
    char action[32];
} diag_xrec;

typedef struct diag_class {
    char id[64];
    char scope[16];
    bool destructive;
    json_t *response; /* owned array */
    char runbook[80]; /* "" when none */
} diag_class;

/* A literal of the prefilter and the signatures that need it. */
typedef struct diag_lit {
    char *text;
    size_t len;
    int *sigs;
    int nsigs;
    int next; /* next literal in the same 3-byte bucket, -1 */
} diag_lit;

struct fm_diag_db {
    double act, report, weak_cap, uncorr_cap;
    double pstrength[3];
    diag_class *classes;
    int nclasses;
    diag_sig *sigs;
    int nsigs;        /* text and metric signatures, then rule patterns */
    int ntext_public; /* number of text signatures exposed to fm_diag_scan */
    int *text_order;  /* sig index of public text signature i */
    diag_rule *rules;
    int nrules;
    diag_xid *xids;
    int nxids;
    diag_xrec *xrecs;
    int nxrecs;
    char **expected; /* metrics_expected: DCGM fields the signatures read */
    int nexpected;
    diag_lit *lits;
    int nlits;
    int *always; /* text signatures without literals */
    int nalways;
    uint8_t bloom[8192]; /* 65536 bits over 3-byte prefixes */
    int32_t *bucket;     /* 65536 heads into lits, -1 */
    uint32_t max_caps;   /* ovector pairs needed */
    bool no_jit;         /* interpreter only (valgrind, FLEETMCP_NO_JIT) */
};

/* Scan one line: calls fn for every text signature whose pattern matches
 * (prefilter first).  stamp must have nsigs slots, owned by the caller;
 * line_no must grow between calls.  md is the caller's match data. */
typedef void (*diag_hit_fn)(void *ud, int sig, const char *line, size_t len, const PCRE2_SIZE *ov);
void diag_scan_line(const struct fm_diag_db *db, unsigned srcbit, const char *line, size_t len,
                    pcre2_match_data *md, uint32_t *stamp, uint32_t line_no, diag_hit_fn fn,
                    void *ud);

bool diag_re_match(const diag_re *re, const char *s, size_t len, pcre2_match_data *md);
int diag_class_index(const struct fm_diag_db *db, const char *id);
const diag_xid *diag_xid_find(const struct fm_diag_db *db, int code);
/* Xid 154's recovery action by its hex code ("0x1") or, failing that, its label. */
const diag_xrec *diag_xrec_find(const struct fm_diag_db *db, const char *code, const char *label);

#endif
