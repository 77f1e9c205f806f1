/* Between the Slurm opener (slurm_open.c) and its two implementations.
 * Internal to src/backends/. */
#ifndef FM_SLURM_IMPL_H
#define FM_SLURM_IMPL_H

#include "fleetmcp/fm_slurm.h"

/* Each builds its state from the slurm section (borrowed).  dom passes
 * to the state on success (freed by close()); on failure the caller
 * frees it.  Returns 0 with *out set. */
int fm_slurm_rest_open_state(const json_t *sec, fm_slurm_domains *dom, void **out, fm_err *err);
int fm_slurm_cli_open_state(const json_t *sec, fm_slurm_domains *dom, void **out, fm_err *err);

/* nodes() over an implementation's nodes_each: the matching nodes in one
 * new array, without the answer's tree. */
json_t *fm_slurm_nodes_collect(int (*each)(void *st, const fm_slurm_node_filter *f,
                                           fm_slurm_node_cb cb, void *ud, fm_err *err),
                               void *st, const fm_slurm_node_filter *f, fm_err *err);

/* fm_slurm_node_cb counting nodes into *(long long *)ud. */
int fm_slurm_count_node(void *ud, const json_t *node, fm_err *err);

#endif
