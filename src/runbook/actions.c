/* The fixed action catalog: the only things a runbook step can do.
 *
 * The table itself is data, schemas/actions/NAME.json, generated into
 * fm_action_table (build/gen/actions.gen.c).  Arguments are strict JSON
 * Schemas so a runbook can never smuggle shell text into an executor:
 * free text (reasons, summaries) is limited to a character set without
 * quotes, `$`, backticks, `;`, `|`, `&`, redirections or newlines, and
 * the executors build argv from these validated values anyway. */
#include <string.h>

#include "fleetmcp/fm_runbook.h"

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

const fm_action_def *fm_action_find(const char *name)
{
    for (size_t i = 0; name && i < fm_action_count; i++)
        if (!strcmp(fm_action_table[i].name, name)) return &fm_action_table[i];
    return NULL;
}
