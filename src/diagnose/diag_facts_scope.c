/* Spread decides scope for a shared service.  The directory (LDAP, sssd,
 * the identity service every node resolves users through) failing is the
 * fleet's when more than one host says so or its servers are what cannot
 * be reached; one host's sssd offline while the others resolve is that
 * node's.  Either way no class explains it: an anomaly, so the outcome is
 * inconclusive at the scope the spread tells. */
#include <string.h>

#include "diag_int.h"

static bool directory_line(const tline *l)
{
    static const char *const who[] = {"sssd", "ldap", "slapd", "nslcd", "sssctl", "winbind"};
    static const char *const bad[] = {
        "offline",        "unreachable", "can't contact", "cannot contact",
        "timed out",      "timeout",     "no such user",  "could not find user",
        "not responding", "failed",      "unable"};
    return l->src != DS_KERNEL && facts_any(l, who, NOF(who)) && facts_any(l, bad, NOF(bad));
}

/* The directory's servers themselves out of reach, not one client. */
static bool server_side(const tline *l)
{
    static const char *const w[] = {"can't contact ldap server",
                                    "cannot contact ldap server",
                                    "active server: none",
                                    "no available servers",
                                    "all servers",
                                    "ldap server unreachable",
                                    "servers unreachable"};
    return facts_any(l, w, NOF(w));
}

void directory_rule(run *r)
{
    char hosts[4][64];
    int nh = 0, first = -1;
    bool server = false;
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        if (!directory_line(l)) continue;
        if (first < 0) first = i;
        server |= server_side(l);
        char h[64];
        if (!syslog_host(l->s, l->len, h, sizeof h)) continue;
        bool seen = false;
        for (int k = 0; k < nh; k++)
            seen |= strcmp(hosts[k], h) == 0;
        if (!seen && nh < 4) memcpy(hosts[nh++], h, sizeof h);
    }
    if (first < 0) return;
    if (server || nh >= 2)
        add_anomaly(r, ST_STRONG, 2, "facts-directory-service",
                    line_evidence(r, first,
                                  "[the directory service failing for more than one host: "
                                  "the fleet's, no node's] "));
    else
        add_anomaly(r, ST_STRONG, 1, "facts-directory-one-host",
                    line_evidence(r, first,
                                  "[one host's directory client failing: the node's, "
                                  "unexplained] "));
}
