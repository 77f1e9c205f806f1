/* Facts that take back a destructive class whose evidence is, read for
 * what it means, something smaller: the count a contained error leaves,
 * the fabric service down (another driver version, a unit that exited). */
#include "diag_int.h"

#include <math.h>
#include <string.h>

/* Whether every hit of class c comes from one of the signature groups
 * named (a group is "<signature id>/<kind>"). */
bool facts_hits_only_from(const run *r, int c, const char *const *ids, size_t n)
{
    for (int i = 0; i < r->nhits; i++) {
        if (r->hits[i].cls != c) continue;
        bool ok = false;
        for (size_t k = 0; k < n && !ok; k++) {
            size_t len = strlen(ids[k]);
            ok = strncmp(r->hits[i].group, ids[k], len) == 0 && r->hits[i].group[len] == '/';
        }
        if (!ok) return false;
    }
    return true;
}

/* The rise of DCGM's volatile DBE count over the samples given (the
 * largest reading when a single sample is given): 0 when none is. */
static double dbe_rise(const json_t *metrics)
{
    double lo = INFINITY, hi = 0;
    int n = 0;
    size_t i;
    const json_t *o;
    json_array_foreach(metrics, i, o)
    {
        const char *nm = json_string_value(json_object_get(o, "name"));
        if (!nm || !strstr(nm, "ECC_DBE_VOL")) continue;
        double v = json_number_value(json_object_get(o, "value"));
        lo = fmin(lo, v);
        hi = fmax(hi, v);
        n++;
    }
    return n == 0 ? 0 : n == 1 ? hi : hi - lo;
}

static int contained_xids(const run *r, int c)
{
    int n = 0;
    for (int i = 0; i < r->nhits; i++)
        n += r->hits[i].cls == c && !r->hits[i].old && strncmp(r->hits[i].group, "xid", 3) == 0;
    return n;
}

/* A contained ECC error (Xid 94) is an uncorrectable error the GPU
 * contained: DCGM's DBE count and the job's "uncorrectable ECC error"
 * rise with it.  That count, no larger than the contained errors told,
 * is the contained error's own; only what an uncontained error leaves
 * (an Xid 48, 95 or 140, DCGM's DBE health check, a remap failure)
 * makes it the node's. */
void contained_count_rule(run *r, const json_t *metrics)
{
    static const char *const counts[] = {"dbe-metric", "ecc-job-error"};
    int con = diag_class_index(r->db, "gpu_ecc_contained");
    int unc = diag_class_index(r->db, "gpu_ecc_uncorrectable");
    int fail = diag_class_index(r->db, "gpu_row_remap_failure");
    if (con < 0 || unc < 0 || !r->xidcls || !r->xidcls[con] || r->xidcls[unc] ||
        !facts_class_hit(r, con) || (fail >= 0 && facts_class_hit(r, fail)))
        return;
    int n = contained_xids(r, con);
    if (n == 0 || !facts_hits_only_from(r, unc, counts, NOF(counts))) return;
    if (json_is_array(metrics) && dbe_rise(metrics) > n) return;
    facts_drop_class(r, unc);
}

/* A line telling a software version mismatch: a version or a driver, and
 * words saying the two differ. */
static bool version_mismatch_told(const tline *l)
{
    static const char *const what[] = {"version", "driver"};
    /* "does not match", "didn't match", "isn't matching" */
    static const char *const differ[] = {"mismatch",     "not match",      "n't match",
                                         "incompatible", "not compatible", "differs from"};
    return facts_any(l, what, NOF(what)) && facts_any(l, differ, NOF(differ));
}

/* The first line a signature of the set named matched, -1: none. */
static int first_line_of(const run *r, const char *const *ids, size_t n)
{
    for (int i = 0; i < r->nraws; i++)
        for (size_t k = 0; k < n; k++)
            if (strcmp(r->db->sigs[r->raws[i].sig].id, ids[k]) == 0) return r->raws[i].line;
    return -1;
}

/* The fabric manager (or IMEX, the NVLink fabric service) that failed or
 * never started leaves the fabric down and CUDA not initialised (802),
 * whatever the reason (a version differing from the driver's, a unit that
 * exited, a start-up not finished).  A fault of the links themselves
 * shows as a link down, CRC or replay counters or an SXid; with none of
 * them told the fabric being down says nothing about the hardware: no
 * class, an anomaly of the node to escalate. */
void fabric_down_rule(run *r)
{
    static const char *const fabric_only[] = {"nvswitch-fabric-down", "cuda-system-not-ready",
                                              "nvswitch-fabric-state-not-started"};
    int c = diag_class_index(r->db, "gpu_nvlink_error");
    if (c < 0 || !facts_class_hit(r, c) ||
        !facts_hits_only_from(r, c, fabric_only, NOF(fabric_only)))
        return;
    for (int i = 0; i < r->nlines; i++) {
        if (!version_mismatch_told(&r->lines[i])) continue;
        facts_drop_class(r, c);
        add_anomaly(r, ST_STRONG, 1, "fabric-version-mismatch",
                    line_evidence(r, i,
                                  "[the fabric service refuses a driver of another version: "
                                  "software, not a link fault; align the versions] "));
        return;
    }
    int li = first_line_of(r, fabric_only, NOF(fabric_only));
    if (li < 0) return;
    facts_drop_class(r, c);
    add_anomaly(r, ST_STRONG, 1, "fabric-down",
                line_evidence(r, li,
                              "[the NVLink fabric is down with no link error, CRC or replay "
                              "counter, nor SXid: the fabric service, not a link fault; "
                              "escalate] "));
}

/* A RayCluster whose spec is wrong (a nodeSelector or tolerations at the
 * wrong level, which the API server drops as unknown fields) leaves its
 * pods without the selector or toleration they need: a taint the
 * scheduler names then is the symptom and the spec the cause, so the
 * taint's class is dropped for ray_cluster_not_ready. */
void ray_spec_rule(run *r)
{
    /* not a selector matching no node alone: the scheduler's event names
     * the selector and the taint together for a pod lacking a toleration */
    static const char *const spec[] = {"ray-manifest-unknown-field"};
    int ray = diag_class_index(r->db, "ray_cluster_not_ready");
    int taint = diag_class_index(r->db, "taint_toleration_mismatch");
    if (ray < 0 || taint < 0 || !facts_class_hit(r, taint)) return;
    for (int i = 0; i < r->nhits; i++) {
        if (r->hits[i].cls != ray || r->hits[i].old) continue;
        for (size_t k = 0; k < NOF(spec); k++) {
            size_t n = strlen(spec[k]);
            if (strncmp(r->hits[i].group, spec[k], n) == 0 && r->hits[i].group[n] == '/') {
                facts_drop_class(r, taint);
                return;
            }
        }
    }
}
