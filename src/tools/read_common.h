/* Helpers shared by the read tools (slurm_*, grafana_query, gpu_health).
 * Internal to src/tools/. */
#ifndef FM_READ_COMMON_H
#define FM_READ_COMMON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "fleetmcp/fm_error.h"

/* Borrowed string argument or NULL. */
const char *fm_read_arg_str(const json_t *args, const char *key);
long long fm_read_arg_int(const json_t *args, const char *key, long long dflt);
bool fm_read_arg_bool(const json_t *args, const char *key, bool dflt);

/* "IDLE+DRAIN" from a state array (borrowed) into buf. */
void fm_read_state_join(const json_t *state, char *buf, size_t len);

/* Adds 1 to counts[key] (counts borrowed). */
void fm_read_count(json_t *counts, const char *key);

/* A time argument: number (unix seconds), "now", "now-15m", "now+1h",
 * digits, or RFC 3339 ("2026-11-23T14:00:00Z", "...+02:00").  0 on
 * success. */
int fm_read_parse_time(const json_t *v, double now, double *out, fm_err *err);

/* A duration: number (seconds) or "30s", "5m", "1h", "1d", "1w".  0 on
 * success. */
int fm_read_parse_duration(const json_t *v, double *out, fm_err *err);

struct fm_config;
struct fm_ctx;

/* metrics.gpu_health.counter_window as a PromQL duration ("1h" unless
 * set): the window over which DCGM counters are judged by their growth.
 * Checked here too, as it goes into PromQL.  Returns buf. */
const char *fm_read_counter_window(const struct fm_config *cfg, char buf[16]);

/* Whether a normalized node's drain is fleetmcp's: the backend sees only
 * the reason's "fleetmcp:" prefix, which anyone can write ("fleetmcp:
 * hold"); it is ours when the owner it names is a workflow of this store
 * on the node, as the ownership guardrail decides (a store that cannot
 * answer: not ours). */
bool fm_read_drain_owned(struct fm_ctx *ctx, const json_t *n);

/* s as a regex that matches s alone, written into a PromQL string
 * (metacharacters escaped, the escape doubled); truncated to fit n. */
void fm_read_regex_literal(char *out, size_t n, const char *s);

/* A PromQL selector of the series whose name matches the regex names on
 * node (a validated node name), followed by suffix (e.g. " offset 1h"):
 * by the host label hl, or when hl is NULL or "" by either spelling a
 * stock dcgm-exporter uses (Hostname, renamed hostname in May 2026). */
void fm_read_dcgm_selector(char *q, size_t n, const char *names, const char *hl, const char *node,
                           const char *suffix);

/* Wall clock, seconds. */
double fm_read_now(void);

/* The paged answer both list tools give (new): total, counts (stolen),
 * returned, offset, next_offset (null on the last page), the page
 * (stolen) under items_key, and the backend's name. */
json_t *fm_read_page(json_t *counts, json_t *page, size_t total, long long offset, long long limit,
                     const char *items_key, const char *backend);

#endif
