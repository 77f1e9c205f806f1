/* Runbooks: the fixed action catalog and the YAML runbook catalog.
 *
 * An action is the only thing a runbook step can do.  The catalog below is
 * data: each action's typed arguments (a JSON Schema), timeouts, whether it
 * is destructive or mutates Slurm, and the node remediation state it moves
 * the node to on success.  The workflow engine maps action names to
 * executors; nothing here executes anything.
 *
 * Runbooks are runbooks/rb-*.yaml, validated against the embedded
 * schemas/runbook.schema.json and then semantically (actions exist, args
 * validate against the action's schema, unique step ids, fault classes in
 * runbooks/fault-classes.yaml, autonomy consistent with what the steps
 * do).  Loading is all or nothing and happens at first use, never at
 * server start (cold start budget). */
#ifndef FM_RUNBOOK_H
#define FM_RUNBOOK_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "fleetmcp/fm_config.h"
#include "fleetmcp/fm_error.h"
#include "fleetmcp/fm_tool.h"

struct fm_ctx;

/* --- node remediation states -------------------------------------------- */

typedef enum {
    FM_NODE_HEALTHY = 0,
    FM_NODE_SUSPECT = 1,
    FM_NODE_QUARANTINED = 2,
    FM_NODE_REPAIRING = 3,
    FM_NODE_VALIDATING = 4,
    FM_NODE_RETURNED = 5,
    FM_NODE_ESCALATED = 6,
} fm_node_state;

#define FM_NODE_STATE_COUNT 7

/* "healthy".."escalated", or NULL for a value out of range. */
const char *fm_node_state_name(fm_node_state s);
/* The state named name, or -1 if unknown (exact, lower case). */
int fm_node_state_parse(const char *name);

/* --- action catalog -------------------------------------------------------- */

/* fm_action_def.state_after when the action leaves the node state alone,
 * and when the new state is the action's own `state` argument (set_state). */
#define FM_ACTION_STATE_KEEP (-1)
#define FM_ACTION_STATE_FROM_ARGS (-2)

struct fm_step_ctx; /* one running step, private to src/workflow/engine.c */

/* A tool an executor calls through fm_tools_call_internal, named by the
 * action's data, and the gate steps it passes (FM_GATE_EXEMPT_*). */
typedef struct fm_action_call {
    const char *tool; /* NULL: the action calls no tool for this */
    unsigned exempt;
} fm_action_call;

/* One row per schemas/actions/NAME.json, generated into C by
 * tools/gen-registry.py --actions: the runbook loader, the gate, the
 * planner and the workflow engine read this table and nothing else, and
 * compare no action name in C. */
typedef struct fm_action_def {
    const char *name;
    const char *summary;        /* one line, for humans and plans */
    const char *args_schema;    /* JSON Schema text (object, strict) */
    int default_timeout_s;      /* when the step names none */
    int max_timeout_s;          /* a step may not ask for more */
    bool destructive;           /* may kill work or disturb a GPU */
    bool mutates_slurm;         /* changes Slurm state (drain, reboot, resume...) */
    bool needs_approval_always; /* even on canary nodes */
    bool touches_node;          /* node action: runbook autonomy canary or hitl */
    int state_after;            /* fm_node_state on success, or FM_ACTION_STATE_* */
    bool superseded_by_reboot;  /* a pending reboot does it too (GPU reset) */
    bool takes_capacity;        /* takes the node out: reserved against the blast radius */
    int state_during;           /* fm_node_state the reservation records while a step that
                                   takes the node runs (quarantined, or repairing) */
    bool resumable;             /* safe to run again if the server died mid-step */
    int lease_s;                /* >0: the process holds the step this long at most (a
                                   monitor's timeout_s covers its whole window) */
    const char *only_in;        /* the one step list it may appear in, or NULL */
    fm_action_call bundle;      /* the tool that takes its diagnostic bundle */
    fm_action_call ticket;      /* the tool that files its ticket */
    int (*exec)(struct fm_step_ctx *sc, fm_err *err); /* src/workflow/engine.c */
} fm_action_def;

extern const fm_action_def fm_action_table[];
extern const size_t fm_action_count;

/* The action named name, or NULL. */
const fm_action_def *fm_action_find(const char *name);

/* Waiting actions (wait_idle, wait_node_up) take their bound from the
 * step's timeout_s, the one place a runbook states how long to wait. */

/* --- runbook catalog ------------------------------------------------------- */

typedef struct fm_runbook {
    const char *id; /* borrowed from doc */
    long long version;
    char path[512]; /* source file */
    fm_autonomy autonomy;
    bool destructive;
    json_t *doc; /* owned: the runbook as loaded (read-only) */
} fm_runbook;

struct fm_runbooks {
    char dir[512];
    fm_runbook *items; /* sorted by id */
    size_t count;
};

/* The runbook directory: FLEETMCP_RUNBOOKS, then config `runbooks: {dir}`
 * (relative to the config file's directory), then <exe dir>/../runbooks,
 * <exe dir>/../share/fleetmcp/runbooks, then FM_SHARE_DIR/runbooks; the
 * first that exists (the last candidate otherwise).  cfg may be NULL.
 * Returns buf. */
const char *fm_runbooks_dir(const fm_config *cfg, char *buf, size_t len);

/* Loads and checks every runbook in dir.  On any problem returns -1 with
 * FM_ERR_INVALID "file:line: pointer: why (and N more...)"; nothing is
 * half-loaded.  *out is new; free with fm_runbooks_free. */
int fm_runbooks_open(const char *dir, struct fm_runbooks **out, fm_err *err);

/* Loads the catalog into ctx->runbooks unless already there.  Returns 0. */
int fm_runbooks_load(struct fm_ctx *ctx, fm_err *err);

/* Every problem in dir as "file:line: pointer: why" strings (new array;
 * empty when the catalog is sound).  For `fleetmcp check-config`. */
json_t *fm_runbooks_check(const char *dir);

/* check-config helper: prints the problems of the configured runbook
 * directory to out, one a line, and returns how many there were. */
size_t fm_runbooks_report(const fm_config *cfg, FILE *out);

/* Lookup by id, and the runbook covering a fault class; NULL if none. */
const fm_runbook *fm_runbook_find(const struct fm_runbooks *rbs, const char *id);
const fm_runbook *fm_runbook_for_class(const struct fm_runbooks *rbs, const char *fault_class);

void fm_runbooks_free(struct fm_runbooks *rbs);

#endif
