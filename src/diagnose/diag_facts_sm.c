/* The subnet manager telling this node's port changed state again and
 * again (OpenSM's "changed state from ACTIVE to DOWN", a Trap 128 "link
 * state change"), wherever its log was kept: the port bounced.  Only lines
 * naming this node count: the SM logs every port of the fabric.  Up at the
 * end it is nic_flapping, still down ib_link_down. */
#include "diag_int.h"

static bool sm_change(const tline *l)
{
    static const char *const w[] = {"changed state from", "trap 128", "link state change"};
    static const char *const none[] = {"no state change", "no link state change", "0 state changes",
                                       "0 link state changes"};
    return l->src != DS_STATE && l->src != DS_JOBS && facts_any(l, w, NOF(w)) &&
           !facts_any(l, none, NOF(none));
}

void sm_port_rule(run *r)
{
    if (!r->node || !*r->node) return;
    int n = 0, first = -1, last = 0;
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        if (!sm_change(l) || !facts_has_ci(l, r->node)) continue;
        n++;
        if (first < 0) first = i;
        /* the state it went to: "... to ACTIVE" up, "... to DOWN" down */
        last = facts_has(l, "to ACTIVE") ? 1 : facts_has(l, "to DOWN") ? -1 : last;
    }
    /* the port's last told state anywhere, else the SM's last word on it;
     * neither told, no class (a bounce may have ended either way) */
    int st = facts_port_last(r);
    if (!st) st = last;
    int c = st ? facts_downed_class(r, st) : -1;
    if (n < 2 || c < 0 || facts_class_hit(r, c)) return;
    add_hit(r, c, DK_CORR, ST_STRONG, "facts-sm-port-changes",
            line_evidence(r, first,
                          "[the subnet manager told this node's port changing state two or "
                          "more times: it bounced] "));
}
