/* The fixed action catalog: the only things a runbook step can do.
 *
 * Data only.  Arguments are strict JSON Schemas so a runbook can never
 * smuggle shell text into an executor: free text (reasons, summaries) is
 * limited to a character set without quotes, `$`, backticks, `;`, `|`,
 * `&`, redirections or newlines, and the executors build argv from these
 * validated values anyway. */
#include <string.h>

#include "fleetmcp/fm_runbook.h"

/* Free text that ends up in a Slurm reason or a ticket title. */
#define TEXT(min, max)                                                                             \
    "{\"type\":\"string\",\"minLength\":" #min ",\"maxLength\":" #max                              \
    ",\"pattern\":\"^[A-Za-z0-9][A-Za-z0-9 .,:()/#%+=@_-]*$\"}"
#define TEAM "{\"type\":\"string\",\"pattern\":\"^[a-z][a-z0-9-]{1,31}$\"}"
#define SEVERITY "{\"enum\":[\"low\",\"medium\",\"high\",\"critical\"]}"
#define NO_ARGS "{\"type\":\"object\",\"additionalProperties\":false,\"maxProperties\":0}"

static const char *const state_names[FM_NODE_STATE_COUNT] = {
    "healthy", "suspect", "quarantined", "repairing", "validating", "returned", "escalated",
};

const char *fm_node_state_name(fm_node_state s)
{
    if ((int)s < 0 || (int)s >= FM_NODE_STATE_COUNT) return NULL;
    return state_names[s];
}

int fm_node_state_parse(const char *name)
{
    for (int i = 0; name && i < FM_NODE_STATE_COUNT; i++)
        if (!strcmp(state_names[i], name)) return i;
    return -1;
}

const fm_action_def fm_action_table[] = {
    {
        .name = "drain",
        .summary = "scontrol drain: no new jobs; running jobs finish (reason fleetmcp:<wf>: ...)",
        .args_schema =
            "{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"reason\"],"
            "\"properties\":{\"reason\":" TEXT(3, 160) "}}",
        .default_timeout_s = 60,
        .max_timeout_s = 300,
        .mutates_slurm = true,
        .touches_node = true,
        .state_after = FM_NODE_QUARANTINED,
    },
    {
        .name = "wait_idle",
        .summary = "wait until no job runs on the node (bounded by the step's timeout_s)",
        .args_schema = NO_ARGS,
        .default_timeout_s = 3600,
        .max_timeout_s = 86400,
        .state_after = FM_ACTION_STATE_KEEP,
    },
    {
        .name = "cancel_jobs",
        .summary = "scancel every job on the node; always needs a human approval",
        .args_schema = "{\"type\":\"object\",\"additionalProperties\":false,"
                       "\"properties\":{\"reason\":" TEXT(3, 160) "}}",
        .default_timeout_s = 120,
        .max_timeout_s = 600,
        .destructive = true,
        .mutates_slurm = true,
        .needs_approval_always = true,
        .touches_node = true,
        .state_after = FM_ACTION_STATE_KEEP,
    },
    {
        .name = "requeue_jobs",
        .summary = "scontrol requeue the node's jobs with the node excluded; always needs approval",
        .args_schema = "{\"type\":\"object\",\"additionalProperties\":false,"
                       "\"properties\":{\"exclude_node\":{\"const\":true}}}",
        .default_timeout_s = 120,
        .max_timeout_s = 600,
        .destructive = true,
        .mutates_slurm = true,
        .needs_approval_always = true,
        .touches_node = true,
        .state_after = FM_ACTION_STATE_KEEP,
    },
    {
        .name = "reboot",
        .summary = "scontrol reboot ASAP nextstate=DOWN: the node stays out until verified",
        .args_schema = "{\"type\":\"object\",\"additionalProperties\":false,"
                       "\"properties\":{\"reason\":" TEXT(3, 160) "}}",
        .default_timeout_s = 120,
        .max_timeout_s = 600,
        .destructive = true,
        .mutates_slurm = true,
        .touches_node = true,
        .state_after = FM_NODE_REPAIRING,
    },
    {
        .name = "wait_node_up",
        .summary = "wait for slurmd to re-register after a reboot (bounded by timeout_s)",
        .args_schema = NO_ARGS,
        .default_timeout_s = 900,
        .max_timeout_s = 3600,
        .state_after = FM_ACTION_STATE_KEEP,
    },
    {
        .name = "gpu_reset",
        .summary = "nvidia-smi --gpu-reset over SSH; refused while any job uses the GPU",
        .args_schema = "{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"gpu\"],"
                       "\"properties\":{\"gpu\":{\"oneOf\":[{\"const\":\"all\"},"
                       "{\"type\":\"integer\",\"minimum\":0,\"maximum\":15}]}}}",
        .default_timeout_s = 120,
        .max_timeout_s = 600,
        .destructive = true,
        .touches_node = true,
        .state_after = FM_NODE_REPAIRING,
        .superseded_by_reboot = true,
    },
    {
        .name = "health_probe",
        .summary = "dcgmi diag -r LEVEL on the idle node (1 quick, 2 medium, 3 long)",
        .args_schema =
            "{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"level\"],"
            "\"properties\":{\"level\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":3}}}",
        .default_timeout_s = 900,
        .max_timeout_s = 3600,
        .touches_node = true,
        .state_after = FM_ACTION_STATE_KEEP,
    },
    {
        .name = "diag_bundle",
        .summary =
            "node_diag_bundle: nvidia-smi -q, kernel Xid lines, dcgmi health, ibstat; stored",
        .args_schema = NO_ARGS,
        .default_timeout_s = 120,
        .max_timeout_s = 600,
        .state_after = FM_ACTION_STATE_KEEP,
    },
    {
        .name = "verify_gpu",
        .summary =
            "re-read the node's GPU and fabric health; fails if a named fault is still there",
        .args_schema =
            "{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"checks\"],"
            "\"properties\":{\"checks\":{\"type\":\"array\",\"minItems\":1,\"maxItems\":9,"
            "\"uniqueItems\":true,\"items\":{\"enum\":[\"xid\",\"ecc_dbe\","
            "\"row_remap_failure\",\"row_remap_pending\",\"nvlink\",\"temp\",\"pcie\","
            "\"gpus_present\",\"ib\"]}}}}",
        .default_timeout_s = 300,
        .max_timeout_s = 1800,
        .state_after = FM_NODE_VALIDATING,
    },
    {
        .name = "resume",
        .summary = "scontrol resume, only a drain fleetmcp owns",
        .args_schema = NO_ARGS,
        .default_timeout_s = 60,
        .max_timeout_s = 300,
        .mutates_slurm = true,
        .touches_node = true,
        .state_after = FM_NODE_RETURNED,
    },
    {
        .name = "escalate",
        .summary = "hand the node to a team: ticket with the diag bundle; node stays out",
        .args_schema = "{\"type\":\"object\",\"additionalProperties\":false,"
                       "\"required\":[\"team\",\"severity\"],"
                       "\"properties\":{\"team\":" TEAM ",\"severity\":" SEVERITY "}}",
        .default_timeout_s = 60,
        .max_timeout_s = 300,
        .state_after = FM_NODE_ESCALATED,
    },
    {
        .name = "ticket",
        .summary =
            "open or update the deduplicated ticket for node and fault class; node unchanged",
        .args_schema = "{\"type\":\"object\",\"additionalProperties\":false,"
                       "\"required\":[\"team\",\"severity\"],"
                       "\"properties\":{\"team\":" TEAM ",\"severity\":" SEVERITY
                       ",\"summary\":" TEXT(3, 160) "}}",
        .default_timeout_s = 60,
        .max_timeout_s = 300,
        .state_after = FM_ACTION_STATE_KEEP,
    },
    {
        .name = "monitor",
        .summary = "watch the fault's signals for window_s and record them; changes nothing",
        .args_schema =
            "{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"window_s\"],"
            "\"properties\":{\"window_s\":{\"type\":\"integer\",\"minimum\":60,"
            "\"maximum\":604800},\"checks\":{\"type\":\"array\",\"minItems\":1,"
            "\"maxItems\":9,\"uniqueItems\":true,\"items\":{\"enum\":[\"xid\",\"ecc_dbe\","
            "\"row_remap_failure\",\"row_remap_pending\",\"nvlink\",\"temp\",\"pcie\","
            "\"gpus_present\",\"ib\"]}}}}",
        .default_timeout_s = 3600,
        .max_timeout_s = 605000,
        .state_after = FM_ACTION_STATE_KEEP,
    },
    {
        .name = "set_state",
        /* Never a state that puts the node back in service: only resume,
         * after verification, does that. */
        .summary = "bookkeeping: record the node's remediation state",
        .args_schema =
            "{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"state\"],"
            "\"properties\":{\"state\":{\"enum\":[\"suspect\",\"quarantined\","
            "\"escalated\"]}}}",
        .default_timeout_s = 10,
        .max_timeout_s = 60,
        .state_after = FM_ACTION_STATE_FROM_ARGS,
    },
};

const size_t fm_action_count = sizeof fm_action_table / sizeof fm_action_table[0];

const fm_action_def *fm_action_find(const char *name)
{
    for (size_t i = 0; name && i < fm_action_count; i++)
        if (!strcmp(fm_action_table[i].name, name)) return &fm_action_table[i];
    return NULL;
}
