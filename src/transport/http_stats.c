/* FLEETMCP_HTTP_STATS=FILE: a timeline of the HTTP service's own events
 * (each turn's wait and work, each call, each batch commit, each WAL
 * checkpoint, each connection opened or closed), kept in memory while
 * serving and written to FILE at the stop, one event a line:
 *
 *   kind thread start_us duration_us a b
 *
 * start_us is CLOCK_MONOTONIC, the clock bench/httpbench.c's --dump
 * writes its calls' send times in, so a slow call can be laid over what
 * the server did meanwhile.  Writing at the stop, not as it happens:
 * a log write in the serving path would be one of the stalls looked for.
 * Off (the default) every hook is a call and a branch.  Events past the
 * buffer's bound are counted, not kept.  One process: with
 * http.processes the workers' events are not written. */
#include "fleetmcp/fm_httpd_workers.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fleetmcp/fm_util.h"

typedef struct {
    int64_t t, dur, a, b;
    int32_t thread;
    char kind;
} stat_ev;

#define STATS_MAX_EVENTS (1u << 21) /* 2 M events, 80 MB: minutes of load */

static stat_ev *evs;
static atomic_uint nev;
static char *out_path;
static _Thread_local int32_t thread_no;

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t fm_http_stats_now(void)
{
    return evs ? mono_us() : 0;
}

void fm_http_stats_thread(int no)
{
    thread_no = no;
}

void fm_http_stats_open(void)
{
    const char *p = getenv("FLEETMCP_HTTP_STATS");
    if (!p || !*p || evs) return;
    evs = malloc(sizeof *evs * STATS_MAX_EVENTS);
    out_path = evs ? strdup(p) : NULL;
    if (!out_path) {
        free(evs);
        evs = NULL;
        fm_log("warning", "http stats: out of memory; FLEETMCP_HTTP_STATS ignored");
        return;
    }
    atomic_store(&nev, 0);
}

void fm_http_stats_event(char kind, int64_t t0, int64_t a, int64_t b)
{
    if (!evs) return;
    unsigned i = atomic_fetch_add_explicit(&nev, 1, memory_order_relaxed);
    if (i >= STATS_MAX_EVENTS) return;
    evs[i] = (stat_ev){
        .t = t0, .dur = t0 ? mono_us() - t0 : 0, .a = a, .b = b, .thread = thread_no, .kind = kind};
}

void fm_http_stats_close(void)
{
    if (!evs) return;
    unsigned n = atomic_load(&nev), kept = n < STATS_MAX_EVENTS ? n : STATS_MAX_EVENTS;
    FILE *f = fopen(out_path, "w");
    if (f) {
        for (unsigned i = 0; i < kept; i++)
            fprintf(f, "%c %d %lld %lld %lld %lld\n", evs[i].kind, evs[i].thread,
                    (long long)evs[i].t, (long long)evs[i].dur, (long long)evs[i].a,
                    (long long)evs[i].b);
        fclose(f);
    }
    fm_log(f ? "info" : "warning", "http stats: %u events%s, %s %s", kept,
           n > kept ? " (the rest past the bound, dropped)" : "", f ? "written to" : "cannot write",
           out_path);
    free(evs);
    free(out_path);
    evs = NULL;
    out_path = NULL;
}
