/* Approver roles and the two-person rule: see fm_approval_roles.h. */
#include "fleetmcp/fm_approval_roles.h"

#include <stdio.h>
#include <string.h>

#include "fleetmcp/fm_config.h"
#include "fleetmcp/fm_util.h"

#define MAX_APPROVERS 16        /* more approvals than this on one plan are not looked at */
#define ELICITED "elicitation:" /* approver id prefix of an elicited approval */

void fm_approval_need_for(const json_t *approvals, size_t nodes, bool emergency, const char *role,
                          const char *creator, fm_approval_need *need)
{
    memset(need, 0, sizeof *need);
    need->people = 1;
    snprintf(need->role, sizeof need->role, "%s", role ? role : "");
    snprintf(need->creator, sizeof need->creator, "%s", creator ? creator : "");
    need->separate = fm_cfg_bool(approvals, "separate_creator", true);
    const json_t *two = json_object_get(approvals, "two_person");
    long long above = fm_cfg_int(two, "above_nodes", -1);
    if (above >= 0 && (long long)nodes > above) {
        need->people = 2;
        snprintf(need->why, sizeof need->why,
                 "%zu nodes, over approvals.two_person.above_nodes = %lld", nodes, above);
    } else if (emergency && fm_cfg_bool(two, "emergency", true)) {
        need->people = 2;
        snprintf(need->why, sizeof need->why, "emergency mode");
    }
}

void fm_approval_need_action(const json_t *approvals, const char *action, fm_approval_need *need)
{
    const json_t *two = json_object_get(approvals, "two_person");
    size_t i;
    const json_t *a;
    json_array_foreach(json_object_get(two, "actions"), i,
                       a) if (need->people < 2 && json_is_string(a) &&
                              !strcmp(json_string_value(a), action))
    {
        need->people = 2;
        snprintf(need->why, sizeof need->why, "%s is in approvals.two_person.actions", action);
    }
    const char *role = fm_json_str(json_object_get(approvals, "require_role"), action, "");
    if (!need->role[0] && role[0]) snprintf(need->role, sizeof need->role, "%s", role);
}

void fm_approval_need_guardrails(const json_t *approval_roles, const json_t *verdicts,
                                 fm_approval_need *need)
{
    size_t i;
    const json_t *v;
    json_array_foreach(verdicts, i, v)
    {
        const char *g = fm_json_str(v, "guardrail", "");
        const char *role = fm_json_str(approval_roles, g, "");
        if (!role[0] || !strcmp(role, need->role)) continue;
        snprintf(need->guard_role, sizeof need->guard_role, "%s", role);
        snprintf(need->guard, sizeof need->guard, "%s", g);
        return;
    }
}

static const json_t *key_of(const json_t *approvals, const char *id)
{
    size_t i;
    const json_t *k;
    json_array_foreach(json_object_get(approvals, "keys"), i,
                       k) if (!strcmp(fm_json_str(k, "id", ""), id)) return k;
    return NULL;
}

static bool has_role(const json_t *key, const char *role)
{
    size_t i;
    const json_t *r;
    json_array_foreach(json_object_get(key, "roles"), i,
                       r) if (json_is_string(r) && !strcmp(json_string_value(r), role)) return true;
    return false;
}

/* Appends "; text" to a bounded note, cutting what does not fit. */
static void note(char *buf, size_t len, const char *text)
{
    size_t o = strlen(buf), t = strlen(text);
    if (o && o + 2 < len) {
        memcpy(buf + o, "; ", 2);
        o += 2;
    }
    if (o + t >= len) t = len - o - 1;
    memcpy(buf + o, text, t);
    buf[o + t] = '\0';
}

void fm_approval_need_roles(const fm_approval_need *need, char *buf, size_t len)
{
    if (need->role[0] && need->guard_role[0])
        snprintf(buf, len, " with roles %s and %s (guardrail %s)", need->role, need->guard_role,
                 need->guard);
    else if (need->role[0] || need->guard_role[0])
        snprintf(buf, len, " with role %s%s%s%s", need->role[0] ? need->role : need->guard_role,
                 need->guard_role[0] ? " (guardrail " : "", need->guard_role[0] ? need->guard : "",
                 need->guard_role[0] ? ")" : "");
    else if (len)
        buf[0] = '\0';
}

int fm_approval_quorum(const json_t *approvals, const fm_approval_need *need,
                       const char *const *approvers, size_t n, char *counted_out,
                       size_t counted_len, fm_err *err)
{
    const char *people[MAX_APPROVERS];
    const char *first_id[MAX_APPROVERS];
    size_t counted = 0;
    char notes[300] = "", line[300];
    bool strict = need->people > 1 || need->role[0] || need->guard_role[0];
    if (n > MAX_APPROVERS) n = MAX_APPROVERS;
    for (size_t i = 0; i < n; i++) {
        char id[72];
        fm_clip(id, sizeof id, approvers[i]);
        const json_t *key = key_of(approvals, approvers[i]);
        if (!key && strict) {
            snprintf(line, sizeof line, "%s has no key in approvals.keys and does not count here",
                     id);
            note(notes, sizeof notes, line);
            continue;
        }
        /* An elicited approval is the verified subject's own: it is that
         * person to creator separation and to counting people. */
        const char *person = key ? fm_json_str(key, "person", approvers[i]) : approvers[i];
        if (!key && !strncmp(person, ELICITED, strlen(ELICITED))) person += strlen(ELICITED);
        if (need->separate && need->creator[0] &&
            (!strcmp(person, need->creator) || !strcmp(approvers[i], need->creator))) {
            snprintf(line, sizeof line, "%s created the plan and cannot approve it", id);
            note(notes, sizeof notes, line);
            continue;
        }
        if (need->role[0] && !has_role(key, need->role)) {
            snprintf(line, sizeof line, "%s lacks role %s", id, need->role);
            note(notes, sizeof notes, line);
            continue;
        }
        if (need->guard_role[0] && !has_role(key, need->guard_role)) {
            snprintf(line, sizeof line, "%s lacks role %s (guardrails.approval_roles.%s)", id,
                     need->guard_role, need->guard);
            note(notes, sizeof notes, line);
            continue;
        }
        size_t j = 0;
        while (j < counted && strcmp(people[j], person))
            j++;
        if (j < counted) {
            char who[72], first[72];
            fm_clip(who, sizeof who, person);
            fm_clip(first, sizeof first, first_id[j]);
            snprintf(line, sizeof line, "%s approved twice (%s, %s): one person counts once", who,
                     first, id);
            note(notes, sizeof notes, line);
            continue;
        }
        people[counted] = person;
        first_id[counted++] = approvers[i];
    }
    if ((int)counted >= need->people) {
        if (counted_out && counted_len) {
            counted_out[0] = '\0';
            for (size_t i = 0; i < counted; i++) {
                char who[140];
                snprintf(who, sizeof who, "%s%s", i ? ", " : "", people[i]);
                size_t o = strlen(counted_out), w = strlen(who);
                if (o + w >= counted_len) break;
                memcpy(counted_out + o, who, w + 1);
            }
        }
        return 0;
    }
    char role[200];
    fm_approval_need_roles(need, role, sizeof role);
    return fm_err_set(err, FM_ERR_APPROVAL,
                      "this plan needs approvals from %d distinct %s%s%s%s%s; %zu counted%s%s:"
                      " ask %s approver%s to run `mcp-cli approve`",
                      need->people, need->people > 1 ? "people" : "person", role,
                      need->why[0] ? " (" : "", need->why, need->why[0] ? ")" : "", counted,
                      notes[0] ? ": " : "", notes, counted ? "another" : "an", role);
}
