/* Backends, one const ops struct per implementation (like curl's
 * Curl_handler).  Tools and the gate see only these pointers; a test
 * fake is one more instance.  Each family declares its ops struct in its
 * own header (fm_slurm.h, fm_metrics.h, fm_tickets.h, fm_exec.h). */
#ifndef FM_BACKENDS_H
#define FM_BACKENDS_H

#include "fleetmcp/fm_error.h"

struct fm_ctx;
struct fm_slurm_ops;
struct fm_metrics_ops;
struct fm_ticket_ops;
struct fm_exec_ops;

typedef struct fm_backends {
    const struct fm_slurm_ops *slurm; /* NULL: not configured */
    void *slurm_st;
    const struct fm_metrics_ops *metrics;
    void *metrics_st;
    const struct fm_ticket_ops *tickets; /* local store by default */
    void *tickets_st;
    const struct fm_exec_ops *exec;
    void *exec_st;
} fm_backends;

/* Opens every backend the config names (src/backends/backends.c calls each
 * family's opener).  A missing section leaves that slot NULL. */
int fm_backends_open(struct fm_ctx *ctx, fm_err *err);
void fm_backends_close(struct fm_ctx *ctx);

/* For handlers: FM_ERR_NOT_CONFIGURED naming the config key to set. */
int fm_backend_missing(fm_err *err, const char *key, const char *hint);

#endif
