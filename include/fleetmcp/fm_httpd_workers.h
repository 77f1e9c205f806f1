/* Worker processes for the HTTP transport (http.workers): each has its own
 * server context and store connection, and all accept on one socket. */
#ifndef FM_HTTPD_WORKERS_H
#define FM_HTTPD_WORKERS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "fleetmcp/fm_db.h"
#include "fleetmcp/fm_error.h"

struct fm_ctx;

/* Serves in one worker with its freshly opened ctx; 0 on a clean stop. */
typedef int (*fm_http_worker_fn)(struct fm_ctx *ctx, void *arg, fm_err *err);

/* Closes ctx (kept closed on return), forks `workers` processes that each
 * reopen it from the same config and database and run fn, and supervises
 * them until ctx->stop: SIGTERM is passed on, a dead worker is replaced,
 * one still running grace_ms + 2 s after the stop is killed. */
int fm_http_workers_run(struct fm_ctx *ctx, int workers, int grace_ms, fm_http_worker_fn fn,
                        void *arg, fm_err *err);

/* The same with `workers` threads of this process instead (the default):
 * thread 0 serves on ctx, the others on contexts opened from its config
 * and database before any starts; this thread passes ctx->stop on and
 * checkpoints the WAL.  ctx stays open. */
int fm_http_threads_run(struct fm_ctx *ctx, int workers, fm_http_worker_fn fn, void *arg,
                        fm_err *err);

/* WAL checkpoints off the request path for one process serving alone:
 * a thread with its own store connection (the parent does this for
 * workers).  NULL (logged) when it cannot start; the server then
 * checkpoints at the WAL's hard bound, as before.  Stop joins it. */
typedef struct fm_http_checkpointer fm_http_checkpointer;
fm_http_checkpointer *fm_http_checkpointer_start(const char *db);
void fm_http_checkpointer_stop(fm_http_checkpointer *ck);

/* The fork guard (http_workers.c says why): db's SQLite connection is
 * used by the calling thread only while it holds busy; a fork from
 * another thread waits for busy and closes the connection in its child.
 * Drop it before the connection closes. */
void fm_http_fork_guard_add(fm_db *db, pthread_mutex_t *busy);
void fm_http_fork_guard_drop(fm_db *db);

/* FLEETMCP_HTTP_STATS=FILE (http_stats.c): the service's event timeline,
 * written at the stop; while it is off every hook is a call and a branch.
 * kind: T a turn of the loop (a: requests, b: connections accepted), W
 * its wait (a: its bound in ms, b: the listening socket was ready),
 * E one call's exchange (a: body bytes, b: rows in the batch so far),
 * C batch commit (a: rows, b: 0 or -1 failed), K WAL checkpoint
 * (a: WAL frames, b: copied), O/X connection opened/closed (a: its fd).
 * thread: serving thread N is N + 1 (one process alone: 1); 0 is the
 * thread that supervises them or checkpoints. */
void fm_http_stats_open(void);
void fm_http_stats_close(void);
void fm_http_stats_thread(int no);
int64_t fm_http_stats_now(void); /* 0 while off */
void fm_http_stats_event(char kind, int64_t t0, int64_t a, int64_t b);

#endif
