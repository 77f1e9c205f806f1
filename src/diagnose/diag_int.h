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

/* ---- one run of the engine (diag_engine.c and the files it is split into) ---- */

/* the number of entries of an array of words */
#define NOF(a) (sizeof(a) / sizeof *(a))

#define MAX_LINES 5000     /* per source */
#define MAX_LINE_LEN 32768 /* bytes per entry (the tool schema caps 8192 characters) */
#define MAX_METRICS 5000
#define MAX_JOBS 1000
#define MAX_HISTORY 100
#define MAX_EVIDENCE 5
#define EVIDENCE_CLIP 240
#define HAS_EVIDENCE 0.3 /* a class "has evidence" for correlation boosts */

static const int KIND_OF[DS_N] = {DK_KERNEL, DK_JOB,   DK_EVENTS,  DK_SLURM,
                                  DK_SLURM,  DK_SLURM, DK_HISTORY, DK_METRICS};
static const char *const KIND_NAME[DK_N] = {"kernel_log", "job_log", "events",     "metrics",
                                            "slurm",      "history", "correlation"};
/* What an anomaly from each source points at: the node (kernel, node
 * state and reason, metrics), the job (its log, its Slurm record, its
 * history), or neither alone (events mix node tools and pod events). */
static const int SRC_LEVEL[DS_N] = {1, 0, -1, 1, 1, 0, 0, 1};
static const char *const SRC_LABEL[DS_N] = {"kernel_log",   "job_log",          "events",
                                            "slurm.reason", "slurm.node_state", "slurm.jobs",
                                            "history",      "metrics"};

typedef struct tline {
    int src;
    const char *s;
    size_t len;
    int entry; /* index of the job / history entry it came from */
} tline;

typedef struct rawm {
    int sig;
    int line;
    int xid;
    char pid[32];
    char key[64];
    char val[64];
    char host[64];
} rawm;

typedef struct hit {
    int cls;
    int kind;
    int strength;
    double p;
    char group[80];
    char *text; /* owned evidence */
    bool old;   /* logged before the last reboot of its source */
} hit;

typedef struct anomaly {
    int strength;
    int level; /* what it points at: 2 the fleet, 1 the node, 0 the job, -1 neither alone */
    char group[80];
    char *text; /* owned */
} anomaly;

typedef struct run {
    const struct fm_diag_db *db;
    tline *lines;
    int nlines, caplines;
    char **owned; /* strings built for slurm.jobs / history / node_state */
    int nowned, capowned;
    rawm *raws;
    int nraws, capraws;
    hit *hits;
    int nhits, caphits;
    pcre2_match_data *md;
    const char *node;
    int nsrc[DS_N];
    bool oom;       /* allocation failure somewhere */
    anomaly *anoms; /* what no class explains */
    int nanoms, capanoms;
    const char *marks[32]; /* marker groups seen since the last reboot */
    int nmarks;
    const diag_xrec *rec; /* Xid 154: the driver's strongest recovery action */
    int rec_line;
    unsigned char *xidcls;      /* per class: evidence came from an Xid */
    json_t *absent;             /* metrics_expected missing from DCGM metrics given, or NULL */
    json_t *textm;              /* samples of Prometheus text pasted into events / a job log */
    json_t *idle;               /* host+GPU -> true: its latest utilisation reads (nearly) none */
    bool kernel_given;          /* a kernel log was collected, even if empty */
    bool injected;              /* a source says DCGM errors were injected on purpose */
    char gauge_xids[96];        /* "xid=62 xid=48": codes DCGM's last-Xid gauge holds on this
                                 * node with no Xid record of the window read to age them */
    unsigned char *oldl;        /* per line: logged before the node's current boot */
    bool cur_old;               /* hits being added come from before a reboot */
    bool repaired;              /* a repair (a reset, a part swapped) is on record */
    unsigned char cleared[256]; /* a class whose state a later reading shows clean */
    int clean[4], nclean;       /* classes a live metric reads clean on every GPU */
    double clean_at;            /* when (the latest sample's time, else now) */
    bool clean_fell;            /* the series itself went from set to 0 before it */
    bool cur_reason;            /* hits being added come from a drain reason while fresher
                                 * sources (kernel log, events, metrics) were collected */
    tline flat[16];             /* lines saying a counter did not move (taken out) */
    int nflat;
    double newest; /* the latest stamp of any line; NAN: none, or not yet read */
    bool newest_read;
} run;

typedef struct cstate {
    double conf;
    bool corroborated;
    unsigned kinds;
    int maxstr;
    bool any;
} cstate;

/* Why a line is history: 1 before the node's current boot, 2 a record of
 * another host, 3 before a repair on record, 4 a job log's earlier run,
 * 5 an earlier attempt of the job. */
static const char *const OLD_NOTE[] = {NULL,
                                       "[before the last reboot: history] ",
                                       "[another host's record, not this node's: history] ",
                                       "[before a recorded repair: history] ",
                                       "[a day or more before the job's latest record: history] ",
                                       "[an earlier attempt of the job: history] ",
                                       "[an application's Xid a day or more before the latest "
                                       "record: history] ",
                                       "[before a later reading that shows it cleared: history] ",
                                       "[a job before later ones on the node that completed: "
                                       "history] "};
#define OLD_APP_XID 6
#define OLD_CLEARED 7
#define OLD_JOB_BEFORE_CLEAN 8

/* Shared between the engine's files.  diag_engine.c: allocation, evidence,
 * hits and anomalies, Xids seen. */
void *diag_grow(void *p, int *cap, int need, size_t elem, bool *oom);
char *diag_own(run *r, char *s);
char *diag_fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
json_t *prom_sample(const char *s, size_t len);
void add_line(run *r, int src, const char *s, size_t len, int entry);
char *diag_evidence(const char *prefix, const char *s, size_t len);
void add_hit(run *r, int cls, int kind, int strength, const char *group, char *text);
void add_anomaly(run *r, int strength, int level, const char *group, char *text);
int action_rank(const char *a);
bool app_xid_old(run *r, int line, const diag_xid *x);
void xid_seen(run *r, int code, int kind, int cap, const char *group, int line,
              char *(*ev)(run *, int, const char *, const void *), const void *evarg);
/* diag_intake.c: signals as lines, text signatures as hits, Prometheus answers. */
int need_array(const json_t *v, const char *name, size_t max, fm_err *err);
int take_text(run *r, const json_t *arr, int src, const char *name, fm_err *err);
const char *diag_jstr(const json_t *o, const char *k, char *buf, size_t n);
int take_slurm(run *r, const json_t *sl, fm_err *err);
int take_history(run *r, const json_t *h, fm_err *err);
void cap_copy(const char *line, const PCRE2_SIZE *ov, uint32_t n, char *dst, size_t dl);
void scan_all(run *r);
void drop_quoted(run *r);
bool any_line_matches(run *r, const diag_re *re, unsigned mask);
bool cross_source_ok(run *r, const diag_sig *g);
bool context_ok(run *r, const diag_sig *g, int li);
char *line_evidence(run *r, int li, const char *extra);
bool group_marked(const run *r, const char *group);
bool anomaly_seen(const run *r, const char *group);
void text_hits(run *r);
json_t *prom_metrics(const json_t *signals);
int fresh_groups(const run *r, int c);
/* diag_metric.c */
const char *host_of(const json_t *labels, char *buf, size_t n);
void gpu_key(const json_t *labels, char *out, size_t n);
double sample_time(const json_t *o);
bool same_host(const char *host, const char *node);
void metrics_absent(run *r, const json_t *metrics, size_t n);
void metrics_clean_now(run *r, const json_t *metrics);
void gauge_xids(run *r, const json_t *metrics);
int metric_hits(run *r, const json_t *metrics, fm_err *err);
/* diag_outcome.c */
json_t *class_entry(run *r, int c, const cstate *s, const json_t *taxonomy, const int *absorbed);
int kinds_present(const run *r, char *names, size_t n);
json_t *healthy_entry(run *r, double best, const json_t *taxonomy);
json_t *inconclusive_entry(run *r, double best, const json_t *taxonomy, int ic);
void apply_recovery(run *r, cstate *cs);
/* diag_rules.c */
void warm_straggler(run *r);
void rule_multi_job(run *r, const cstate *cs, const diag_rule *ru, const json_t *jobs);
void rule_history(run *r, const cstate *cs, const diag_rule *ru);
void rule_captures(run *r, const diag_rule *ru);
int diag_cmp_double(const void *a, const void *b);
void rule_outlier(run *r, const diag_rule *ru);
void rule_below_reference(run *r, const diag_rule *ru);
void rule_config_chosen(run *r, const diag_rule *ru);
void rule_unowned(run *r, const diag_rule *ru);
void rule_slowdown_after(run *r, const diag_rule *ru);
/* diag_facts.c: job-level facts across sources, one rule over them, and
 * the small readers the facts files share */
void job_facts_rule(run *r, const json_t *metrics);
bool facts_has(const tline *l, const char *w);
bool facts_has_ci(const tline *l, const char *w);
bool facts_any(const tline *l, const char *const *w, size_t n);
void facts_drop_class(run *r, int c);
bool facts_class_hit(const run *r, int c);
/* every hit of class c from one of the signatures named (ids, no kind) */
bool facts_hits_only_from(const run *r, int c, const char *const *ids, size_t n);
bool facts_hardware_hit(const run *r);
/* diag_facts_avail.c: a hit of a node's destructive class other than c, now */
bool facts_other_node_fault(const run *r, int c);
bool facts_no_answer(const run *r, int i);
/* diag_facts_node.c: links, remap state, peers */
bool facts_link_down(const tline *l); /* a port's line telling it went down */
bool facts_link_up(const tline *l);   /* ... up or back */
int facts_port_last(const run *r);    /* the port's last told state: -1 down, 1 up, 0 none */
int facts_downed_class(const run *r, int st); /* a rising downed counter: flapping or link down */
void link_rule(run *r);
void downed_series_rule(run *r, const json_t *metrics); /* a port's link-downed series rising */
void avail_rule(run *r); /* a planned down that ended; a node the scheduler cannot authenticate */
void remap_rule(run *r);
void contained_count_rule(run *r, const json_t *metrics); /* Xid 94's own DBE count */
void fabric_down_rule(run *r); /* the fabric service down, no link fault told */
void ray_spec_rule(run *r);    /* a RayCluster's wrong spec behind a taint */
void remap_metric_rule(run *r, const json_t *metrics);
void peer_rule(run *r, const json_t *metrics);
void fleet_rule(run *r);
void fleet_metric_rule(run *r, const json_t *metrics);
void wide_straggler_rule(run *r); /* hosts as a step-time table's columns */
/* a port read down that nothing uses */
void unused_port_rule(run *r, const json_t *metrics);
int disk_cleaned_lines(run *r, unsigned char *q);     /* a filesystem full, room since */
int user_stop_lines(run *r, unsigned char *q);        /* app Xids at the user's own stop */
int sensor_recovered_lines(run *r, unsigned char *q); /* a BMC sensor past, back since */
/* diag_facts_state.c: what earlier jobs left behind */
void reboot_rule(run *r);
void disagree_rule(run *r);
void gone_from_bus_rule(run *r);              /* no handle for a GPU, lspci lists nothing at it */
void silent_log_rule(run *r, bool gpus_zero); /* gpus_zero: the metrics read ~0 */
void app_fault_rule(run *r, const json_t *metrics);
void held_memory_rule(run *r);
void own_oom_rule(run *r);      /* the rows of a process listed are the OOM job's own */
void follows_node_rule(run *r); /* failed attempts on this node, a clean one without it */
/* diag_facts_hist.c: readings that are history (a counter read flat, a
 * boot's link noise) taken out as quotes are; a counter read rising */
int history_lines(run *r, unsigned char *q);
/* "key: value" / "key = value" pairs of a line (a table row named by its
 * header reads so too), keys lower-cased words; a leading stamp skipped */
typedef struct facts_pair {
    char key[96];
    size_t val, vlen; /* the value's span in the line */
} facts_pair;
int facts_pairs(const tline *l, facts_pair *p, int cap);
/* diag_facts_clock.c: a GPU's memory clock far below its own maximum or
 * its peers' with no clock event to explain it: an anomaly */
void mem_clock_rule(run *r, const json_t *metrics);
/* ... and a power cap an approved change set, the GPUs at baseline: no fault */
void power_policy_rule(run *r);
void power_slowdown_rule(run *r); /* a cap read as a reason, performance below expected */
/* ... and a straggler only people claim, which measurements put with its peers */
void refuted_claim_rule(run *r);
/* diag_facts_sweep.c: the largest batch sizes of a sweep ran out of memory */
void batch_sweep_rule(run *r);
/* diag_facts_resv.c: a reservation held empty while jobs wait for capacity */
void reservation_rule(run *r, const json_t *metrics, bool gpus_idle); /* the metrics read ~0 */
/* diag_facts_coll.c: rank groups at a collective with different sizes */
void size_divergence_rule(run *r);
/* diag_facts_strag.c: a distributed job waiting on one hot or slow node */
void straggler_heat_rule(run *r);
/* diag_facts_extra.c: a rank slower by work of its own (eval, logging) */
void extra_work_rule(run *r);
/* the host a row of a per-host or per-rank listing names */
bool facts_line_host(const tline *l, char *host, size_t cap);
/* diag_facts_sm.c: the subnet manager telling this node's port bounced */
void sm_port_rule(run *r);
/* diag_facts_scope.c: a shared service (the directory) failing: whose */
void directory_rule(run *r);
/* diag_facts.c: a line saying the GPUs read ~0 */
bool idle_told(const tline *l);
/* ... and a span of hours or days told ("for 6 hours", "7+ hours", "3 days") */
bool long_told(const tline *l);
void counter_rising_rule(run *r);
bool xid_count_zero(const run *r);
/* the number a count line ends with or the next line holds alone, -1 */
long facts_count_answer(const run *r, int li);
/* diag_time.c */
double line_stamp(const char *s, size_t len, int year);
/* its leading stamp, Slurm's appended one, else an ISO 8601 time inside it */
double line_any_stamp(const char *s, size_t len, int year);
/* the host a syslog-style line (or pdsh's "host: " prefix) names, lower case */
bool syslog_host(const char *s, size_t len, char *out, size_t cap);
void find_boots(run *r);
bool before_boot(const run *r, int li);

#endif
