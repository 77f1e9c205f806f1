/* A port read Down, Polling or Disabled is a failure only when something
 * uses it.  An HCA port no job and no configuration names (a spare, a
 * second rail never cabled), while the ports that are named read Active,
 * was never up to go down: the read is the port's idle state, no fault.
 * With no list, a port read physically Disabled beside Active ones, no job
 * complaining, was switched off on purpose.
 * A port in use, or one told going down (a kernel Link DOWN, a subnet
 * manager's event), keeps its class: those come from other signatures. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "diag_int.h"

/* The port-state reads that tell a state and nothing of a transition. */
static const char *const STATE_SIGS[] = {"ibstat-down", "iblinkinfo-ca-port-down", "ib-port-state"};

/* The first HCA device named in s[0..n) ("mlx5_4", "mlx4_10"): its
 * offset at *at and its length, 0 when none is. */
static size_t hca_name(const char *s, size_t n, size_t *at)
{
    for (size_t i = 0; i + 6 <= n; i++) {
        if (strncmp(s + i, "mlx", 3) != 0 || (i && isalnum((unsigned char)s[i - 1]))) continue;
        size_t k = i + 3;
        while (k < n && isdigit((unsigned char)s[k]))
            k++;
        if (k == i + 3 || k >= n || s[k] != '_') continue;
        size_t d = ++k;
        while (k < n && isdigit((unsigned char)s[k]))
            k++;
        if (k == d) continue;
        *at = i;
        return k - i;
    }
    return 0;
}

/* The device a port-state line is about: named on it, or on the nearest
 * line above it in the same entry (ibstat's "CA 'mlx5_4'" heading, up to 7 lines up). */
static size_t line_device(const run *r, int li, char *dev, size_t cap)
{
    for (int j = li; j >= 0 && j > li - 8; j--) {
        const tline *l = &r->lines[j];
        if (l->src != r->lines[li].src || l->entry != r->lines[li].entry) break;
        size_t at, n = hca_name(l->s, l->len, &at);
        /* ibstat's heading ends the search: its name or none (an "ibp..." CA) */
        if (!n && memmem(l->s, l->len, "CA '", 4)) return 0;
        if (n && n < cap) {
            memcpy(dev, l->s + at, n);
            dev[n] = 0;
            return n;
        }
    }
    return 0;
}

/* The port a port-state line is about ("Port 2:" heading of ibstat, "port
 * 2" on the line): found like its device; 0 when none is told. */
static int line_port(const run *r, int li)
{
    for (int j = li; j >= 0 && j > li - 8; j--) {
        const tline *l = &r->lines[j];
        if (l->src != r->lines[li].src || l->entry != r->lines[li].entry) break;
        for (size_t i = 0; i + 6 <= l->len; i++)
            if (strncasecmp(l->s + i, "port ", 5) == 0 && isdigit((unsigned char)l->s[i + 5]) &&
                (i == 0 || !isalpha((unsigned char)l->s[i - 1])))
                return atoi(l->s + i + 5);
    }
    return 0;
}

/* A line that lists the devices in use: NCCL's choice, its HCA list, a
 * configuration's devices. */
static bool in_use_line(const tline *l)
{
    static const char *const w[] = {"NCCL_IB_HCA",
                                    "NET/IB : Using",
                                    "NET/IB: Using",
                                    "in use",
                                    "configured",
                                    "UCX_NET_DEVICES",
                                    "OMPI_MCA_btl_openib_if_include",
                                    "rails"};
    return facts_any(l, w, NOF(w));
}

/* Whether dev's port is named (whole, not mlx5_1 inside mlx5_10) on line
 * l: the device alone names all its ports, "mlx5_1:1" its port 1 only;
 * port 0 is any. */
static bool names_device(const tline *l, const char *dev, int port)
{
    size_t dl = strlen(dev);
    for (const char *p = l->s; (p = memmem(p, l->len - (size_t)(p - l->s), dev, dl)) != NULL;
         p += dl) {
        const char *e = p + dl, *end = l->s + l->len;
        if (e < end && isdigit((unsigned char)*e)) continue;
        if (port && e + 1 < end && *e == ':' && isdigit((unsigned char)e[1]) && atoi(e + 1) != port)
            continue;
        return true;
    }
    return false;
}

/* Whether dev appears on an in-use list. */
static bool device_used(const run *r, const char *dev, int port)
{
    for (int i = 0; i < r->nlines; i++)
        if (in_use_line(&r->lines[i]) && names_device(&r->lines[i], dev, port)) return true;
    return false;
}

/* The devices node_exporter reads below Active or LinkUp: -1 when one is
 * in use or has no device label, else how many there are. */
static int metric_down_unused(const run *r, const json_t *metrics)
{
    int n = 0;
    size_t i;
    const json_t *o;
    json_array_foreach(metrics, i, o)
    {
        const char *nm = json_string_value(json_object_get(o, "name"));
        double v = json_number_value(json_object_get(o, "value"));
        bool down = nm && ((strcmp(nm, "node_infiniband_state_id") == 0 && v < 4) ||
                           (strcmp(nm, "node_infiniband_physical_state_id") == 0 && v < 5));
        if (!down) continue;
        const json_t *labels = json_object_get(o, "labels");
        const char *dev = json_string_value(json_object_get(labels, "device"));
        const char *port = json_string_value(json_object_get(labels, "port"));
        if (!dev || !*dev || device_used(r, dev, port ? atoi(port) : 0)) return -1;
        n++;
    }
    return n;
}

/* Whether the port whose state line li is reads physical state Disabled:
 * the line itself (iblinkinfo's "Down/ Disabled") or a line of the same
 * port's block (ibstat's "Physical state: Disabled" beside "State: Down"). */
static bool port_disabled(const run *r, int li)
{
    int port = line_port(r, li);
    for (int j = li - 3; j <= li + 3; j++) {
        if (j < 0 || j >= r->nlines) continue;
        const tline *l = &r->lines[j];
        if (l->src != r->lines[li].src || l->entry != r->lines[li].entry) continue;
        if (facts_has(l, "Disabled") && line_port(r, j) == port) return true;
    }
    return false;
}

/* Some port reads Active or LinkUp (a state line, not a unit's "Active:
 * active (running)"): the adapter and its cabled ports work. */
static bool some_port_active(const run *r)
{
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        if (facts_has(l, "LinkUp") || (facts_has(l, "Active") && facts_has(l, "State")))
            return true;
    }
    return false;
}

/* A job telling a failure (a collective timing out, an error): a port
 * read down then may be the one it needed. */
static bool job_complains(const run *r)
{
    /* facts_any reads case-blind */
    static const char *const bad[] = {"timeout", "timed out", "error", "fail"};
    for (int i = 0; i < r->nlines; i++)
        if (r->lines[i].src == DS_JOB && facts_any(&r->lines[i], bad, NOF(bad))) return true;
    return false;
}

/* With no in-use list, a port whose physical state reads Disabled was
 * switched off (a port left uncabled, a second port of a dual-port card
 * disabled in its configuration): a failing link polls for its peer or
 * goes down, it does not disable itself.  It is unused when the other
 * ports read Active and no job tells a failure. */
static bool disabled_by_design(const run *r, int li)
{
    return port_disabled(r, li) && some_port_active(r) && !job_complains(r);
}

/* 1: the devices read down are unused: some in-use list names none of
 * them, or with no list each reads Disabled by design; 0: a down device is
 * in use, or nothing tells it is not; the devices read down are found from
 * the port-state signatures' matches and metrics. */
static bool down_ports_unused(const run *r, const json_t *metrics)
{
    /* NCCL falling back to sockets wanted the fabric: a port down matters */
    static const char *const fallback[] = {"Using network Socket", "NET/Socket", "fall back",
                                           "falling back", "fallback"};
    bool lists = false;
    for (int i = 0; i < r->nlines; i++) {
        if (facts_any(&r->lines[i], fallback, NOF(fallback))) return false;
        lists |= in_use_line(&r->lines[i]);
    }
    int m = lists && json_is_array(metrics) ? metric_down_unused(r, metrics) : 0;
    if (m < 0) return false;
    bool any = m > 0;
    for (int k = 0; k < r->nraws; k++) {
        const char *id = r->db->sigs[r->raws[k].sig].id;
        bool state = false;
        for (size_t s = 0; s < NOF(STATE_SIGS); s++)
            state |= strcmp(id, STATE_SIGS[s]) == 0;
        if (!state) continue;
        int li = r->raws[k].line;
        if (li < 0) { /* a metric's: read above, or unknown with no list */
            if (!lists) return false;
            continue;
        }
        char dev[32];
        if (!lists) {
            if (!disabled_by_design(r, li)) return false;
        } else if (!line_device(r, li, dev, sizeof dev) || device_used(r, dev, line_port(r, li))) {
            return false;
        }
        any = true;
    }
    return any;
}

void unused_port_rule(run *r, const json_t *metrics)
{
    int c = diag_class_index(r->db, "ib_link_down");
    if (c < 0 || !facts_class_hit(r, c) ||
        !facts_hits_only_from(r, c, STATE_SIGS, NOF(STATE_SIGS)) || !down_ports_unused(r, metrics))
        return;
    facts_drop_class(r, c);
}
