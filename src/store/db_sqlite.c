/* fm_db on SQLite: each call forwards to the sqlite3 call of the same
 * name.  WAL, a busy timeout and a wal hook that defers checkpoints to
 * idle time (fm_store_checkpoint) are set here, at open. */
#include "fleetmcp/fm_db.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BUSY_TIMEOUT_MS 10000
/* SQLite's own autocheckpoint threshold, and the bound past which a
 * checkpoint no longer waits for an idle moment. */
#define WAL_IDLE_FRAMES 1000
#define WAL_HARD_FRAMES 8000
/* The bound when a checkpointer of the process owns checkpoints (the HTTP
 * service): under steady load its checkpoints never catch up with the
 * writer (each one's fsyncs take 100-700 ms on a shared disk while new
 * frames arrive), so the WAL never restarts and would grow without limit;
 * past this many frames (4,120 bytes each: 264 MB) a serving connection
 * helps, at each commit until the WAL has started over.  Chosen from
 * bench/http.sh: at ~22 K calls/s the WAL grows ~13 K frames a second, so
 * a serving thread stalls for one checkpoint every ~5 s, not every 0.6 s
 * as at WAL_HARD_FRAMES. */
#define WAL_HELP_FRAMES 64000

/* Set while a checkpointer runs for this process's connections. */
static atomic_bool ckpt_owned;

typedef struct lite_db {
    fm_db base;
    sqlite3 *db;
    int wal_frames;    /* frames in the WAL after the last commit */
    long inline_ckpts; /* checkpoints run from the wal hook */
    long waited_us;    /* for the write lock, in this wait (busy_wait) */
} lite_db;

typedef struct lite_stmt {
    fm_db_stmt base;
    sqlite3_stmt *s;
} lite_stmt;

#define DB(d) (((lite_db *)(d))->db)
#define ST(x) (((lite_stmt *)(x))->s)

static void checkpoint(fm_db *d)
{
    lite_db *l = (lite_db *)d;
    /* PASSIVE: never waits for readers or writers of other processes. */
    sqlite3_wal_checkpoint_v2(l->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    l->wal_frames = 0;
}

static int checkpoint_due(fm_db *d)
{
    return ((lite_db *)d)->wal_frames >= WAL_IDLE_FRAMES;
}

static int checkpoint_nowait(lite_db *l, int mode, int *log_frames, int *done_frames);

/* Replaces SQLite's autocheckpoint (a wal hook turns it off): counts
 * frames, and checkpoints at once only past the hard bound.  While a
 * checkpointer owns checkpoints, only past WAL_HELP_FRAMES, and then a
 * RESTART that does not wait: with the write lock free it copies what the
 * checkpointer has not yet and leaves the WAL to start over at the next
 * commit, which a PASSIVE one cannot promise while other processes write
 * (their frames arrive during its fsync).  With the lock taken it does the
 * passive part and the next commit tries again. */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
    (void)db, (void)name;
    lite_db *l = arg;
    l->wal_frames = frames;
    bool owned = atomic_load(&ckpt_owned);
    if (frames < (owned ? WAL_HELP_FRAMES : WAL_HARD_FRAMES)) return SQLITE_OK;
    l->inline_ckpts++;
    int log, done;
    if (owned)
        checkpoint_nowait(l, SQLITE_CHECKPOINT_RESTART, &log, &done);
    else
        checkpoint(&l->base);
    return SQLITE_OK;
}

/* Waits for another connection's write lock in short naps (50 us, doubling
 * to 1 ms) for up to BUSY_TIMEOUT_MS.  SQLite's own busy timeout naps
 * 1, 2, 5 ... 100 ms: with several server processes writing an audit row
 * per call, a writer would sleep long after the lock was free, and those
 * naps were the slowest calls. */
static int busy_wait(void *arg, int count)
{
    lite_db *l = arg;
    if (count == 0) l->waited_us = 0;
    if (l->waited_us >= (long)BUSY_TIMEOUT_MS * 1000) return 0;
    long us = count < 5 ? 50L << count : 1000;
    struct timespec ts = {0, us * 1000};
    nanosleep(&ts, NULL);
    l->waited_us += us;
    return 1;
}

/* WAL writes, one system call per commit.  SQLite's unix VFS writes
 * each WAL frame as two pwrite calls, its 24-byte header and its page,
 * so an audited call (three frames: the row, its audit_tool and
 * audit_session index pages) made six, and on this kind of VM a system
 * call is most of a microsecond of kernel entry before it does anything
 * (perf: 36% of a call's samples in the kernel, 16 points of them in
 * syscall entry).  This VFS is the default one with the WAL file's
 * writes gathered: contiguous writes are copied into a buffer and handed
 * to the default VFS's own xWrite as one write when the frame that ends
 * a transaction (a commit frame: its header's database size is not
 * zero) is complete, before anything can read or size the file, and
 * when the buffer is full or a write is not contiguous.
 *
 * Why that is safe: other connections learn of new frames only from the
 * WAL index header, which SQLite publishes after sqlite3WalFrames has
 * written every frame, the commit frame last, so the frames are in the
 * file (and a failed write fails the commit, as before) before anyone
 * can look.  The writer's own reads of the WAL flush first.  Nothing is
 * synced later or less than before: xSync flushes and then syncs, so
 * synchronous=NORMAL (no sync at commit, WAL synced at checkpoint) means
 * exactly what it meant.  Only the WAL file is wrapped; the database
 * file, its locks and the shared-memory index are the default VFS's. */
#define WB_NAME "fleetmcp-walbatch"
#define WB_FRAME_HDR 24
/* 16 frames of 4 KB pages: an audited call writes 3; a bigger
 * transaction goes out in 64 KB writes. */
#define WB_CAP (16 * (4096 + WB_FRAME_HDR))

typedef struct wb_file {
    sqlite3_file base;
    unsigned char *buf; /* malloc'd on first write */
    size_t len;
    sqlite3_int64 off;   /* file offset of buf[0] */
    bool commit_pending; /* the last header buffered was a commit frame's */
    sqlite3_file *inner; /* the default VFS's file, in the same allocation */
} wb_file;

static sqlite3_vfs wb_vfs;
static sqlite3_vfs *wb_base;

static int wb_flush(wb_file *f)
{
    if (!f->len) return SQLITE_OK;
    int rc = f->inner->pMethods->xWrite(f->inner, f->buf, (int)f->len, f->off);
    /* Dropped either way: on failure SQLite abandons the transaction,
     * and frames past the index's end are never read. */
    f->len = 0;
    f->commit_pending = false;
    return rc;
}

static int wb_write(sqlite3_file *pf, const void *p, int amt, sqlite3_int64 off)
{
    wb_file *f = (wb_file *)pf;
    bool contiguous = f->len && off == f->off + (sqlite3_int64)f->len;
    if (f->len && (!contiguous || f->len + (size_t)amt > WB_CAP)) {
        int rc = wb_flush(f);
        if (rc != SQLITE_OK) return rc;
    }
    if (amt <= 0 || (size_t)amt > WB_CAP) return f->inner->pMethods->xWrite(f->inner, p, amt, off);
    if (!f->buf && !(f->buf = malloc(WB_CAP)))
        return f->inner->pMethods->xWrite(f->inner, p, amt, off); /* unbuffered, still right */
    if (!f->len) f->off = off;
    memcpy(f->buf + f->len, p, (size_t)amt);
    f->len += (size_t)amt;
    if (amt == WB_FRAME_HDR) {
        const unsigned char *h = p; /* bytes 4-7: database size after a commit, else 0 */
        f->commit_pending = h[4] | h[5] | h[6] | h[7];
        return SQLITE_OK;
    }
    return f->commit_pending ? wb_flush(f) : SQLITE_OK;
}

static int wb_close(sqlite3_file *pf)
{
    wb_file *f = (wb_file *)pf;
    int rc = wb_flush(f);
    int rc2 = f->inner->pMethods ? f->inner->pMethods->xClose(f->inner) : SQLITE_OK;
    free(f->buf);
    f->buf = NULL;
    return rc != SQLITE_OK ? rc : rc2;
}

/* Everything else: the buffer goes out first, then the default VFS. */
#define WB_FWD(call)                                                                               \
    wb_file *f = (wb_file *)pf;                                                                    \
    int rc = wb_flush(f);                                                                          \
    return rc != SQLITE_OK ? rc : f->inner->pMethods->call

static int wb_read(sqlite3_file *pf, void *p, int amt, sqlite3_int64 off)
{
    WB_FWD(xRead(f->inner, p, amt, off));
}
static int wb_truncate(sqlite3_file *pf, sqlite3_int64 size)
{
    WB_FWD(xTruncate(f->inner, size));
}
static int wb_sync(sqlite3_file *pf, int flags)
{
    WB_FWD(xSync(f->inner, flags));
}
static int wb_size(sqlite3_file *pf, sqlite3_int64 *size)
{
    WB_FWD(xFileSize(f->inner, size));
}
static int wb_lock(sqlite3_file *pf, int l)
{
    WB_FWD(xLock(f->inner, l));
}
static int wb_unlock(sqlite3_file *pf, int l)
{
    WB_FWD(xUnlock(f->inner, l));
}
static int wb_reserved(sqlite3_file *pf, int *out)
{
    WB_FWD(xCheckReservedLock(f->inner, out));
}
static int wb_fcntl(sqlite3_file *pf, int op, void *arg)
{
    WB_FWD(xFileControl(f->inner, op, arg));
}
static int wb_fetch(sqlite3_file *pf, sqlite3_int64 off, int amt, void **pp)
{
    WB_FWD(xFetch(f->inner, off, amt, pp));
}
static int wb_unfetch(sqlite3_file *pf, sqlite3_int64 off, void *p)
{
    WB_FWD(xUnfetch(f->inner, off, p));
}
static int wb_shm_map(sqlite3_file *pf, int pg, int sz, int extend, void volatile **pp)
{
    WB_FWD(xShmMap(f->inner, pg, sz, extend, pp));
}
static int wb_shm_lock(sqlite3_file *pf, int ofs, int n, int flags)
{
    WB_FWD(xShmLock(f->inner, ofs, n, flags));
}
#undef WB_FWD
static int wb_sector(sqlite3_file *pf)
{
    return ((wb_file *)pf)->inner->pMethods->xSectorSize(((wb_file *)pf)->inner);
}
static int wb_devchar(sqlite3_file *pf)
{
    return ((wb_file *)pf)->inner->pMethods->xDeviceCharacteristics(((wb_file *)pf)->inner);
}
static void wb_barrier(sqlite3_file *pf)
{
    wb_file *f = (wb_file *)pf;
    (void)wb_flush(f); /* not reached for a WAL file; an error shows at the next write */
    f->inner->pMethods->xShmBarrier(f->inner);
}
static int wb_shm_unmap(sqlite3_file *pf, int del)
{
    wb_file *f = (wb_file *)pf;
    return f->inner->pMethods->xShmUnmap(f->inner, del);
}

/* Version 3, as the unix VFS's: the WAL file is never mapped nor used as
 * shared memory, so those calls only pass on. */
static const sqlite3_io_methods wb_methods = {
    .iVersion = 3,
    .xClose = wb_close,
    .xRead = wb_read,
    .xWrite = wb_write,
    .xTruncate = wb_truncate,
    .xSync = wb_sync,
    .xFileSize = wb_size,
    .xLock = wb_lock,
    .xUnlock = wb_unlock,
    .xCheckReservedLock = wb_reserved,
    .xFileControl = wb_fcntl,
    .xSectorSize = wb_sector,
    .xDeviceCharacteristics = wb_devchar,
    .xShmMap = wb_shm_map,
    .xShmLock = wb_shm_lock,
    .xShmBarrier = wb_barrier,
    .xShmUnmap = wb_shm_unmap,
    .xFetch = wb_fetch,
    .xUnfetch = wb_unfetch,
};

static int wb_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *pf, int flags, int *out)
{
    (void)vfs;
    /* Not the WAL: the default VFS's file, as it is (our allocation is
     * larger than it needs). */
    if (!(flags & SQLITE_OPEN_WAL)) return wb_base->xOpen(wb_base, name, pf, flags, out);
    wb_file *f = (wb_file *)pf;
    memset(f, 0, sizeof *f);
    f->inner = (sqlite3_file *)(f + 1);
    int rc = wb_base->xOpen(wb_base, name, f->inner, flags, out);
    if (rc == SQLITE_OK && f->inner->pMethods->iVersion < 3) {
        /* Not the unix VFS this was written against: no batching. */
        f->inner->pMethods->xClose(f->inner);
        rc = wb_base->xOpen(wb_base, name, pf, flags, out);
        return rc;
    }
    if (rc != SQLITE_OK) {
        f->base.pMethods = NULL; /* SQLite does not close what failed to open */
        return rc;
    }
    f->base.pMethods = &wb_methods;
    return SQLITE_OK;
}

/* The default VFS with wb_open; registered once, not as the default. */
static void wb_register(void)
{
    wb_base = sqlite3_vfs_find(NULL);
    if (!wb_base) return;
    wb_vfs = *wb_base;
    wb_vfs.zName = WB_NAME;
    wb_vfs.pNext = NULL;
    /* wb_file, then the default VFS's file, aligned as malloc aligns. */
    wb_vfs.szOsFile = (int)(sizeof(wb_file) + (size_t)wb_base->szOsFile);
    wb_vfs.xOpen = wb_open;
    if (sqlite3_vfs_register(&wb_vfs, 0) != SQLITE_OK) wb_base = NULL;
}

/* Before SQLite initialises.  Multi-thread mode: a connection is used by
 * one thread at a time (the protocol core is single-threaded, and the
 * tests' threads each open their own), so SQLite takes no connection
 * mutex in every API call; no memory statistics, which nothing reads,
 * so no global mutex around every SQLite malloc and free.  Together
 * ~230 mutex lock/unlock pairs per audited call.  And no bulk page-cache
 * allocation per connection.  By default every connection mallocs room for 20 pages at
 * once and writes a header into each, touching ~88 KB (21 page faults)
 * at every start, while a start reads a handful of pages; pages now come
 * one malloc each as they are read.  If something initialised SQLite
 * first, sqlite3_config refuses (SQLITE_MISUSE) and the default stays:
 * slower to start, not wrong. */
static void configure_once(void)
{
    (void)sqlite3_config(SQLITE_CONFIG_MULTITHREAD);
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    (void)sqlite3_config(SQLITE_CONFIG_PAGECACHE, NULL, 0, 0);
    wb_register(); /* after the config: registering initialises SQLite */
}

/* file:PATH?immutable=1 with PATH percent-encoded where a URI needs it;
 * false when it does not fit. */
static bool uri_of(const char *path, char *out, size_t len)
{
    size_t n = (size_t)snprintf(out, len, "file:");
    for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
        if (n + 4 >= len) return false;
        if (*p == '%' || *p == '?' || *p == '#' || *p < 0x21 || *p > 0x7e)
            n += (size_t)snprintf(out + n, len - n, "%%%02X", *p);
        else
            out[n++] = (char)*p;
    }
    return (size_t)snprintf(out + n, len - n, "?immutable=1") < len - n;
}

static int open_flags(const char *path, bool readonly, fm_db **out, fm_err *err)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, configure_once);
    /* SQLite's VFS opens names up to mxPathname bytes (512 on unix);
     * refused here with what to do, before any file is made or probed. */
    const sqlite3_vfs *vfs = sqlite3_vfs_find(NULL);
    size_t plen = strlen(path);
    if (vfs && plen >= (size_t)vfs->mxPathname)
        return fm_err_set(err, FM_ERR_INVALID,
                          "store path is %zu bytes, and SQLite opens paths of at most %d: use a"
                          " shorter store.path (or --db), for example through a symbolic link",
                          plen, vfs->mxPathname - 1),
               -1;
    lite_db *l = calloc(1, sizeof *l);
    if (!l) return fm_err_set(err, FM_ERR_NOMEM, "store: out of memory"), -1;
    l->base.ops = &fm_db_sqlite_ops;
    int flags = readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    /* Read-only without a -wal file beside it: every commit is in the file
     * itself, and opening it as immutable reads it without creating the
     * -wal and -shm files a WAL-mode reader would otherwise leave.  Both
     * names are made whole, at any length: a cut -wal name would not
     * exist, and the probe would read the store as immutable without the
     * commits in its WAL. */
    char *uri = NULL;
    const char *target = path;
    if (readonly) {
        const size_t n = plen;
        /* Each byte percent-encoded at most, plus the scheme and query. */
        const size_t ulen = 3 * n + sizeof "file:?immutable=1";
        char *wal = malloc(n + sizeof "-wal");
        uri = malloc(ulen);
        if (!wal || !uri) {
            free(wal), free(uri), free(l);
            return fm_err_set(err, FM_ERR_NOMEM, "store: out of memory"), -1;
        }
        memcpy(wal, path, n);
        memcpy(wal + n, "-wal", sizeof "-wal");
        if (access(wal, F_OK) && uri_of(path, uri, ulen)) {
            target = uri;
            flags |= SQLITE_OPEN_URI;
        }
        free(wal);
    }
    /* Writers batch their WAL frames (the default VFS when registration
     * failed); a read-only probe writes nothing, so it needs no batching. */
    int orc = sqlite3_open_v2(target, &l->db, flags, !readonly && wb_base ? WB_NAME : NULL);
    free(uri);
    if (orc != SQLITE_OK) {
        fm_err_set(err, FM_ERR_IO, "store open failed: %s (database %s)",
                   l->db ? sqlite3_errmsg(l->db) : "out of memory", path);
        sqlite3_close_v2(l->db);
        free(l);
        return -1;
    }
    sqlite3_busy_handler(l->db, busy_wait, l);
    /* NORMAL is durable across a process crash in WAL mode, which is the
     * failure that matters for kill -9 recovery; FULL would cost an fsync
     * per audited call.  A small page cache: the working set (recent
     * audit rows, settings) is tiny, and the RSS budget is 8 MB. */
    char *msg = NULL;
    /* Read-only: journal_mode=WAL would write the header of a file that
     * is not in WAL mode yet; query_only refuses any write besides. */
    if (sqlite3_exec(l->db,
                     readonly ? "PRAGMA query_only=ON;"
                              : "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                                " PRAGMA foreign_keys=ON; PRAGMA cache_size=-128;",
                     NULL, NULL, &msg) != SQLITE_OK) {
        fm_err_set(err, FM_ERR_IO, "store: %s (database %s)", msg ? msg : "error", path);
        sqlite3_free(msg);
        sqlite3_close_v2(l->db);
        free(l);
        return -1;
    }
    sqlite3_wal_hook(l->db, wal_hook, l);
    *out = &l->base;
    return 0;
}

static int l_open(const char *path, fm_db **out, fm_err *err)
{
    return open_flags(path, false, out, err);
}

static int l_open_readonly(const char *path, fm_db **out, fm_err *err)
{
    return open_flags(path, true, out, err);
}

static void l_close(fm_db *d)
{
    sqlite3_close_v2(DB(d));
    free(d);
}

static int l_prepare(fm_db *d, const char *sql, fm_db_stmt **out)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v3(DB(d), sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL);
    if (rc != SQLITE_OK) return rc;
    lite_stmt *w = malloc(sizeof *w);
    if (!w) {
        sqlite3_finalize(s);
        return SQLITE_NOMEM;
    }
    w->base.ops = &fm_db_sqlite_ops;
    w->base.db = d;
    w->s = s;
    *out = &w->base;
    return SQLITE_OK;
}

static int l_step(fm_db_stmt *s)
{
    return sqlite3_step(ST(s));
}
static int l_reset(fm_db_stmt *s)
{
    return sqlite3_reset(ST(s));
}
static int l_clear(fm_db_stmt *s)
{
    return sqlite3_clear_bindings(ST(s));
}

static int l_finalize(fm_db_stmt *s)
{
    int rc = sqlite3_finalize(ST(s));
    free(s);
    return rc;
}

static int l_bind(fm_db_stmt *s, int i, int type, const void *v, int n, fm_db_int64 iv, double dv)
{
    switch (type) {
    case FM_DB_TEXT:
        return sqlite3_bind_text(ST(s), i, v, n, SQLITE_TRANSIENT);
    case FM_DB_TEXT_BORROWED:
        return sqlite3_bind_text(ST(s), i, v, n, SQLITE_STATIC);
    case FM_DB_BLOB:
        return sqlite3_bind_blob(ST(s), i, v, n, SQLITE_TRANSIENT);
    case FM_DB_INTEGER:
        return sqlite3_bind_int64(ST(s), i, iv);
    case FM_DB_FLOAT:
        return sqlite3_bind_double(ST(s), i, dv);
    default:
        return sqlite3_bind_null(ST(s), i);
    }
}

static int l_nparams(fm_db_stmt *s)
{
    return sqlite3_bind_parameter_count(ST(s));
}
static int l_pindex(fm_db_stmt *s, const char *n)
{
    return sqlite3_bind_parameter_index(ST(s), n);
}
static int l_ncols(fm_db_stmt *s)
{
    return sqlite3_column_count(ST(s));
}
static int l_ctype(fm_db_stmt *s, int i)
{
    return sqlite3_column_type(ST(s), i);
}
static const char *l_cname(fm_db_stmt *s, int i)
{
    return sqlite3_column_name(ST(s), i);
}
static const unsigned char *l_ctext(fm_db_stmt *s, int i)
{
    return sqlite3_column_text(ST(s), i);
}
static const void *l_cblob(fm_db_stmt *s, int i)
{
    return sqlite3_column_blob(ST(s), i);
}
static int l_cbytes(fm_db_stmt *s, int i)
{
    return sqlite3_column_bytes(ST(s), i);
}
static fm_db_int64 l_cint64(fm_db_stmt *s, int i)
{
    return sqlite3_column_int64(ST(s), i);
}
static double l_cdouble(fm_db_stmt *s, int i)
{
    return sqlite3_column_double(ST(s), i);
}

static int l_exec(fm_db *d, const char *sql, char **errmsg)
{
    char *m = NULL;
    int rc = sqlite3_exec(DB(d), sql, NULL, NULL, errmsg ? &m : NULL);
    if (errmsg && m) *errmsg = strdup(m); /* freed with fm_db_free (free) */
    sqlite3_free(m);
    return rc;
}

static int l_changes(fm_db *d)
{
    return sqlite3_changes(DB(d));
}
static fm_db_int64 l_lastid(fm_db *d)
{
    return sqlite3_last_insert_rowid(DB(d));
}
static int l_autocommit(fm_db *d)
{
    return sqlite3_get_autocommit(DB(d));
}
static const char *l_errmsg(fm_db *d)
{
    return sqlite3_errmsg(DB(d));
}
static fm_code l_errcode(fm_db *d)
{
    return FM_ERR_IO;
}

const fm_db_ops fm_db_sqlite_ops = {
    .name = "sqlite",
    .open = l_open,
    .open_readonly = l_open_readonly,
    .close = l_close,
    .prepare = l_prepare,
    .step = l_step,
    .reset = l_reset,
    .clear_bindings = l_clear,
    .finalize = l_finalize,
    .bind = l_bind,
    .bind_parameter_count = l_nparams,
    .bind_parameter_index = l_pindex,
    .column_count = l_ncols,
    .column_type = l_ctype,
    .column_name = l_cname,
    .column_text = l_ctext,
    .column_blob = l_cblob,
    .column_bytes = l_cbytes,
    .column_int64 = l_cint64,
    .column_double = l_cdouble,
    .exec = l_exec,
    .changes = l_changes,
    .last_insert_rowid = l_lastid,
    .get_autocommit = l_autocommit,
    .errmsg = l_errmsg,
    .errcode = l_errcode,
    .maintenance_due = checkpoint_due,
    .maintenance = checkpoint,
};

sqlite3 *fm_db_sqlite_handle(fm_db *d)
{
    return d && d->ops == &fm_db_sqlite_ops ? DB(d) : NULL;
}

int fm_db_sqlite_wal_frames(const fm_db *d)
{
    return d && d->ops == &fm_db_sqlite_ops ? ((const lite_db *)d)->wal_frames : 0;
}

long fm_db_sqlite_inline_checkpoints(const fm_db *d)
{
    return d && d->ops == &fm_db_sqlite_ops ? ((const lite_db *)d)->inline_ckpts : 0;
}

void fm_db_sqlite_checkpointer_owns(bool owns)
{
    atomic_store(&ckpt_owned, owns);
}

/* TRUNCATE and RESTART need the write lock and every reader on the
 * newest snapshot: without a busy handler they give up at once (after the
 * passive part) rather than make a writer queue behind them. */
static int checkpoint_nowait(lite_db *l, int mode, int *log_frames, int *done_frames)
{
    if (mode != SQLITE_CHECKPOINT_PASSIVE) sqlite3_busy_handler(l->db, NULL, NULL);
    int rc = sqlite3_wal_checkpoint_v2(l->db, NULL, mode, log_frames, done_frames);
    if (mode != SQLITE_CHECKPOINT_PASSIVE) sqlite3_busy_handler(l->db, busy_wait, l);
    l->wal_frames = 0;
    return rc;
}

int fm_db_sqlite_checkpoint(fm_db *d, bool truncate, int *log_frames, int *done_frames)
{
    *log_frames = *done_frames = 0;
    if (!d || d->ops != &fm_db_sqlite_ops) return -1;
    int rc = checkpoint_nowait((lite_db *)d,
                               truncate ? SQLITE_CHECKPOINT_TRUNCATE : SQLITE_CHECKPOINT_PASSIVE,
                               log_frames, done_frames);
    return rc == SQLITE_OK ? 0 : rc == SQLITE_BUSY ? 1 : -1;
}
