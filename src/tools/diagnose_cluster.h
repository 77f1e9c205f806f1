/* diagnose's cluster mode (src/tools/diagnose_cluster.c). */
#ifndef FM_DIAGNOSE_CLUSTER_H
#define FM_DIAGNOSE_CLUSTER_H

#include <jansson.h>

#include "fleetmcp/fm_diagnose.h"
#include "fleetmcp/fm_server.h"

/* Triage of the nodes scope names ({partition?, nodes?, top?}, borrowed;
 * {} is the fleet) from one Slurm listing and bulk DCGM queries.  A new
 * object: node mode's top/classes for the worst node (act always false)
 * plus "cluster" {counts, ranked, follow_up, ...}. */
json_t *fm_diagnose_cluster(fm_call *call, const struct fm_diag_db *db, const json_t *scope,
                            fm_err *err);

#endif
