/* Diagnosis: signals (logs, metrics, Slurm, events, history) to ranked
 * fault classes with confidence, scope, evidence and the runbook to run.
 *
 * Signatures are data (runbooks/signatures.yaml plus any
 * runbooks/signatures.d/ *.yaml), validated against the embedded
 * schemas/signatures.schema.json and compiled once (PCRE2 with JIT) into a
 * read-only catalog that hangs off fm_ctx->diag.  The vocabulary of classes
 * is runbooks/fault-classes.yaml (a copy of shared/fault-classes.yaml). */
#ifndef FM_DIAGNOSE_H
#define FM_DIAGNOSE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "fleetmcp/fm_error.h"

struct fm_diag_db;

/* Loads the signature catalog at path and the taxonomy beside it
 * (fault-classes.yaml in the same directory), plus every *.yaml in the
 * sibling directory signatures.d/.  Every problem is reported as
 * "INVALID: file:line: what" and nothing is half-loaded. */
int fm_diag_load(const char *path, struct fm_diag_db **out, fm_err *err);
void fm_diag_free(struct fm_diag_db *db);

/* The catalog's confidence thresholds: a class is named at report and
 * acted on at act (signatures.yaml `thresholds`). */
void fm_diag_thresholds(const struct fm_diag_db *db, double *report, double *act);

/* Diagnoses signals (borrowed; the shape of the diagnose tool's `signals`
 * argument).  taxonomy (borrowed, may be NULL) overrides the loaded one:
 * {"classes":[{id, scope, response, destructive}...]}.  Returns a new
 * object {top, classes[<=5], signals_seen, act} or NULL with err set. */
json_t *fm_diag_run(const struct fm_diag_db *db, const json_t *signals, const json_t *taxonomy,
                    fm_err *err);

/* --- bulk log scanning (benchmark and large-log classification) ---------- */

/* Number of text signatures and the id of signature i. */
size_t fm_diag_sig_count(const struct fm_diag_db *db);
const char *fm_diag_sig_id(const struct fm_diag_db *db, size_t i);

/* Every prefilter literal of the catalog (new array of strings). */
json_t *fm_diag_literals(const struct fm_diag_db *db);

/* Scans buf (complete lines, '\n'-separated; no NUL needed) and adds to
 * hits[i] the number of lines matching text signature i (hits has
 * fm_diag_sig_count() slots).  Returns the number of lines that matched
 * at least one signature.  No allocation per line. */
uint64_t fm_diag_scan(const struct fm_diag_db *db, const char *buf, size_t len, uint64_t *hits);

/* True if host is in a Slurm hostlist expression ("gpu-a[032-034,040]",
 * "n1,n2"); exposed for tests. */
int fm_diag_hostlist_has(const char *hostlist, const char *host);

#endif
