/* Several worker processes sharing one listening socket (http.workers).
 *
 * Why processes and not a thread pool: the protocol core keeps its state
 * in one fm_ctx (store connection with its statement cache, compiled
 * schemas, the call in flight) and was written single-threaded.  A worker
 * process gets its own context by construction, so no state is shared
 * that could race; what replicas must share (2025 session keys, sealed
 * requestState keys, reservations, the audit chain) already lives in the
 * store, which serialises writers across processes.
 *
 * The parent binds the socket, closes its own context (an SQLite
 * connection must not cross fork), forks the workers, and supervises:
 * SIGTERM is passed on, a worker that dies is replaced (at most once a
 * second), and a worker still running after the grace period is killed.
 * The parent also checkpoints the WAL on its own connection: a checkpoint
 * copies pages and syncs the database file, tens of milliseconds that a
 * worker would otherwise spend while its clients wait (SQLite lets a
 * checkpoint run beside readers and a writer).  One process alone
 * (http.workers: 1) gets the same checkpointer as a thread with its own
 * connection (fm_http_checkpointer_start): nothing forks there. */
#include "fleetmcp/fm_httpd_workers.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fleetmcp/fm_db.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_store.h"
#include "fleetmcp/fm_util.h"

#define MAX_WORKERS 64
/* Once a second: under load a checkpoint copies each changed page once
 * however many frames rewrote it (the audit table's last pages are
 * rewritten by every commit), so a longer tick copies and syncs less and
 * takes less CPU from the serving threads (p99 at 32 clients, 6 rounds
 * alternated: median 4.6 ms at 1 s, 5.5 ms at 100 ms).  A checkpoint with
 * nothing to copy costs a lock and a header read; idle, the WAL is
 * truncated within two ticks. */
#define CHECKPOINT_MS 1000

/* ---- the checkpointer ----------------------------------------------------
 *
 * Workers never checkpoint on their request path (db_sqlite.c's wal hook
 * defers it, up to WAL_HELP_FRAMES while a checkpointer owns them): a passive
 * checkpoint every CHECKPOINT_MS on a connection of its own.  When no
 * frame was added since the last one and everything is copied back, the
 * WAL file is truncated too, so an idle service leaves no large -wal
 * file; that attempt gives up at once if a writer is in the way.
 * Durability is the store's (synchronous=NORMAL in WAL): a checkpoint
 * only moves committed pages into the database file. */
struct fm_http_checkpointer {
    fm_store st;
    int last_log;        /* WAL frames at the previous tick */
    unsigned long ticks; /* checkpoints run; truncations: */
    unsigned long truncated;
    pthread_t th;
    atomic_bool stop;
    pthread_mutex_t busy; /* held while a tick uses st (the fork guard) */
};

static void checkpoint_tick(fm_http_checkpointer *ck)
{
    int log = 0, done = 0;
    pthread_mutex_lock(&ck->busy);
    int64_t t0 = fm_http_stats_now();
    if (fm_db_sqlite_checkpoint(ck->st.db, false, &log, &done) >= 0) {
        ck->ticks++;
        if (log > 0 && log == done && log == ck->last_log &&
            fm_db_sqlite_checkpoint(ck->st.db, true, &log, &done) == 0)
            ck->truncated++;
        ck->last_log = log;
    }
    fm_http_stats_event('K', t0, log, done);
    pthread_mutex_unlock(&ck->busy);
}

static fm_http_checkpointer *checkpointer_open(const char *db)
{
    fm_http_checkpointer *ck = calloc(1, sizeof *ck);
    fm_err err = {0};
    if (ck && fm_store_open(&ck->st, db, &err) == 0) {
        ck->last_log = -1;
        pthread_mutex_init(&ck->busy, NULL);
        return ck;
    }
    fm_log("warning",
           "http: no checkpoint connection (%s); the server checkpoints on its request path,"
           " at the WAL's hard bound (workers: at its higher bound)",
           ck ? err.text : "out of memory");
    free(ck);
    return NULL;
}

static void checkpointer_close(fm_http_checkpointer *ck)
{
    if (!ck) return;
    fm_http_fork_guard_drop(ck->st.db);
    pthread_mutex_destroy(&ck->busy);
    fm_store_close(&ck->st);
    free(ck);
}

/* A last checkpoint for what the last turns wrote, then closed. */
static void checkpointer_end(fm_http_checkpointer *ck)
{
    if (!ck) return;
    checkpoint_tick(ck);
    fm_log("info", "checkpointer: %lu checkpoints, %lu WAL truncations", ck->ticks, ck->truncated);
    checkpointer_close(ck);
}

static void *checkpointer_main(void *arg)
{
    fm_http_checkpointer *ck = arg;
    fm_http_fork_guard_add(ck->st.db, &ck->busy);
    while (!atomic_load(&ck->stop)) {
        checkpoint_tick(ck);
        /* Short naps: the stop is seen within 20 ms. */
        for (int i = 0; i < CHECKPOINT_MS / 20 && !atomic_load(&ck->stop); i++) {
            struct timespec ts = {0, 20 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

/* ---- fork beside threads ---------------------------------------------------
 *
 * A task's runner forks from a serving thread (src/mcp/tasks.c) and goes
 * on with a store connection of its own.  SQLite keeps per-process state
 * for a database file that a new connection shares with the open ones
 * (the file's lock bookkeeping, the WAL index mapping and its descriptor):
 * the runner closes its thread's inherited connection properly first, but
 * the other threads' connections (serving threads, the checkpointer) were
 * still open in the child, so its new connection used their bookkeeping
 * with descriptors the runner had closed: "disk I/O error".
 *
 * So each such connection is registered with its thread and a lock that
 * thread holds whenever it may be using the connection (a serving thread
 * releases it only while it waits for its sockets; SQLite runs in
 * multi-thread mode, without a mutex of its own per connection).  A fork
 * takes the other threads' locks (waiting at most FORK_WAIT_MS for each),
 * so none of them is inside SQLite, and SQLite's static mutexes, outermost
 * first (the PRNG seeds itself under the VFS list's main mutex; each may
 * be held while allocating), as glibc does for malloc's arenas.  The child
 * closes those threads' connections properly (statements, then the
 * connection); their closes neither checkpoint nor delete the WAL, since
 * the parent holds its shared lock on the database file.  A connection
 * whose thread stayed busy (a call waiting for its client's answer), or
 * that is inside a transaction, is left open, and a runner forked then
 * cannot open the store: its task fails, said so in tasks/get. */
#define MAX_GUARDED (MAX_WORKERS + 1)
#define FORK_WAIT_MS 2000

static const int sqlite_fork_mutexes[] = {
    SQLITE_MUTEX_STATIC_PRNG, SQLITE_MUTEX_STATIC_MAIN, SQLITE_MUTEX_STATIC_OPEN,
    SQLITE_MUTEX_STATIC_VFS1, SQLITE_MUTEX_STATIC_VFS2, SQLITE_MUTEX_STATIC_VFS3,
    SQLITE_MUTEX_STATIC_LRU,  SQLITE_MUTEX_STATIC_PMEM, SQLITE_MUTEX_STATIC_MEM,
};
#define N_FORK_MUTEXES (sizeof sqlite_fork_mutexes / sizeof *sqlite_fork_mutexes)

static struct {
    pthread_mutex_t mu;
    int n;
    struct {
        sqlite3 *db;
        pthread_t owner;
        pthread_mutex_t *busy;
        bool held; /* by the forking thread, across the fork */
        bool idle; /* and then closable in the child (conn_idle) */
    } e[MAX_GUARDED];
} guarded = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* Whether h is between transactions with no statement running: only
 * then may the child close it (a rollback would write into the WAL index
 * the parent is using).  Its thread's lock is held, so h is not in use. */
static bool conn_idle(sqlite3 *h)
{
    if (!sqlite3_get_autocommit(h)) return false;
    for (sqlite3_stmt *st = sqlite3_next_stmt(h, NULL); st; st = sqlite3_next_stmt(h, st))
        if (sqlite3_stmt_busy(st)) return false;
    return true;
}

static void fork_prepare(void)
{
    pthread_mutex_lock(&guarded.mu);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += FORK_WAIT_MS / 1000;
    pthread_t me = pthread_self();
    for (int i = 0; i < guarded.n; i++) {
        guarded.e[i].held = !pthread_equal(guarded.e[i].owner, me) &&
                            pthread_mutex_timedlock(guarded.e[i].busy, &until) == 0;
        guarded.e[i].idle = guarded.e[i].held && conn_idle(guarded.e[i].db);
    }
    for (size_t i = 0; i < N_FORK_MUTEXES; i++)
        sqlite3_mutex_enter(sqlite3_mutex_alloc(sqlite_fork_mutexes[i]));
}

static void fork_release(void)
{
    for (size_t i = N_FORK_MUTEXES; i-- > 0;)
        sqlite3_mutex_leave(sqlite3_mutex_alloc(sqlite_fork_mutexes[i]));
    for (int i = 0; i < guarded.n; i++)
        if (guarded.e[i].held) pthread_mutex_unlock(guarded.e[i].busy);
}

static void fork_parent(void)
{
    fork_release();
    pthread_mutex_unlock(&guarded.mu);
}

/* In the child only this thread runs: the connections of the threads it
 * stopped are closed (statements first, or the close would leave a zombie
 * that keeps SQLite's per-file state) and forgotten. */
static void fork_child(void)
{
    fork_release();
    int kept = 0;
    for (int i = 0; i < guarded.n; i++) {
        if (!guarded.e[i].idle) {
            guarded.e[kept++] = guarded.e[i];
            continue;
        }
        sqlite3_stmt *st;
        while ((st = sqlite3_next_stmt(guarded.e[i].db, NULL)))
            sqlite3_finalize(st);
        sqlite3_close(guarded.e[i].db);
    }
    guarded.n = kept;
    pthread_mutex_unlock(&guarded.mu);
}

static void fork_guard_register(void)
{
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

void fm_http_fork_guard_add(fm_db *db, pthread_mutex_t *busy)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, fork_guard_register);
    sqlite3 *h = fm_db_sqlite_handle(db);
    pthread_mutex_lock(&guarded.mu);
    if (h && guarded.n < MAX_GUARDED)
        guarded.e[guarded.n++] = (__typeof__(guarded.e[0])){h, pthread_self(), busy, false, false};
    pthread_mutex_unlock(&guarded.mu);
}

void fm_http_fork_guard_drop(fm_db *db)
{
    sqlite3 *h = fm_db_sqlite_handle(db);
    pthread_mutex_lock(&guarded.mu);
    for (int i = 0; i < guarded.n; i++)
        if (guarded.e[i].db == h) guarded.e[i--] = guarded.e[--guarded.n];
    pthread_mutex_unlock(&guarded.mu);
}

/* Starts fn on a thread with every signal blocked but `keep` (0: none),
 * so a process-directed signal reaches the thread meant to handle it. */
static int thread_start(pthread_t *th, void *(*fn)(void *), void *arg, const int *keep)
{
    sigset_t mask, old;
    sigfillset(&mask);
    for (; keep && *keep; keep++)
        sigdelset(&mask, *keep);
    pthread_sigmask(SIG_SETMASK, &mask, &old);
    int rc = pthread_create(th, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

fm_http_checkpointer *fm_http_checkpointer_start(const char *db)
{
    fm_http_checkpointer *ck = checkpointer_open(db);
    if (!ck) return NULL;
    /* The thread starts with every signal blocked, so SIGTERM reaches the
     * serving thread and interrupts its wait at once. */
    int rc = thread_start(&ck->th, checkpointer_main, ck, NULL);
    if (rc) {
        fm_log("warning",
               "http: no checkpoint thread (%s); the server checkpoints on its"
               " request path, at the WAL's hard bound",
               strerror(rc));
        checkpointer_close(ck);
        return NULL;
    }
    fm_db_sqlite_checkpointer_owns(true);
    return ck;
}

void fm_http_checkpointer_stop(fm_http_checkpointer *ck)
{
    if (!ck) return;
    fm_db_sqlite_checkpointer_owns(false);
    atomic_store(&ck->stop, true);
    pthread_join(ck->th, NULL);
    checkpointer_end(ck);
}

/* What a program set on its context after opening it (the conformance
 * fixture serves its own resources and prompts), for the workers' fresh
 * contexts. */
typedef struct {
    const struct fm_content_ops *content;
} ctx_extras;

static pid_t spawn(fm_ctx *ctx, const char *config, const char *db, const ctx_extras *ex,
                   fm_http_worker_fn fn, void *arg)
{
    pid_t pid = fork();
    if (pid != 0) return pid; /* parent, or -1 */
    /* The child: its own context, then the same serving loop as one
     * process would run.  The signal handler still points at ctx->stop,
     * which is this process's copy. */
    fm_err err = {0};
    int rc = 1;
    /* The parent checkpoints (it opens its connection after the forks;
     * should that fail, this worker helps only at the higher bound). */
    fm_db_sqlite_checkpointer_owns(true);
    if (fm_ctx_open(ctx, config[0] ? config : NULL, db, &err))
        fm_log("error", "http worker %d: %s: %s", (int)getpid(), fm_strerror(err.code), err.text);
    else {
        ctx->content = ex->content;
        rc = fn(ctx, arg, &err);
        if (rc)
            fm_log("error", "http worker %d: %s: %s", (int)getpid(), fm_strerror(err.code),
                   err.text);
    }
    fm_ctx_close(ctx);
    exit(rc);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int fm_http_workers_run(fm_ctx *ctx, int workers, int grace_ms, fm_http_worker_fn fn, void *arg,
                        fm_err *err)
{
    if (workers < 1 || workers > MAX_WORKERS)
        return fm_err_set(err, FM_ERR_INVALID, "http.workers must be 1..%d", MAX_WORKERS), 1;
    char config[sizeof ctx->cfg.path], db[sizeof ctx->cfg.db_path];
    snprintf(config, sizeof config, "%s", ctx->cfg.path);
    snprintf(db, sizeof db, "%s", ctx->cfg.db_path);
    ctx_extras ex = {ctx->content};
    /* Stdio buffers would otherwise be flushed once per child. */
    fflush(NULL);
    fm_ctx_close(ctx);
    pid_t pids[MAX_WORKERS] = {0};
    int live = 0;
    for (int i = 0; i < workers; i++) {
        pids[i] = spawn(ctx, config, db, &ex, fn, arg);
        if (pids[i] < 0) {
            fm_log("error", "http: cannot fork worker %d: %s", i, strerror(errno));
            pids[i] = 0;
        } else
            live++;
    }
    if (!live) return fm_err_set(err, FM_ERR_UNAVAILABLE, "http: no worker could be started"), 1;
    /* Opened after the forks: no connection crosses one.  Run inline,
     * not as a thread: the parent forks again to replace a worker. */
    fm_http_checkpointer *ckpt = checkpointer_open(db);
    int64_t last_respawn = 0, stop_at = 0, last_term = 0, last_ckpt = now_ms();
    int failed = 0;
    while (live) {
        if (ctx->stop && !stop_at) stop_at = now_ms();
        /* Passed on again each second: a worker between fork and its
         * context's reset could miss the first one. */
        if (stop_at && now_ms() - last_term >= 1000) {
            for (int i = 0; i < workers; i++)
                if (pids[i] > 0) kill(pids[i], SIGTERM);
            last_term = now_ms();
        }
        if (stop_at && now_ms() - stop_at > grace_ms + 2000) {
            for (int i = 0; i < workers; i++)
                if (pids[i] > 0) kill(pids[i], SIGKILL);
        }
        int status;
        pid_t done = waitpid(-1, &status, WNOHANG);
        if (done <= 0 && ckpt && now_ms() - last_ckpt >= CHECKPOINT_MS) {
            checkpoint_tick(ckpt);
            last_ckpt = now_ms();
        }
        if (done <= 0) {
            /* SIGTERM interrupts the sleep (no SA_RESTART). */
            struct timespec ts = {0, 20 * 1000000L};
            nanosleep(&ts, NULL);
            continue;
        }
        for (int i = 0; i < workers; i++) {
            if (pids[i] != done) continue;
            pids[i] = 0;
            live--;
            bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
            if (!clean) failed = 1;
            if (stop_at) break;
            fm_log("error", "http worker %d %s %d; %s", (int)done,
                   WIFSIGNALED(status) ? "killed by signal" : "exited with",
                   WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
                   now_ms() - last_respawn >= 1000 ? "starting another"
                                                   : "not restarted (too soon)");
            if (now_ms() - last_respawn >= 1000) {
                last_respawn = now_ms();
                pid_t p = spawn(ctx, config, db, &ex, fn, arg);
                if (p > 0) {
                    pids[i] = p;
                    live++;
                }
            }
            break;
        }
    }
    checkpointer_end(ckpt);
    if (failed && !stop_at)
        return fm_err_set(err, FM_ERR_UNAVAILABLE, "http: every worker stopped (see above)"), 1;
    return 0;
}

/* ---- serving threads -------------------------------------------------------
 *
 * The default: the workers are threads of this process, each with a
 * context of its own (store connection, statement cache, batch, the call
 * in flight), so the protocol core stays single-threaded per context.
 * What the core keeps outside a context is built before the threads
 * start (configuration, compiled schemas, lazily loaded libraries: each
 * context opens here, one after another) or kept per thread (exchange.c's
 * session cache, a thread's PCRE2 match data).  Thread 0 serves on the
 * caller's context, whose stop flag the signal handler sets; this thread
 * passes the stop on and runs the WAL checkpoints, as the workers'
 * parent does. */
typedef struct {
    fm_ctx *ctx;
    fm_http_worker_fn fn;
    void *arg;
    int index;
    fm_err err;
    int rc;
    pthread_t th;
    bool started;
    atomic_bool done;
} serving_thread;

static void *serving_main(void *p)
{
    serving_thread *t = p;
    /* Named, so that ps -L and /proc/PID/task/TID/comm tell them apart
     * (tests/http/workers.py counts them). */
    char name[16];
    snprintf(name, sizeof name, "fm-serve-%d", t->index);
    pthread_setname_np(pthread_self(), name);
    fm_http_stats_thread(t->index + 1); /* 0: the supervising thread */
    t->rc = t->fn(t->ctx, t->arg, &t->err);
    atomic_store(&t->done, true);
    return NULL;
}

/* Opens the contexts of threads 1..n-1 (thread 0 has the caller's); -1
 * with err, those opened so far closed. */
static int contexts_open(fm_ctx *ctx, fm_ctx *more, int n, fm_err *err)
{
    for (int i = 0; i < n; i++) {
        if (fm_ctx_open(&more[i], ctx->cfg.path[0] ? ctx->cfg.path : NULL, ctx->cfg.db_path, err)) {
            while (i-- > 0)
                fm_ctx_close(&more[i]);
            return -1;
        }
        more[i].content = ctx->content;
    }
    return 0;
}

/* Until every thread ended: the stop passed on (SIGTERM to a thread wakes
 * it from its wait; the handler only sets the caller's flag again), and
 * a checkpoint a second.  A thread that ends first ends the service: a
 * thread cannot fail alone the way a process can. */
static int supervise(fm_ctx *ctx, serving_thread *t, int n, fm_http_checkpointer *ckpt)
{
    int live = n, failed = 0;
    int64_t last_ckpt = now_ms();
    while (live) {
        for (int i = 0; i < n; i++) {
            if (ctx->stop && !t[i].ctx->stop && t[i].started) {
                t[i].ctx->stop = 1;
                pthread_kill(t[i].th, SIGTERM);
            }
            if (!t[i].started || !atomic_load(&t[i].done)) continue;
            pthread_join(t[i].th, NULL);
            t[i].started = false;
            live--;
            if (t[i].rc) {
                failed = 1;
                fm_log("error", "http serving thread %d: %s: %s", i, fm_strerror(t[i].err.code),
                       t[i].err.text);
            }
            ctx->stop = 1;
        }
        if (ckpt && now_ms() - last_ckpt >= CHECKPOINT_MS) {
            checkpoint_tick(ckpt);
            last_ckpt = now_ms();
        }
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return failed;
}

int fm_http_threads_run(fm_ctx *ctx, int n, fm_http_worker_fn fn, void *arg, fm_err *err)
{
    if (n < 1 || n > MAX_WORKERS)
        return fm_err_set(err, FM_ERR_INVALID, "http.workers must be 1..%d", MAX_WORKERS), 1;
    fm_ctx *more = calloc((size_t)n, sizeof *more);
    serving_thread *t = calloc((size_t)n, sizeof *t);
    if (!more || !t || contexts_open(ctx, more, n - 1, err)) {
        if (!err->code) fm_err_set(err, FM_ERR_NOMEM, "out of memory for %d serving threads", n);
        free(more);
        free(t);
        return 1;
    }
    fm_db_sqlite_checkpointer_owns(true);
    fm_http_checkpointer *ckpt = ctx->store.db && ctx->store.db->ops == &fm_db_sqlite_ops
                                     ? checkpointer_open(ctx->cfg.db_path)
                                     : NULL;
    /* SIGTERM and SIGINT stay deliverable, to interrupt a thread's wait. */
    static const int wake[] = {SIGTERM, SIGINT, 0};
    int started = 0;
    for (int i = 0; i < n; i++) {
        t[i] = (serving_thread){.ctx = i ? &more[i - 1] : ctx, .fn = fn, .arg = arg, .index = i};
        int rc = thread_start(&t[i].th, serving_main, &t[i], wake);
        if (rc) {
            fm_log("error", "http: cannot start serving thread %d: %s", i, strerror(rc));
            ctx->stop = 1;
            break;
        }
        t[i].started = true;
        started++;
    }
    if (ckpt) fm_http_fork_guard_add(ckpt->st.db, &ckpt->busy);
    int failed = supervise(ctx, t, started, ckpt);
    checkpointer_end(ckpt);
    fm_db_sqlite_checkpointer_owns(false);
    for (int i = 0; i < n - 1; i++)
        fm_ctx_close(&more[i]);
    free(more);
    free(t);
    if (failed || started < n)
        return fm_err_set(err, FM_ERR_UNAVAILABLE, "http: a serving thread stopped (see above)"), 1;
    return 0;
}
