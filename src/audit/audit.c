/* Audit rows and their hash chain.  An append reads the last hash and
 * inserts the next id: inside one BEGIN IMMEDIATE transaction on SQLite,
 * and on PostgreSQL as one insert that goes in only where the row before
 * it holds the hash it links to, with the id's primary key deciding who
 * got it (fm_audit_append), so several server processes on several hosts
 * sharing the database still form one linear chain.
 *
 * Since audit schema v3 each row's hash is an HMAC-SHA256 under a server
 * key kept in a file beside the database (DB.audit-key, 0600), over the
 * row's columns, its id and the previous hash: whoever can write the
 * database but not read the key cannot recompute the chain after an edit.
 * An anchor file (DB.audit-anchor: the newest row id and hash, MACed)
 * records how far the log reached, so deleting rows from the tail shows.
 * Rows written before v3 keep their unkeyed SHA-256 hashes; the first
 * keyed row links to them. */
#include "fleetmcp/fm_audit.h"
#include "fleetmcp/fm_policy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_util.h"

#define FOLDED_KEY "audit.hourly_folded_id"
#define KEYED_FROM_KEY "audit.keyed_from"
/* Rows between folds: bounds both the backlog a reader folds and how
 * often an append pays for a fold. */
#define FOLD_EVERY 256

static const char audit_ddl[] =
    "CREATE TABLE IF NOT EXISTS audit("
    " id INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL, session TEXT NOT NULL,"
    " phase TEXT NOT NULL, call_ref INTEGER, initiator_kind TEXT NOT NULL,"
    " initiator_name TEXT, os_user TEXT, client_name TEXT, client_version TEXT,"
    " tool TEXT, args TEXT, args_hash TEXT, autonomy TEXT, mode TEXT, decision TEXT,"
    " reason TEXT, plan_id TEXT, approval_id TEXT, workflow_id TEXT, node TEXT,"
    " result TEXT, error_code TEXT, error TEXT, duration_us INTEGER,"
    " state_before TEXT, state_after TEXT, runbook TEXT, runbook_version TEXT,"
    " prev_hash TEXT NOT NULL, hash TEXT NOT NULL);"
    /* Partial: most rows (fleet-wide reads) have no node, and an index
     * entry costs a page write per call.  node=? still uses it. */
    "DROP INDEX IF EXISTS audit_node;"
    "CREATE INDEX audit_node ON audit(node, id) WHERE node IS NOT NULL;"
    "CREATE INDEX IF NOT EXISTS audit_tool ON audit(tool, id);"
    "CREATE INDEX IF NOT EXISTS audit_session ON audit(session, id);"
    /* Calls per hour by tool and decision, so fleet_status and the metrics
     * never scan the log.  Folded in batches (fm_audit_fold), not per row:
     * a counter update per call would cost a page write per call.  The
     * watermark starts at the current end, as earlier rows were counted
     * one by one. */
    "CREATE TABLE IF NOT EXISTS audit_hourly(hour INTEGER NOT NULL, tool TEXT NOT NULL,"
    " decision TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY(hour, tool, decision))"
    " WITHOUT ROWID;"
    "INSERT INTO settings(key,value,updated_ms)"
    " SELECT '" FOLDED_KEY "', coalesce(max(id), 0), 0 FROM audit WHERE true"
    " ON CONFLICT(key) DO UPDATE SET value=excluded.value, updated_ms=excluded.updated_ms;";

/* Column order is part of the hash: never reorder, only append. */
#define AUDIT_COLS                                                                                 \
    "ts_ms,session,phase,call_ref,initiator_kind,initiator_name,os_user,client_name,"              \
    "client_version,tool,args,args_hash,autonomy,mode,decision,reason,plan_id,approval_id,"        \
    "workflow_id,node,result,error_code,error,duration_us,state_before,state_after,runbook,"       \
    "runbook_version,approvers"
#define AUDIT_NCOLS 29
/* Columns added after rows were already chained (approvers, v5) are
 * hashed only when a row has a value: every row written before keeps the
 * hash it was written with, and setting or clearing the column on any row
 * still breaks its hash (the parts are length-prefixed, so a row with the
 * part and one without never encode alike). */
#define AUDIT_FIRST_OPTIONAL 28
#define GENESIS_HASH "0000000000000000000000000000000000000000000000000000000000000000"

static const char last_hash_sql[] = "SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1";
/* Row N goes in only where row N-1 is in with the hash it links to (or
 * N is 1 and links to the genesis hash), and only once (the primary
 * key): so a writer that guessed the head wrong inserts nothing.  ?33:
 * the emergency setting's text the row's mode was taken from when it was
 * a guess (PostgreSQL, fm_emergency_assume; NULL: read, nothing to
 * check), so a wrong guess inserts nothing either. */
static const char insert_sql[] =
    "INSERT INTO audit(" AUDIT_COLS ",prev_hash,hash,id) SELECT ?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,"
    "?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,?22,?23,?24,?25,?26,?27,?28,?29,?30,?31,?32"
    " WHERE (EXISTS(SELECT 1 FROM audit WHERE id=?32-1 AND hash=?30)"
    " OR (?32=1 AND ?30='" GENESIS_HASH "'))"
    " AND (coalesce((SELECT value FROM settings WHERE key='" FM_EMERGENCY_SETTING "'),'')=?33"
    " OR ?33 IS NULL) ON CONFLICT(id) DO NOTHING";
/* SQLite: the head was read in this BEGIN IMMEDIATE transaction, which
 * no other writer can enter, and the mode inside it too, so the row goes
 * in as it is: no predecessor probe, no setting read, no conflict arm
 * (each a b-tree seek per call). */
static const char insert_lite_sql[] =
    "INSERT INTO audit(" AUDIT_COLS ",prev_hash,hash,id) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,"
    "?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,?22,?23,?24,?25,?26,?27,?28,?29,?30,?31,?32)";
/* What an append on PostgreSQL learns in the same round trip: the head
 * after it, and the emergency setting. */
static const char seen_sql[] =
    "SELECT a.id, a.hash, (SELECT value FROM settings WHERE key='" FM_EMERGENCY_SETTING "')"
    " FROM audit a ORDER BY a.id DESC LIMIT 1";
static const char fold_sql[] =
    "INSERT INTO audit_hourly(hour,tool,decision,n)"
    " SELECT ts_ms/3600000, coalesce(tool,''), coalesce(decision,'none'), count(*) FROM audit"
    " WHERE id>?1 AND id<=?2 AND phase IN ('call','intent') GROUP BY 1,2,3"
    " ON CONFLICT(hour,tool,decision) DO UPDATE SET n=audit_hourly.n+excluded.n";
static const char max_id_sql[] = "SELECT coalesce(max(id), 0) FROM audit";
static const char allowed_sql[] =
    "SELECT count(*), coalesce(min(ts_ms), 0) FROM audit WHERE tool=? AND decision='allow' AND"
    " phase IN ('call','intent') AND ts_ms>=?";

typedef struct {
    long long n;
    int64_t oldest_ms;
} allowed_acc;

static int allowed_row(fm_db_stmt *row, void *arg)
{
    allowed_acc *a = arg;
    a->n = fm_db_column_int64(row, 0);
    a->oldest_ms = fm_db_column_int64(row, 1);
    return 1;
}

long long fm_audit_allowed_since(fm_store *st, const char *tool, int64_t since_ms,
                                 int64_t *oldest_ms)
{
    allowed_acc a = {-1, 0};
    fm_db_run(st->db, allowed_sql, allowed_row, &a, "ti", tool, since_ms);
    *oldest_ms = a.oldest_ms;
    return a.n;
}

/* v3: rows from here on are keyed.  Rows before keep their v1/v2 hashes. */
static const char audit_v3_ddl[] =
    "INSERT INTO settings(key,value,updated_ms)"
    " SELECT '" KEYED_FROM_KEY "', coalesce(max(id), 0) + 1, 0 FROM audit WHERE true"
    " ON CONFLICT(key) DO UPDATE SET value=excluded.value, updated_ms=excluded.updated_ms;";

/* v4: the shared anchor.  One row per host sharing the store: the
 * newest row id and hash it saw, MACed under the audit key with the host
 * name, so a host that never wrote a row still learns how far the log
 * reached (fm_audit_verify).  One description for both engines
 * (db_sql.c rewrites INTEGER). */
static const char audit_v4_ddl[] =
    "CREATE TABLE IF NOT EXISTS audit_heads(host TEXT PRIMARY KEY, id INTEGER NOT NULL,"
    " hash TEXT NOT NULL, keyed_from INTEGER NOT NULL, mac TEXT NOT NULL,"
    " updated_ms INTEGER NOT NULL);";
/* Forward only: a head row never moves back, whoever writes it. */
static const char head_put_sql[] =
    "INSERT INTO audit_heads(host,id,hash,keyed_from,mac,updated_ms) VALUES(?,?,?,?,?,?)"
    " ON CONFLICT(host) DO UPDATE SET id=excluded.id, hash=excluded.hash,"
    " keyed_from=excluded.keyed_from, mac=excluded.mac, updated_ms=excluded.updated_ms"
    " WHERE audit_heads.id < excluded.id";
/* Newest first; verify checks at most this many (hosts, not rows). */
#define MAX_HEADS_TEXT "256"
#define MAX_HEADS 256
static const char heads_sql[] =
    "SELECT host,id,hash,keyed_from,mac FROM audit_heads ORDER BY id DESC LIMIT " MAX_HEADS_TEXT;
/* A host records its head every this many of its own appends, and on
 * verify: rows after a host's last head are covered by its anchor file
 * only. */
#define HEAD_EVERY 64
/* v5: the approving people get a column of their own on the row of the
 * action their approvals released (they were in the reason text only).
 * One statement for SQLite and PostgreSQL alike. */
static const char audit_v5_ddl[] = "ALTER TABLE audit ADD COLUMN approvers TEXT;";

/* The anchor file, mapped shared by every process using the store: the
 * newest row's id and hash, the first keyed id, their MAC, and a robust
 * process-shared mutex.  Updating it is a few memory writes, not system
 * calls (each costs microseconds here, and every audited call updates
 * it); the kernel writes the page back, and a process killed while
 * holding the mutex hands it on (EOWNERDEAD). */
#define ANCHOR_MAGIC "fleetmcp-audit-anchor-v1"
typedef struct anchor {
    char magic[32]; /* ANCHOR_MAGIC, or zeros while empty */
    int64_t id, keyed_from;
    char head[65], mac[65];
} anchor;

typedef struct anchor_file {
    anchor a;
    pthread_mutex_t mu;
} anchor_file;

static void side_path(const fm_store *st, const char *suffix, char *out, size_t len)
{
    snprintf(out, len, "%s.%s", st->side, suffix);
}

/* The anchor's MAC: over what it vouches for, in a fixed binary layout. */
static void anchor_mac(fm_store *st, int64_t id, int64_t keyed_from, const char *head, char out[65])
{
    unsigned char msg[8 + 8 + 8 + 64];
    memcpy(msg, "anchor|\0", 8);
    for (int i = 0; i < 8; i++) {
        msg[8 + i] = (unsigned char)((uint64_t)id >> (56 - 8 * i));
        msg[16 + i] = (unsigned char)((uint64_t)keyed_from >> (56 - 8 * i));
    }
    memcpy(msg + 24, head, 64);
    fm_hmac_sha256_hex_kept(&st->audit_mac, st->audit_key, msg, sizeof msg, out);
}

/* A head row's MAC: as the anchor's, plus the host, so a row cannot be
 * passed off as another host's. */
static void head_mac(fm_store *st, const char *host, int64_t id, int64_t keyed_from,
                     const char *head, char out[65])
{
    unsigned char msg[8 + 8 + 8 + 64 + 64] = {0};
    memcpy(msg, "head|\0\0\0", 8);
    for (int i = 0; i < 8; i++) {
        msg[8 + i] = (unsigned char)((uint64_t)id >> (56 - 8 * i));
        msg[16 + i] = (unsigned char)((uint64_t)keyed_from >> (56 - 8 * i));
    }
    memcpy(msg + 24, head, strnlen(head, 64));
    memcpy(msg + 88, host, strnlen(host, 63));
    fm_hmac_sha256_hex_kept(&st->audit_mac, st->audit_key, msg, sizeof msg, out);
}

/* Records (id, head) as this host's head in audit_heads, unless its row
 * there is newer.  Failure costs coverage, not the row: logged. */
static void head_put(fm_store *st, int64_t id, const char *head)
{
    if (!st->audit_keyed || id <= 0) return;
    char mac[65];
    head_mac(st, st->host, id, st->audit_keyed_from, head, mac);
    /* Through fm_db_run's statement cache: preparing it every HEAD_EVERY
     * rows was 1.6% of a loaded HTTP server's CPU (perf). */
    int rc = fm_db_run(st->db, head_put_sql, NULL, NULL, "tititi", st->host, id, head,
                       st->audit_keyed_from, mac, fm_now_ms());
    if (rc != FM_DB_DONE)
        fm_log("warning",
               "audit: cannot record this host's head (row %lld) in audit_heads: %s;"
               " other hosts' verify covers the log only up to an older head",
               (long long)id, fm_db_errmsg(st->db));
    else
        st->audit_since_head = 0;
}

static bool anchor_lock(anchor_file *f)
{
    int rc = pthread_mutex_lock(&f->mu);
    if (rc == EOWNERDEAD) rc = pthread_mutex_consistent(&f->mu);
    return rc == 0;
}

/* 1 when a holds an anchor, 0 when empty, -1 when it is not an anchor. */
static int anchor_state(const anchor *a)
{
    static const char zero[sizeof a->magic];
    if (!memcmp(a->magic, zero, sizeof zero)) return 0;
    if (strncmp(a->magic, ANCHOR_MAGIC, sizeof a->magic) || !memchr(a->head, 0, sizeof a->head) ||
        !memchr(a->mac, 0, sizeof a->mac))
        return -1;
    return 1;
}

/* A consistent copy of the anchor: as anchor_state, or -2 without one. */
static int anchor_get(fm_store *st, anchor *a)
{
    anchor_file *f = st->anchor_map;
    if (!f) return -2;
    if (!anchor_lock(f)) return -1;
    *a = f->a;
    pthread_mutex_unlock(&f->mu);
    return anchor_state(a);
}

/* Moves the anchor to (id, head), the last of the rows from..id just
 * committed, unless another process already moved it further (appends
 * commit in chain order, anchors may arrive out of it), or the row it
 * names is no longer the one before `from` or before `id` (from_prev,
 * prev: their prev hashes): the log was cut back and written again, and
 * the anchor is the evidence, so it stays.  A batch's rows are one span:
 * one MAC, its last row's, where each end was MACed apart (and a cut
 * found at the first row was then overwritten by the last's anchor). */
static void anchor_advance_span(fm_store *st, int64_t from, const char *from_prev, int64_t id,
                                const char *prev, const char *head)
{
    anchor_file *f = st->anchor_map;
    if (!f) return;
    anchor n = {.magic = ANCHOR_MAGIC, .id = id, .keyed_from = st->audit_keyed_from};
    snprintf(n.head, sizeof n.head, "%s", head);
    anchor_mac(st, id, n.keyed_from, n.head, n.mac);
    if (!anchor_lock(f)) return;
    int have = anchor_state(&f->a);
    int64_t was = f->a.id;
    bool cut = have == 1 && ((was == from - 1 && strcmp(f->a.head, from_prev)) ||
                             (was == id - 1 && strcmp(f->a.head, prev)));
    if (have == 0 || (have == 1 && was < id && !cut)) f->a = n;
    pthread_mutex_unlock(&f->mu);
    if (cut)
        fm_log("error",
               "audit: row %lld does not follow the anchored row %lld: the log was cut"
               " back; `fleetmcp audit verify` reports it",
               (long long)was + 1, (long long)was);
}

static void anchor_advance(fm_store *st, int64_t id, const char *prev, const char *head)
{
    anchor_advance_span(st, id, prev, id, prev, head);
}

/* A robust process-shared mutex at mu: a process killed while holding
 * it hands it on (EOWNERDEAD). */
static int shared_mutex_init(pthread_mutex_t *mu)
{
    pthread_mutexattr_t at;
    pthread_mutexattr_init(&at);
    pthread_mutexattr_setpshared(&at, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&at, PTHREAD_MUTEX_ROBUST);
    int rc = pthread_mutex_init(mu, &at) == 0 ? 0 : -1;
    pthread_mutexattr_destroy(&at);
    return rc;
}

/* Makes a shared file of size bytes at path (the anchor file, or the
 * turn file: both start with an anchor_file) with its mutex, and a
 * second one at offset mu2 (0: none), atomically: built under a private
 * name, then linked into place (EEXIST: another process was first, also
 * fine). */
static int anchor_create(const char *path, size_t size, size_t mu2)
{
    char tmp[640];
    snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, (int)getpid());
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return -1;
    int rc = -1;
    unsigned char *m = MAP_FAILED;
    if (ftruncate(fd, (off_t)size) == 0 &&
        (m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) != MAP_FAILED) {
        rc = shared_mutex_init(&((anchor_file *)m)->mu);
        if (rc == 0 && mu2) rc = shared_mutex_init((pthread_mutex_t *)(m + mu2));
        munmap(m, size);
    }
    close(fd);
    if (rc == 0 && link(tmp, path) && errno != EEXIST) rc = -1;
    unlink(tmp);
    return rc;
}

/* Maps the shared file at path, size bytes; NULL (errno set) if it
 * cannot. */
static void *anchor_map(const char *path, size_t size)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) return NULL;
    struct stat sb;
    void *f = NULL;
    if (fstat(fd, &sb) == 0 && (size_t)sb.st_size >= size) {
        f = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (f == MAP_FAILED) f = NULL;
    } else {
        errno = EINVAL;
    }
    close(fd);
    return f;
}

/* The newest row's id and hash (id 0 and the genesis hash when empty). */
static int chain_head(fm_store *st, long long *id, char hash[65]);

/* Reads the key from fd (closed here), opened from kp; a missing key is
 * refused only when keyed rows exist (the caller knows). */
static int read_key(int fd, const char *kp, unsigned char k[32], fm_err *err)
{
    if (fd < 0)
        return fm_err_set(err, FM_ERR_IO,
                          "audit key %s cannot be read (%s) and the log has rows keyed with"
                          " it: restore the file (a new key would make every keyed row fail"
                          " verification)",
                          kp, strerror(errno));
    char hex[66] = "";
    ssize_t n = read(fd, hex, 65);
    close(fd);
    bool ok = n >= 64;
    for (int i = 0; ok && i < 32; i++) {
        unsigned int b;
        ok = sscanf(hex + 2 * i, "%2x", &b) == 1;
        k[i] = (unsigned char)b;
    }
    if (!ok)
        return fm_err_set(err, FM_ERR_IO, "audit key %s is not 64 hex characters: restore it", kp);
    return 0;
}

/* Loads (or on first use creates) the key and the anchor.  A missing key
 * or anchor while keyed rows exist is refused: making new ones would
 * hide exactly what they are there to show. */
static int open_keys(fm_store *st, fm_err *err)
{
    char buf[32];
    st->audit_keyed_from =
        fm_store_setting_get(st, KEYED_FROM_KEY, buf, sizeof buf) == 0 ? atoll(buf) : 1;
    long long head_id = 0;
    char head[65];
    if (chain_head(st, &head_id, head)) return fm_store_fail(st, err, "audit read");
    bool keyed_rows = head_id >= st->audit_keyed_from;
    if (!strcmp(st->path, ":memory:")) {
        /* Dies with the process, like the database. */
        if (getrandom(st->audit_key, sizeof st->audit_key, 0) != (ssize_t)sizeof st->audit_key)
            return fm_err_set(err, FM_ERR_IO, "audit: no entropy for the chain key");
        st->audit_keyed = true;
        return 0;
    }
    char kp[600], ap[600];
    side_path(st, "audit-key", kp, sizeof kp);
    side_path(st, "audit-anchor", ap, sizeof ap);
    int fd = open(kp, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && !keyed_rows) {
        unsigned char k[32];
        char hex[65];
        if (getrandom(k, sizeof k, 0) != (ssize_t)sizeof k)
            return fm_err_set(err, FM_ERR_IO, "audit: no entropy for the chain key");
        fm_hex(k, sizeof k, hex);
        int w = open(kp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (w >= 0) {
            hex[64] = '\n';
            bool ok = write(w, hex, 65) == 65;
            close(w);
            if (!ok) {
                unlink(kp);
                return fm_err_set(err, FM_ERR_IO, "cannot write the audit key %s", kp);
            }
        } else if (errno != EEXIST) {
            return fm_err_set(err, FM_ERR_IO, "cannot create the audit key %s: %s", kp,
                              strerror(errno));
        }
        fd = open(kp, O_RDONLY | O_CLOEXEC); /* ours, or the one a racing process made */
    }
    if (read_key(fd, kp, st->audit_key, err)) return -1;
    st->audit_keyed = true;
    if (!keyed_rows && access(ap, F_OK) && anchor_create(ap, sizeof(anchor_file), 0))
        fm_log("warning", "audit anchor %s cannot be created: %s", ap, strerror(errno));
    anchor_file *f = anchor_map(ap, sizeof *f);
    if (!f) {
        /* Verify reports it; the server keeps logging. */
        fm_log("warning",
               "audit anchor %s cannot be opened (%s): deleting rows from the end of"
               " the log will not be detected until it is restored",
               ap, strerror(errno));
        return 0;
    }
    st->anchor_map = f;
    st->anchor_len = sizeof *f;
    anchor a;
    if (anchor_get(st, &a) == 0) anchor_advance(st, head_id, "", head);
    return 0;
}

int fm_audit_init(fm_ctx *ctx, fm_err *err)
{
    if (fm_store_migrate(&ctx->store, "audit", 2, audit_ddl, err) ||
        fm_store_migrate(&ctx->store, "audit", 3, audit_v3_ddl, err) ||
        fm_store_migrate(&ctx->store, "audit", 4, audit_v4_ddl, err) ||
        fm_store_migrate(&ctx->store, "audit", 5, audit_v5_ddl, err))
        return -1;
    fm_host_id(ctx->store.host, sizeof ctx->store.host);
    /* check-config reads the key with fm_audit_probe_key instead. */
    return ctx->store.probe ? 0 : open_keys(&ctx->store, err);
}

int fm_audit_probe_key(fm_store *st, fm_err *err)
{
    char buf[32];
    long long keyed_from =
        fm_store_setting_get(st, KEYED_FROM_KEY, buf, sizeof buf) == 0 ? atoll(buf) : 1;
    long long head_id = 0;
    char head[65];
    /* No audit table yet: no rows. */
    if (chain_head(st, &head_id, head)) head_id = 0;
    char kp[600], dir[600];
    side_path(st, "audit-key", kp, sizeof kp);
    int fd = open(kp, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && head_id < keyed_from) {
        /* The first message makes it: its directory must let it. */
        int e = fm_store_creatable(kp, dir, sizeof dir);
        if (e)
            return fm_err_set(err, FM_ERR_IO,
                              "audit key %s cannot be created (%s: %s): make that directory"
                              " writable for the server's user%s",
                              kp, dir, strerror(e),
                              fm_db_is_pg_url(st->path) ? " or set FLEETMCP_AUDIT_DIR" : "");
        return 0;
    }
    unsigned char k[32];
    int rc = read_key(fd, kp, k, err);
    explicit_bzero(k, sizeof k);
    return rc;
}

/* One column of a row as hashed and bound: 'n' null, 'i' integer, 's'
 * text (borrowed bytes). */
typedef struct acol {
    char type;
    const char *s;
    size_t n;
    int64_t i;
} acol;

static acol col_null(void)
{
    return (acol){.type = 'n'};
}

static acol col_i(int64_t v)
{
    return (acol){.type = 'i', .i = v};
}

static acol col_s(const char *s)
{
    return s ? (acol){.type = 's', .s = s, .n = strlen(s)} : col_null();
}

/* Long text is cut on a UTF-8 boundary so the column stays valid text. */
static acol col_clip(const char *s, size_t max)
{
    acol c = col_s(s);
    if (c.type != 's' || c.n <= max) return c;
    while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80)
        max--;
    c.n = max;
    return c;
}

static unsigned char *put_part(unsigned char *w, char type, const char *p, size_t n)
{
    *w++ = (unsigned char)type;
    for (int i = 0; i < 8; i++)
        *w++ = (unsigned char)((uint64_t)n >> (56 - 8 * i));
    if (n) memcpy(w, p, n);
    return w + n;
}

/* The hashed form of a row: each column in AUDIT_COLS order as a type
 * byte ('n' null, 'i' integer as decimal, 's' text), an 8-byte big-endian
 * length and the bytes, then (keyed rows) the row id, then prev_hash.
 * Length-prefixed so no two rows can hash the same; laid out in one
 * buffer so it is one digest call.  Keyed rows (key: the store whose
 * audit_key MACs them) get an
 * HMAC-SHA256, older rows a plain SHA-256.  Returns -1 only when out of
 * memory. */
static int row_hash(const acol *c, int64_t id, fm_store *key, const char *prev, char out[65])
{
    size_t need = 9 + 24 + 9 + strlen(prev);
    for (int k = 0; k < AUDIT_NCOLS; k++)
        need += 9 + (c[k].type == 'i' ? 24 : c[k].n);
    unsigned char local[4096];
    unsigned char *buf = need <= sizeof local ? local : malloc(need);
    if (!buf) return -1;
    unsigned char *w = buf;
    char num[24];
    for (int k = 0; k < AUDIT_NCOLS; k++) {
        if (k >= AUDIT_FIRST_OPTIONAL && c[k].type == 'n') continue;
        if (c[k].type == 'i')
            w = put_part(w, 'i', num, fm_i64_text((long long)c[k].i, num));
        else
            w = put_part(w, c[k].type, c[k].s, c[k].type == 's' ? c[k].n : 0);
    }
    if (key) w = put_part(w, 'i', num, fm_i64_text((long long)id, num));
    w = put_part(w, 's', prev, strlen(prev));
    if (key)
        fm_hmac_sha256_hex_kept(&key->audit_mac, key->audit_key, buf, (size_t)(w - buf), out);
    else
        fm_sha256_hex(buf, (size_t)(w - buf), out);
    if (buf != local) free(buf);
    return 0;
}

static int chain_head(fm_store *st, long long *id, char out[65])
{
    snprintf(out, 65, "%s", GENESIS_HASH);
    *id = 0;
    fm_db_stmt *s = fm_store_stmt(st, last_hash_sql, NULL);
    if (!s) return -1;
    int rc = fm_db_step(s);
    if (rc == FM_DB_ROW) {
        *id = fm_db_column_int64(s, 0);
        const unsigned char *h = fm_db_column_text(s, 1);
        if (h) snprintf(out, 65, "%s", (const char *)h);
    }
    fm_db_reset(s);
    return rc == FM_DB_ROW || rc == FM_DB_DONE ? 0 : -1;
}

/* Bounds on one append's retries when other writers keep winning the
 * next id (PostgreSQL): every lost round means another row went in. */
#define APPEND_ATTEMPTS 1000
#define APPEND_WAIT_MS 10000

/* PostgreSQL: this host's appenders take turns.  Without turns, every
 * writer guesses the head it saw a call earlier, and once several write
 * at once most guesses are stale: with 4 writers on one host about 1.5
 * inserts lost per append, each one more round trip and transaction
 * (the herd: every loser of a row learns the same new head and races
 * for the next one again).  The turn file (made like the anchor file:
 * a robust process-shared mutex, and the newest head a turn left, in
 * the anchor's id and head fields) lets one appender of this host at a
 * time link, from the head the last turn left, which is the head unless
 * another host appended.  While others wait for it, the turn is held
 * for the insert's round trip only (the commit returns early, visible,
 * and its flush is read after the turn is handed on), never across the
 * flush, which the writers still share; an appender alone keeps its one
 * read per append.
 *
 * Turns alone bound the chain to one row per round trip.  So the
 * appenders that find the turn taken put their rows in the turn file's
 * slots and wait on their slot, not on the turn's mutex (turn_call_wait:
 * an appender whose row a holder linked never takes the turn only to
 * hand it on, a handoff that lengthened the turn's cycle by a wakeup
 * each, and a holder that frees the turn calls one queued row's
 * appender to take it): the next holder links every queued row after
 * its own, each insert still checking its predecessor, all in one
 * transaction and one round trip (fm_db_step_commit_rows), and writes
 * back each row's place; a waiter that gets the turn finds its row
 * linked (it passes the turn on) or still queued (it links the queue
 * itself).  A holder whose commit went out visible links the rows
 * queued meanwhile itself, as more transactions on its connection,
 * before one flush for all (link_more).  A failed commit fails every
 * row of it (each waiter gets the error, none is answered as logged),
 * a row the batch did not link goes back to its appender, and a
 * waiter answers only once the holder saw the batch durable.  A row
 * that does not fit a slot, or finds none free, waits for the turn as
 * before.
 *
 * Chain integrity never depends on any of it: the insert still checks
 * its predecessor, so a wrong or torn head only costs a lost insert, and
 * an appender that cannot take the turn in TURN_WAIT_MS (a holder
 * stopped or stuck) takes its row back and appends without it for
 * TURN_SKIP_MS.  A holder killed mid-batch hands on the turn
 * (EOWNERDEAD): the rows it had taken may or may not have committed, so
 * their appenders get an error (not logged as far as they know), and
 * rows still queued are linked by the next holder. */
#define TURN_WAIT_MS 100
#define TURN_SKIP_MS 1000
#define TURN_BUSY_APPENDS 16
#define TURN_SLOTS (FM_DB_COMMIT_ROWS - 1) /* the holder's own row is the first */
#define SLOT_BYTES 16384
/* How often a waiter looks whether the holder of its row still lives. */
#define SLOT_POLL_MS 20
/* How long an appender whose row is queued sleeps before it tries the
 * turn again when nothing called it (a holder killed before it called
 * the queued rows, or a holder that freed the turn without calling:
 * turn_call): what such a holder costs each waiter. */
#define TURN_CALL_MS 5

/* A queued row's life: FREE, QUEUED (its appender; CALLED: queued, and
 * a holder freed the turn since: its appender tries to take it,
 * turn_call), TAKEN (a holder links it), VISIBLE (committed, its flush
 * not yet read), then DONE
 * (durable), FAILED (not logged as far as anyone knows: err says why)
 * or RETRY (not linked: its appender links it itself), and FREE again
 * once its appender read it.  ABANDONED: its appender stopped waiting;
 * the holder frees it.  FREE to QUEUED to TAKEN (and back to FREE
 * unread) under the queue's mutex; the rest by atomic exchange. */
enum {
    SLOT_FREE,
    SLOT_QUEUED,
    SLOT_TAKEN,
    SLOT_VISIBLE,
    SLOT_DONE,
    SLOT_FAILED,
    SLOT_RETRY,
    SLOT_ABANDONED,
    SLOT_CALLED
};

static bool slot_queued(uint32_t s)
{
    return s == SLOT_QUEUED || s == SLOT_CALLED;
}

typedef struct turn_slot {
    uint32_t state;        /* a futex word */
    int32_t owner, holder; /* pids: the row's appender, the holder linking it */
    uint32_t len;
    int64_t id;
    char prev[65], hash[65], err[256];
    unsigned char data[SLOT_BYTES]; /* the row, as row_pack laid it out */
} turn_slot;

typedef struct turn_file {
    anchor_file t;       /* the turn: its mutex and the head the last turn left */
    pthread_mutex_t qmu; /* the queue */
    turn_slot slot[TURN_SLOTS];
} turn_file;

/* One row of a batch: its columns, the setting text its mode was
 * checked against (NULL: none), its slot (NULL: the holder's own), and
 * its place once hashed. */
typedef struct link_row {
    acol cols[AUDIT_NCOLS];
    const char *checked;
    turn_slot *slot;
    int64_t id;
    char prev[65], hash[65];
} link_row;

static uint32_t slot_state(turn_slot *q)
{
    return __atomic_load_n(&q->state, __ATOMIC_ACQUIRE);
}

/* from -> to, when the slot is still in from; false (nothing done) when
 * it is not.  Its appender is woken only for what it acts on (a call,
 * and the row's outcome), not when a holder takes the row or makes it
 * visible: it sleeps on through those (a futex wake reaches every
 * sleeper on the word, whatever state each went to sleep in), one
 * wakeup per queued row instead of three. */
static bool slot_move(turn_slot *q, uint32_t from, uint32_t to)
{
    bool ok = __atomic_compare_exchange_n(&q->state, &from, to, false, __ATOMIC_ACQ_REL,
                                          __ATOMIC_ACQUIRE);
    if (ok && to != SLOT_TAKEN && to != SLOT_VISIBLE)
        syscall(SYS_futex, &q->state, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
    return ok;
}

/* Waits (at most ms) while the slot is in state was. */
static void slot_wait(turn_slot *q, uint32_t was, int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    syscall(SYS_futex, &q->state, FUTEX_WAIT, was, &ts, NULL, 0);
}

static bool pid_alive(int32_t pid)
{
    return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

/* A robust mutex of the turn file taken (rc: the lock call's result):
 * recovered from a killed holder, or, when that fails, released and the
 * turn file left alone from now on (no process may wait on a mutex
 * nobody can make consistent).  0 when held. */
static int turn_locked(fm_store *st, pthread_mutex_t *mu, int rc)
{
    if (rc == EOWNERDEAD) {
        rc = pthread_mutex_consistent(mu);
        if (rc) pthread_mutex_unlock(mu); /* now ENOTRECOVERABLE for everyone */
    }
    if (rc == ENOTRECOVERABLE || rc == EINVAL) st->audit_turn_off = true;
    return rc;
}

/* The row packed for a slot: per column, and then the checked text, a
 * type byte, then for 'i' 8 bytes, for 's' a 4-byte length, the bytes
 * and a NUL.  Its length, or 0 when it does not fit. */
static size_t row_pack(const acol *cols, const char *checked, unsigned char *buf, size_t cap)
{
    unsigned char *w = buf;
    for (int k = 0; k <= AUDIT_NCOLS; k++) {
        const acol c = k < AUDIT_NCOLS ? cols[k] : col_s(checked);
        size_t need = 1 + (c.type == 'i' ? 8 : c.type == 's' ? 5 + c.n : 0);
        if ((size_t)(buf + cap - w) < need || c.n > UINT32_MAX) return 0;
        *w++ = (unsigned char)c.type;
        if (c.type == 'i') {
            memcpy(w, &c.i, 8);
        } else if (c.type == 's') {
            uint32_t n = (uint32_t)c.n;
            memcpy(w, &n, 4);
            memcpy(w + 4, c.s, c.n);
            w[4 + c.n] = 0;
        }
        w += need - 1;
    }
    return (size_t)(w - buf);
}

/* The row of a taken slot into r (its text borrowed from the slot);
 * false when the bytes are not a row (the file was damaged). */
static bool row_unpack(const turn_slot *q, link_row *r)
{
    const unsigned char *p = q->data, *end = q->data + (q->len <= SLOT_BYTES ? q->len : 0);
    for (int k = 0; k <= AUDIT_NCOLS; k++) {
        if (p >= end) return false;
        acol c = {.type = (char)*p++};
        if (c.type == 'i') {
            if (end - p < 8) return false;
            memcpy(&c.i, p, 8);
            p += 8;
        } else if (c.type == 's') {
            uint32_t n;
            if (end - p < 5) return false;
            memcpy(&n, p, 4);
            if ((size_t)(end - p) < 5 + (size_t)n || p[4 + n]) return false;
            c.s = (const char *)p + 4;
            c.n = n;
            p += 5 + n;
        } else if (c.type != 'n') {
            return false;
        }
        if (k < AUDIT_NCOLS)
            r->cols[k] = c;
        else
            r->checked = c.type == 's' ? c.s : NULL;
    }
    r->slot = NULL;
    return true;
}

/* A slot left behind: its appender died (or stopped waiting) and no
 * living holder will touch it again. */
static bool slot_reclaimable(turn_slot *c)
{
    uint32_t s = slot_state(c);
    if (slot_queued(s)) return !pid_alive(c->owner); /* holders take under the same mutex */
    bool holder_gone =
        (s != SLOT_TAKEN && s != SLOT_VISIBLE && s != SLOT_ABANDONED) || !pid_alive(c->holder);
    return holder_gone && (s == SLOT_ABANDONED || !pid_alive(c->owner));
}

/* A slot for the packed row (a free one, else one left behind), QUEUED;
 * NULL when there is none. */
static turn_slot *slot_queue(fm_store *st, turn_file *f, const unsigned char *row, size_t len)
{
    if (turn_locked(st, &f->qmu, pthread_mutex_lock(&f->qmu))) return NULL;
    turn_slot *q = NULL;
    for (int i = 0; i < TURN_SLOTS && !q; i++)
        if (slot_state(&f->slot[i]) == SLOT_FREE) q = &f->slot[i];
    for (int i = 0; i < TURN_SLOTS && !q; i++)
        if (slot_reclaimable(&f->slot[i])) q = &f->slot[i];
    if (q) {
        memcpy(q->data, row, len);
        q->len = (uint32_t)len;
        q->owner = (int32_t)getpid();
        q->holder = 0;
        __atomic_store_n(&q->state, SLOT_QUEUED, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&f->qmu);
    return q;
}

/* The queued rows of f, taken for this holder into rows (at most max);
 * how many.  A row whose appender died is dropped: nobody would read
 * its outcome.  Under the queue's mutex, so a row is taken once. */
static int slots_take(fm_store *st, turn_file *f, link_row *rows, int max)
{
    int n = 0;
    if (turn_locked(st, &f->qmu, pthread_mutex_lock(&f->qmu))) return 0;
    for (int i = 0; i < TURN_SLOTS && n < max; i++) {
        turn_slot *q = &f->slot[i];
        const uint32_t s = slot_state(q);
        if (!slot_queued(s)) continue;
        /* Exchanged, not stored: an appender that stopped waiting for
         * the turn takes its row back by exchange too, without the
         * queue's mutex, and exactly one of the two gets it (a call,
         * turn_call, changes the state too: then it is left for the
         * next holder). */
        if (!pid_alive(q->owner) || !row_unpack(q, &rows[n])) {
            slot_move(q, s, SLOT_FREE);
            continue;
        }
        q->holder = (int32_t)getpid();
        if (slot_move(q, s, SLOT_TAKEN)) rows[n++].slot = q;
    }
    pthread_mutex_unlock(&f->qmu);
    return n;
}

/* Ends what this holder did with a taken row: from -> to, with its place
 * (r) or why it failed (why).  A row whose appender stopped waiting is
 * freed instead. */
static void slot_end(link_row *r, uint32_t from, uint32_t to, const char *why)
{
    turn_slot *q = r->slot;
    if (!q) return;
    if (from == SLOT_TAKEN) {
        q->id = r->id;
        memcpy(q->prev, r->prev, sizeof q->prev);
        memcpy(q->hash, r->hash, sizeof q->hash);
    }
    snprintf(q->err, sizeof q->err, "%s", why ? why : "");
    if (!slot_move(q, from, to)) slot_move(q, SLOT_ABANDONED, SLOT_FREE);
}

/* The rows of a batch but the holder's own, in state from, to state to. */
static void slots_end(link_row *rows, int from_row, int n, uint32_t from, uint32_t to,
                      const char *why)
{
    for (int j = from_row; j < n; j++)
        slot_end(&rows[j], from, to, why);
}

/* What became of a queued row, read once it is out of the holder's hands
 * (waiting while it is TAKEN or VISIBLE, as long as its holder lives, up
 * to APPEND_WAIT_MS); the slot is freed.  1: logged (*res its place), 0:
 * not linked (its appender links it itself), -1: failed (err). */
enum { ROW_FAILED = -1, ROW_RETRY = 0, ROW_LOGGED = 1 };
static int slot_outcome(fm_store *st, turn_slot *q, link_row *res, fm_err *err)
{
    const int64_t give_up = fm_now_ms() + APPEND_WAIT_MS;
    for (;;) {
        uint32_t s = slot_state(q);
        if (s == SLOT_DONE) {
            res->id = q->id;
            memcpy(res->prev, q->prev, sizeof res->prev);
            memcpy(res->hash, q->hash, sizeof res->hash);
        } else if (s == SLOT_FAILED) {
            fm_err_set(err, FM_ERR_IO, "%s", q->err);
        } else if (slot_queued(s) && !slot_move(q, s, SLOT_FREE)) {
            continue; /* taken meanwhile */
        } else if (s == SLOT_TAKEN || s == SLOT_VISIBLE) {
            /* A dead holder touches it no more: free; a slow one frees it. */
            bool dead = !pid_alive(q->holder);
            if ((dead || fm_now_ms() > give_up) &&
                slot_move(q, s, dead ? SLOT_FREE : SLOT_ABANDONED)) {
                st->audit_head_known = false;
                return fm_err_set(err, FM_ERR_IO,
                                  "audit: the appender linking this row %s; the row may or may"
                                  " not be in the log (`fleetmcp audit query` shows it)",
                                  dead ? "died" : "did not finish in time"),
                       ROW_FAILED;
            }
            slot_wait(q, s, SLOT_POLL_MS);
            continue;
        }
        __atomic_store_n(&q->state, SLOT_FREE, __ATOMIC_RELEASE);
        return s == SLOT_DONE ? ROW_LOGGED : s == SLOT_FAILED ? ROW_FAILED : ROW_RETRY;
    }
}

/* Maps this host's turn file (made first when missing); NULL: none. */
static turn_file *turn_file_of(fm_store *st)
{
    if (!st->audit_turn && !st->audit_turn_off) {
        char tp[600];
        side_path(st, "audit-turns", tp, sizeof tp);
        if (access(tp, F_OK)) (void)anchor_create(tp, sizeof(turn_file), offsetof(turn_file, qmu));
        st->audit_turn = anchor_map(tp, sizeof(turn_file));
        st->audit_turn_len = sizeof(turn_file);
        st->audit_turn_off = !st->audit_turn; /* as before turns: no loss of function */
    }
    return st->audit_turn_off ? NULL : st->audit_turn;
}

/* Calls the appender of one row still queued after a turn was freed:
 * its slot's state flips (QUEUED <-> CALLED), which wakes it (or keeps
 * it from sleeping: its futex wait compares the state), and it tries
 * the turn; the holder it becomes takes every queued row, so one call
 * is enough (waking them all made a herd of wakeups per turn).  An
 * appender queues its row before it tries the turn once more, and a
 * holder frees the turn before it calls, so a row queued while a holder
 * linked others is either seen by that holder's call or its appender's
 * try finds the turn free; an appender nobody calls (its caller was
 * killed, or called another that lost the turn to a newcomer) tries
 * again after TURN_CALL_MS. */
static void turn_call(turn_file *f)
{
    for (int i = 0; i < TURN_SLOTS; i++) {
        turn_slot *q = &f->slot[i];
        const uint32_t s = slot_state(q);
        if (slot_queued(s) && slot_move(q, s, s == SLOT_QUEUED ? SLOT_CALLED : SLOT_QUEUED)) return;
    }
}

/* The turn f's robust mutex, unlocked, and a queued row's appender
 * called. */
static void turn_free(turn_file *f)
{
    pthread_mutex_unlock(&f->t.mu);
    turn_call(f);
}

/* An appender whose row is queued (q) waits until a holder takes the
 * row (1) or it gets the turn itself while the row is still queued (0:
 * the row is its own again, the turn held), for TURN_WAIT_MS at most
 * (-1: the row taken back, no turn, and turns skipped for TURN_SKIP_MS
 * when a holder kept it).  It sleeps on its slot, never on the turn's
 * mutex. */
static int turn_call_wait(fm_store *st, turn_file *f, turn_slot *q)
{
    const int64_t until = fm_now_ms() + TURN_WAIT_MS;
    for (;;) {
        const uint32_t s = slot_state(q);
        if (!slot_queued(s)) return 1;
        int rc = turn_locked(st, &f->t.mu, pthread_mutex_trylock(&f->t.mu));
        if (rc == 0) {
            /* Still queued (a call may flip it meanwhile): its own again. */
            for (uint32_t now = s; slot_queued(now); now = slot_state(q))
                if (slot_move(q, now, SLOT_FREE)) return 0;
            turn_free(f); /* a holder took it before this turn */
            return 1;
        }
        if (rc != EBUSY || fm_now_ms() >= until) {
            /* The turn cannot be had: the row back, appended alone. */
            if (!slot_move(q, s, SLOT_FREE)) continue;
            if (rc == EBUSY) st->audit_turn_skip_until = fm_now_ms() + TURN_SKIP_MS;
            return -1;
        }
        slot_wait(q, s, TURN_CALL_MS);
    }
}

/* The turn, for an append of the row cols (checked: as row_pack; queued
 * while another holds the turn when may_queue): TURN_HELD (*got: link, from the turn's head),
 * TURN_ALONE (append without it), or a queued row's outcome, ROW_LOGGED (*res) or ROW_FAILED (err).
 */
enum { TURN_HELD = 2, TURN_ALONE = 3 };
static int turn_take(fm_store *st, const acol *cols, const char *checked, bool may_queue,
                     turn_file **got, link_row *res, fm_err *err)
{
    *got = NULL;
    turn_file *f = fm_now_ms() < st->audit_turn_skip_until ? NULL : turn_file_of(st);
    if (!f) return TURN_ALONE;
    pthread_mutex_t *mu = &f->t.mu;
    int rc = turn_locked(st, mu, pthread_mutex_trylock(mu));
    if (rc != EBUSY) return rc == 0 ? (*got = f, TURN_HELD) : TURN_ALONE;
    /* Another appender holds it: hand it on early for the next appends. */
    st->audit_turn_busy = TURN_BUSY_APPENDS;
    unsigned char row[SLOT_BYTES];
    size_t len = may_queue ? row_pack(cols, checked, row, sizeof row) : 0;
    turn_slot *q = len ? slot_queue(st, f, row, len) : NULL;
    if (q) {
        rc = turn_call_wait(st, f, q);
        if (rc <= 0) return rc == 0 ? (*got = f, TURN_HELD) : TURN_ALONE;
        int out = slot_outcome(st, q, res, err);
        /* Not linked: this appender links it, waiting for the turn. */
        return out == ROW_RETRY ? turn_take(st, cols, checked, false, got, res, err) : out;
    }
    /* No slot for the row: it waits for the turn itself. */
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_nsec += TURN_WAIT_MS * 1000000L;
    dl.tv_sec += dl.tv_nsec / 1000000000L;
    dl.tv_nsec %= 1000000000L;
    rc = turn_locked(st, mu, pthread_mutex_timedlock(mu, &dl));
    if (rc == ETIMEDOUT) st->audit_turn_skip_until = fm_now_ms() + TURN_SKIP_MS;
    return rc == 0 ? (*got = f, TURN_HELD) : TURN_ALONE;
}

/* The head the last turn left, when it is newer than this connection's
 * (or this connection has none yet): 1, taken as the guess. */
static bool turn_head(fm_store *st, const turn_file *tf)
{
    const anchor_file *f = tf ? &tf->t : NULL;
    if (!f || f->a.id <= 0 || (st->audit_head_known && f->a.id <= st->audit_head_id) ||
        strnlen(f->a.head, sizeof f->a.head) != 64)
        return false;
    st->audit_head_id = f->a.id;
    memcpy(st->audit_head, f->a.head, sizeof st->audit_head);
    st->audit_head_known = true;
    return true;
}

/* Ends a turn, leaving the head this append saw for the next: the
 * newest this host knows (it started from the turn's), also when it is
 * older than the turn's (rows deleted or a database restored: the turn's
 * head would make every first guess lose). */
static void turn_give(fm_store *st, turn_file *tf)
{
    if (!tf) return;
    anchor_file *f = &tf->t;
    if (st->audit_head_known) {
        f->a.id = st->audit_head_id;
        memcpy(f->a.head, st->audit_head, sizeof f->a.head);
    }
    turn_free(tf);
}

/* (id, hash) as the newest row this connection saw committed. */
static void head_set(fm_store *st, int64_t id, const char *hash)
{
    st->audit_head_id = id;
    snprintf(st->audit_head, sizeof st->audit_head, "%s", hash);
    st->audit_head_known = true;
}

/* After a PostgreSQL append: what the read that came back with it saw
 * (seen_sql: the row just added or one after it, and the emergency
 * setting), else the row just added, else nothing (the next append reads
 * the head).  1 when the setting is not the text the row was checked
 * against (checked; NULL: none), so the row went in under another mode. */
static int head_seen(fm_store *st, fm_db_stmt *seen, bool added, int64_t id, const char *hash,
                     const char *checked)
{
    int rc = fm_db_step(seen);
    const unsigned char *h = rc == FM_DB_ROW ? fm_db_column_text(seen, 1) : NULL;
    int changed = 0;
    free(st->audit_emergency_seen);
    st->audit_emergency_seen = NULL;
    if (h && strlen((const char *)h) == 64 && (!added || fm_db_column_int64(seen, 0) >= id)) {
        head_set(st, fm_db_column_int64(seen, 0), (const char *)h);
        const unsigned char *e = fm_db_column_text(seen, 2);
        st->audit_emergency_seen = strdup(e ? (const char *)e : "");
        changed = checked && st->audit_emergency_seen && strcmp(checked, st->audit_emergency_seen);
    } else if (added) {
        head_set(st, id, hash);
    } else {
        st->audit_head_known = false;
    }
    fm_db_reset(seen);
    return changed;
}

/* The row's mode: loud in every row while emergency mode lasts (the
 * configured mode, "+emergency" while one is active; emergency: stolen). */
static acol mode_text(const char *name, json_t *emergency, char mode[32])
{
    snprintf(mode, 32, "%s%s", name, emergency ? "+emergency" : "");
    json_decref(emergency);
    return col_s(mode);
}

static acol mode_col(fm_ctx *ctx, char mode[32])
{
    return mode_text(fm_mode_name(ctx->cfg.mode), fm_emergency_active(ctx), mode);
}

/* Text is bound borrowed: every column outlives the insert, and the
 * bindings are cleared right after it. */
static void bind_col(fm_db_stmt *s, int i, const acol *c)
{
    if (c->type == 'i')
        fm_db_bind_int64(s, i, c->i);
    else if (c->type == 's')
        fm_db_bind_text_borrowed(s, i, c->s, (int)c->n);
    else
        fm_db_bind_null(s, i);
}

/* A row's columns and its chain fields, bound to an insert statement. */
static void bind_row(fm_db_stmt *s, const acol *cols, const char *prev, const char *hash,
                     int64_t id)
{
    for (int i = 0; i < AUDIT_NCOLS; i++)
        bind_col(s, i + 1, &cols[i]);
    fm_db_bind_text_borrowed(s, AUDIT_NCOLS + 1, prev, -1);
    fm_db_bind_text_borrowed(s, AUDIT_NCOLS + 2, hash, -1);
    fm_db_bind_int64(s, AUDIT_NCOLS + 3, id);
}

/* Batches (PostgreSQL): each row's insert is a statement of its own, as
 * the statement cache keys by the text's address: copies of insert_sql. */
static char insert_copies[FM_DB_COMMIT_ROWS - 1][sizeof insert_sql];
static pthread_once_t insert_copies_once = PTHREAD_ONCE_INIT;

static void insert_copies_make(void)
{
    for (int i = 0; i < FM_DB_COMMIT_ROWS - 1; i++)
        memcpy(insert_copies[i], insert_sql, sizeof insert_sql);
}

/* The insert of row j of a batch (txn: SQLite's, one row). */
static const char *insert_of(int j, bool txn)
{
    if (txn) return insert_lite_sql;
    if (j == 0) return insert_sql;
    pthread_once(&insert_copies_once, insert_copies_make);
    return insert_copies[j - 1];
}

/* Places the n rows in the chain after row last (hash prev), each
 * linking to the one before, and binds each to its insert (stmts[j]).
 * -1 with err when out of memory or a statement cannot be had. */
static int link_bind(fm_store *st, link_row *rows, int n, int64_t last, const char *prev, bool txn,
                     fm_db_stmt **stmts, fm_err *err)
{
    for (int j = 0; j < n; j++) {
        link_row *w = &rows[j];
        w->id = last + 1 + j;
        snprintf(w->prev, sizeof w->prev, "%s", j ? rows[j - 1].hash : prev);
        if (row_hash(w->cols, w->id, st, w->prev, w->hash))
            return fm_err_set(err, FM_ERR_NOMEM, "audit: out of memory hashing a row"), -1;
        if (!(stmts[j] = fm_store_stmt(st, insert_of(j, txn), err))) return -1;
        bind_row(stmts[j], w->cols, w->prev, w->hash, w->id);
        if (w->checked && !txn)
            fm_db_bind_text(stmts[j], AUDIT_NCOLS + 4, w->checked, -1, FM_DB_STATIC);
    }
    return 0;
}

/* The holder's extra segments (PostgreSQL, the turn held, visible
 * commits whose flush is owed): rows queued while a segment was in
 * flight go in as the next segment at once, on this connection, linked
 * after the head the last one brought back, each insert still checking
 * its predecessor, instead of waiting for a woken appender to take the
 * turn (a wakeup and a process's turnaround per batch); one flush
 * covers them all, and the turn is handed on before it is read.  At
 * most TURN_SEGMENTS segments in all, so the holder's own call and a
 * waiter without a slot wait a bounded time; the last takes the flush
 * along in its pipeline (no message of its own).  Two: with three (4
 * writers, bench/store-stmts.sh) a third segment had rows in about one
 * turn of ten, and a turn that ended after its second sent its flush
 * as a message of its own.
 * rows[1..have) are VISIBLE; the rows of a segment not linked go back
 * to their appenders, a segment that failed fails its rows (and ends
 * the extension).  The rows now VISIBLE. */
#define TURN_SEGMENTS 2
static int link_more(fm_store *st, turn_file *turn, link_row *rows, int have)
{
    for (int seg = 1; seg < TURN_SEGMENTS && st->audit_head_known; seg++) {
        int m = slots_take(st, turn, rows + have, FM_DB_COMMIT_ROWS - have);
        fm_db_stmt *stmts[FM_DB_COMMIT_ROWS];
        fm_db_stmt *seen = m ? fm_store_stmt(st, seen_sql, NULL) : NULL;
        if (!seen ||
            link_bind(st, rows + have, m, st->audit_head_id, st->audit_head, false, stmts, NULL)) {
            slots_end(rows, have, have + m, SLOT_TAKEN, SLOT_RETRY, NULL);
            break;
        }
        int changes[FM_DB_COMMIT_ROWS] = {0}, linked = 0;
        int64_t t0 = fm_mono_us();
        /* The last segment takes the flush along, as one alone does. */
        const int how = seg == TURN_SEGMENTS - 1 ? FM_DB_COMMIT_EARLY : FM_DB_COMMIT_OWED;
        int rc = fm_db_step_commit_rows(stmts, m, seen, how, changes);
        st->audit_commit_us += fm_mono_us() - t0;
        st->audit_commits++;
        for (int j = 0; j < m; j++) {
            fm_db_reset(stmts[j]);
            fm_db_clear_bindings(stmts[j]);
        }
        if (rc != FM_DB_DONE) {
            st->audit_head_known = false;
            slots_end(rows, have, have + m, SLOT_TAKEN, SLOT_FAILED, fm_db_errmsg(st->db));
            break;
        }
        while (linked < m && changes[linked] == 1)
            linked++;
        const link_row *top = &rows[have + (linked ? linked - 1 : 0)];
        (void)head_seen(st, seen, linked > 0, top->id, top->hash, NULL);
        slots_end(rows, have + linked, have + m, SLOT_TAKEN, SLOT_RETRY, NULL);
        slots_end(rows, have, have + linked, SLOT_TAKEN, SLOT_VISIBLE, NULL);
        st->audit_linked_others += linked;
        st->audit_batches += linked > 0;
        have += linked;
        if (linked < m) break; /* another host's row came between */
    }
    return have;
}

/* -1 with err when r->tool used up its hourly allowance by ts. */
static int rate_limited(fm_store *st, const fm_audit_rec *r, int64_t ts, fm_err *err)
{
    int64_t oldest = 0;
    long long used = fm_audit_allowed_since(st, r->tool, ts - 3600000, &oldest);
    if (used < 0) return fm_store_fail(st, err, "audit rate count");
    if (used < r->rate_limit) return 0;
    char next[32];
    fm_iso_time(oldest + 3600000, next);
    return fm_err_set(err, FM_ERR_RATE_LIMITED,
                      "%s refused: %lld of %lld allowed calls in the last hour; the next is"
                      " allowed at %s (raise rate_limits.%s in the config if this is expected)",
                      r->tool, used, r->rate_limit, next, r->tool);
}

/* Group commit (SQLite, fm_store_batch_arm): a row waits in memory, its
 * columns copied, until the batch commits; only then does it get its id,
 * its place in the chain and its hash, inside one short BEGIN IMMEDIATE
 * that reads the head and inserts the batch.  So processes sharing the
 * store hold the write lock for that alone, and the chain cannot fork. */
typedef struct pend_row {
    struct pend_row *next;
    acol cols[AUDIT_NCOLS];
    /* The text columns, each NUL-terminated: an allocation of its own, so
     * neither is over 1 KB for a usual row (glibc consolidates its fast
     * bins before serving a request that large: 1.6 K instructions a
     * call, callgrind). */
    char *data;
} pend_row;

static void pend_row_free(pend_row *p)
{
    if (p) free(p->data);
    free(p);
}

typedef struct {
    /* The configured mode's name; the emergency part is read at the
     * commit, through the connection that commits the batch. */
    const char *mode_name;
    pend_row *head, **tail;
    int64_t first_id, last_id;
    char first_prev[65], last_prev[65], last_hash[65];
} pend_batch;

/* The mode and time columns are the commit's: the mode the rows commit
 * under (as an unbatched append reads it inside its transaction), and
 * times that grow with the ids, as the chain's order is the commit's. */
enum { TS_COL = 0, MODE_COL = 13 };

static int batch_write(fm_store *st, fm_err *err)
{
    pend_batch *b = st->batch.pending;
    long long last = 0;
    char prev[65], hash[65], mode[32];
    if (chain_head(st, &last, prev)) return fm_store_fail(st, err, "audit read");
    fm_db_stmt *s = fm_store_stmt(st, insert_lite_sql, err);
    if (!s) return -1;
    const acol mode_now = mode_text(b->mode_name, fm_emergency_active_in(st), mode),
               ts_now = col_i(fm_now_ms());
    for (pend_row *p = b->head; p; p = p->next) {
        const int64_t id = ++last;
        p->cols[MODE_COL] = mode_now;
        p->cols[TS_COL] = ts_now;
        if (row_hash(p->cols, id, st, prev, hash))
            return fm_err_set(err, FM_ERR_NOMEM, "audit: out of memory hashing a row");
        bind_row(s, p->cols, prev, hash, id);
        int rc = fm_db_step(s);
        fm_db_reset(s);
        fm_db_clear_bindings(s); /* drop the borrowed pointers */
        if (rc != FM_DB_DONE) return fm_store_fail(st, err, "audit insert");
        if (p == b->head) {
            b->first_id = id;
            memcpy(b->first_prev, prev, sizeof prev);
        }
        b->last_id = id;
        memcpy(b->last_prev, prev, sizeof prev);
        memcpy(b->last_hash, hash, sizeof hash);
        memcpy(prev, hash, sizeof hash);
    }
    return 0;
}

/* After the batch's transaction: committed, the anchor advances over its
 * rows to the last (a cut before the first is still caught), and the
 * head and fold fall due as after single appends; either way the rows
 * are dropped. */
static void batch_ended(fm_store *st, bool ok)
{
    pend_batch *b = st->batch.pending;
    st->batch.pending = NULL;
    if (!b) return;
    if (ok && b->head) {
        anchor_advance_span(st, b->first_id, b->first_prev, b->last_id, b->last_prev, b->last_hash);
        int64_t n = b->last_id - b->first_id + 1;
        st->audit_appends += n;
        st->audit_since_head += (int)n;
        if (st->audit_since_head >= HEAD_EVERY) head_put(st, b->last_id, b->last_hash);
        if (b->last_id / FOLD_EVERY != (b->first_id - 1) / FOLD_EVERY) fm_audit_fold(st, NULL);
    }
    for (pend_row *p = b->head, *n; p; p = n) {
        n = p->next;
        pend_row_free(p);
    }
    free(b);
}

/* Queues a copy of the row for the batch's commit; its place in the
 * batch (1, 2, ...; its id comes at the commit), or -1 with err. */
static int64_t batch_defer(fm_ctx *ctx, const acol *cols, fm_err *err)
{
    fm_store *st = &ctx->store;
    size_t n = 0;
    for (int i = 0; i < AUDIT_NCOLS; i++)
        if (cols[i].type == 's') n += cols[i].n + 1;
    pend_batch *b = st->batch.pending;
    if (!b && (b = calloc(1, sizeof *b))) {
        b->mode_name = fm_mode_name(ctx->cfg.mode);
        b->tail = &b->head;
        st->batch.pending = b;
        st->batch.write = batch_write;
        st->batch.ended = batch_ended;
    }
    pend_row *p = b ? malloc(sizeof *p) : NULL;
    if (p && !(p->data = malloc(n ? n : 1))) {
        free(p);
        p = NULL;
    }
    if (!p) return fm_err_set(err, FM_ERR_NOMEM, "audit: out of memory queueing a row"), -1;
    char *w = p->data;
    for (int i = 0; i < AUDIT_NCOLS; i++) {
        p->cols[i] = cols[i];
        if (cols[i].type != 's') continue;
        memcpy(w, cols[i].s, cols[i].n);
        w[cols[i].n] = 0;
        p->cols[i].s = w;
        w += cols[i].n + 1;
    }
    p->next = NULL;
    *b->tail = p;
    b->tail = &p->next;
    if (!st->batch.open) st->batch.opened_us = fm_mono_us();
    st->batch.open = true;
    st->batch.bytes += sizeof *p + n;
    return ++st->batch.rows;
}

int fm_audit_batch_flush(fm_ctx *ctx)
{
    fm_store *st = &ctx->store;
    fm_store_batch_disarm(st);
    fm_err e = {0};
    int rc = fm_store_batch_commit(st, &e);
    if (rc) fm_log("error", "audit: %s", e.text);
    return rc;
}

int64_t fm_audit_append(fm_ctx *ctx, const fm_audit_rec *r, fm_err *err)
{
    fm_store *st = &ctx->store;
    const fm_session *ses = &ctx->session;
    char *args_text = NULL, args_hash[65] = "";
    if (r->args) {
        json_t *red = fm_json_redact(r->args);
        args_text = fm_json_canonical(red);
        json_decref(red);
        if (args_text) fm_sha256_hex(args_text, strlen(args_text), args_hash);
    }
    int64_t id = -1;
    turn_file *turn = NULL;
    char prev[65];
    if (!st->audit_keyed) {
        fm_err_set(err, FM_ERR_IO, "audit: the chain key is not loaded (fm_audit_init)");
        goto out;
    }
    /* SQLite has one writer at a time: BEGIN IMMEDIATE holds the head
     * still from the read to the insert.  PostgreSQL takes no lock: each
     * statement commits on its own, and the id's primary key orders the
     * appenders.  Row N+1 goes in once, for the one appender whose insert
     * found row N with the hash it links to (rows commit in id order, as
     * each finds its predecessor committed); a loser inserts nothing,
     * takes the new head that came back with its insert and tries again.  So the chain cannot fork,
     * and writers on every host overlap everything but the insert itself. */
    const bool txn = st->db->ops != &fm_db_pg_ops;
    /* Group commit: the row waits for the batch's commit (batch_defer),
     * unless its id is wanted now (a shadow row's is quoted to the
     * client) or its rate limit must be counted with the insert. */
    const bool defer = txn && st->batch.armed && !r->rate_limit &&
                       !(r->decision && !strcmp(r->decision, "shadow"));
    if (txn && !defer && fm_store_begin(st, err)) goto out;
    /* The mode.  SQLite: read inside the write transaction, so the mode
     * is the one the row commits under, and the read takes no lock of
     * its own (two fcntl calls a call fewer).  PostgreSQL: the setting as
     * the last append saw it, when the call has not read it yet; the
     * insert checks it is still that, and the same round trip brings it
     * back when it is not (a round trip a call fewer). */
    if (!txn && st->audit_emergency_seen && !ctx->emergency)
        fm_emergency_assume(ctx, st->audit_emergency_seen);
    char mode[32];
    const acol mode0 = defer ? col_null() : mode_col(ctx, mode); /* deferred: the commit's */
    /* Who: a verified principal (HTTP with `auth`) is the token's subject,
     * always an agent: a client naming itself mcp-cli proves nothing, and
     * the os_user column says how it was verified ("static-token:CLIENT",
     * "jwt:CLIENT").  Otherwise the client's self-declared name, with
     * os_user "self-declared:OSUSER". */
    const char *who_kind = fm_session_initiator(ses) == FM_INITIATOR_HUMAN ? "human" : "agent";
    const char *who_name = fm_session_who(ses);
    const char *who_os;
    char os_buf[300];
    if (ses->verified) {
        fm_cat3(os_buf, sizeof os_buf, fm_principal_source_name(ses->principal.source), ":",
                ses->principal.client_id[0] ? ses->principal.client_id : ses->principal.subject);
        who_os = os_buf;
    } else {
        /* stdio (or HTTP without auth): the OS user running the server is
         * all that is known; the kind and name are the client's own claim,
         * and the row says so. */
        fm_cat3(os_buf, sizeof os_buf, FM_SELF_DECLARED, fm_session_os_user(ses), NULL);
        who_os = os_buf;
    }
    const int64_t ts = fm_now_ms();
    /* Every string here outlives the insert: bound without copies. */
    acol cols[AUDIT_NCOLS] = {
        col_i(ts),
        col_s(ses->id),
        col_s(r->phase ? r->phase : "call"),
        r->call_ref ? col_i(r->call_ref) : col_null(),
        col_s(who_kind),
        col_s(who_name),
        col_s(who_os),
        col_s(ses->client_name),
        col_s(ses->client_version),
        col_s(r->tool),
        col_s(args_text),
        args_text ? col_s(args_hash) : col_null(),
        col_s(r->autonomy),
        mode0,
        col_s(r->decision),
        col_clip(r->reason, 1024),
        col_s(r->plan_id),
        col_s(r->approval_id),
        col_s(r->workflow_id),
        col_s(r->node),
        col_clip(r->result, FM_AUDIT_MAX_RESULT),
        col_s(r->error_code),
        col_clip(r->error, 1024),
        col_i(r->duration_us),
        col_s(r->state_before),
        col_s(r->state_after),
        col_s(r->runbook),
        col_s(r->runbook_version),
        col_clip(r->approvers, 512),
    };
    if (defer) {
        id = batch_defer(ctx, cols, err);
        goto out;
    }

    link_row rows[FM_DB_COMMIT_ROWS];
    memcpy(rows[0].cols, cols, sizeof cols);
    rows[0].checked = NULL;
    rows[0].slot = NULL;
    int n = 1, linked = 0; /* rows in the batch; of them linked (a prefix) */
    bool sent = false;     /* a batch went out and failed: its rows failed */
    if (!txn) {
        /* Queued only without a rate limit, counted with its own insert. */
        int64_t t0 = fm_mono_us();
        int t =
            turn_take(st, cols, fm_emergency_checked(ctx), !r->rate_limit, &turn, &rows[0], err);
        st->audit_take_us += fm_mono_us() - t0;
        if (t == ROW_LOGGED) {
            if (!st->audit_head_known || rows[0].id > st->audit_head_id)
                head_set(st, rows[0].id, rows[0].hash);
            goto logged;
        }
        if (t == ROW_FAILED) goto fail;
        (void)turn_head(st, turn);
        /* Inside a caller's transaction the row commits with it: alone. */
        if (turn && fm_db_get_autocommit(st->db))
            n += slots_take(st, turn, rows + 1, FM_DB_COMMIT_ROWS - 1);
    }
    const int64_t give_up = fm_now_ms() + APPEND_WAIT_MS;
    /* Hand the turn on at the commit, before the flush, only while other
     * appenders wait for it: the early return costs a wakeup and a
     * transaction more.  Without the turn (skipped, or none) and after a
     * lost insert (writers race for ids: another host's, or this host's
     * without turns) the row is made visible before its flush too: a
     * synchronous commit would hold its id uncommitted for the flush,
     * and every racer's insert of that id waits for it and then loses. */
    bool early = !turn || st->audit_turn_busy > 0;
    if (turn && early) st->audit_turn_busy--;
    /* With the turn, a visible commit's flush is owed, not sent with it:
     * the rows queued meanwhile may follow on this connection first
     * (link_more), none of them behind a flush. */
    const bool segments = turn && fm_db_get_autocommit(st->db);
    for (int attempt = 0;; attempt++) {
        if (attempt >= APPEND_ATTEMPTS || (attempt > 0 && fm_now_ms() > give_up)) {
            fm_err_set(err, FM_ERR_TIMEOUT,
                       "audit: other writers extended the chain %d times in a row before this"
                       " row could be added; retry the call (the store is overloaded)",
                       attempt);
            goto fail;
        }
        long long last = 0;
        /* The head first: the rate count's snapshot is then at least as
         * new, and an insert that lands proves no row came after it.  On
         * PostgreSQL the head this connection last saw committed (known
         * committed before the count too) saves a round trip: a wrong
         * guess inserts nothing, and the same round trip brings the
         * newest head for the next try. */
        if (!txn && st->audit_head_known) {
            last = st->audit_head_id;
            snprintf(prev, sizeof prev, "%s", st->audit_head);
        } else if (chain_head(st, &last, prev)) {
            fm_store_fail(st, err, "audit read");
            goto fail;
        }
        if (r->rate_limit > 0 && r->tool && rate_limited(st, r, ts, err)) goto fail;
        rows[0].checked = txn ? NULL : fm_emergency_checked(ctx);
        fm_db_stmt *stmts[FM_DB_COMMIT_ROWS];
        fm_db_stmt *seen = txn ? NULL : fm_store_stmt(st, seen_sql, err);
        if ((!txn && !seen) || link_bind(st, rows, n, last, prev, txn, stmts, err)) goto fail;
        /* Alone, the insert is flushed after a commit that others see at
         * once: the next appender waits for this commit, not its disk.
         * The read after it rides in the same round trip. */
        int changes[FM_DB_COMMIT_ROWS] = {0};
        int64_t t0 = fm_mono_us();
        const int how = !early     ? FM_DB_COMMIT_SYNC
                        : segments ? FM_DB_COMMIT_OWED
                                   : FM_DB_COMMIT_EARLY;
        int rc = txn ? fm_db_step(stmts[0]) : fm_db_step_commit_rows(stmts, n, seen, how, changes);
        st->audit_commit_us += fm_mono_us() - t0;
        st->audit_commits++;
        if (txn) changes[0] = fm_db_changes(st->db);
        for (int j = 0; j < n; j++) {
            fm_db_reset(stmts[j]);
            fm_db_clear_bindings(stmts[j]); /* drop the borrowed pointers */
        }
        if (rc != FM_DB_DONE) {
            st->audit_head_known = false;
            fm_store_fail(st, err, "audit insert");
            sent = true;
            goto fail;
        }
        /* Each insert checks the row before it: those in are a prefix. */
        while (linked < n && changes[linked] == 1)
            linked++;
        const link_row *top = &rows[linked ? linked - 1 : 0];
        if (!txn && head_seen(st, seen, linked > 0, top->id, top->hash, rows[0].checked) &&
            !linked) {
            /* The guess was wrong: the setting as it is now. */
            fm_emergency_assume(ctx, st->audit_emergency_seen);
            rows[0].cols[MODE_COL] = mode_col(ctx, mode);
        }
        if (linked) break;
        st->audit_lost++;
        st->audit_first_lost += attempt == 0;
        early = true;
        st->audit_turn_busy = TURN_BUSY_APPENDS;
    }
    /* Queued rows after the first one not linked go back to their
     * appenders; those linked are theirs once durable. */
    st->audit_linked_others += linked - 1;
    st->audit_batches += linked > 1;
    slots_end(rows, linked, n, SLOT_TAKEN, SLOT_RETRY, NULL);
    slots_end(rows, 1, linked, SLOT_TAKEN, early ? SLOT_VISIBLE : SLOT_DONE, NULL);
    n = 1; /* no row taken is left to end on failure */
    if (early && segments) {
        linked = link_more(st, turn, rows, linked);
        (void)fm_db_flush_start(st->db); /* a failure to send it: fm_db_durable's */
    }
    turn_give(st, turn);
    turn = NULL;
    if (txn && fm_store_commit(st, err)) {
        id = -1;
        goto out;
    }
    /* The rows are in and visible; the calls act on them only once they
     * are durable (fm_db_durable: the flush that came with them, when
     * the commit returned early). */
    int64_t t0 = fm_mono_us();
    int durable = txn ? FM_DB_OK : fm_db_durable(st->db);
    if (!txn && early) {
        st->audit_flush_us += fm_mono_us() - t0;
        st->audit_flushes++;
    }
    if (durable != FM_DB_OK) {
        fm_store_fail(st, err, "audit flush");
        if (early) slots_end(rows, 1, linked, SLOT_VISIBLE, SLOT_FAILED, fm_db_errmsg(st->db));
        goto fail;
    }
    if (early) slots_end(rows, 1, linked, SLOT_VISIBLE, SLOT_DONE, NULL);
logged:
    id = rows[0].id;
    st->audit_appends++;
    anchor_advance(st, id, rows[0].prev, rows[0].hash);
    if (++st->audit_since_head >= HEAD_EVERY) head_put(st, id, rows[0].hash);
    /* Whoever appends every FOLD_EVERY-th row folds, in its own
     * transaction: the row is already safe if this fails. */
    if (id > 0 && id % FOLD_EVERY == 0) fm_audit_fold(st, NULL);
    goto out;
fail:
    id = -1;
    slots_end(rows, 1, n, SLOT_TAKEN, sent ? SLOT_FAILED : SLOT_RETRY, fm_db_errmsg(st->db));
    turn_give(st, turn);
    fm_store_rollback(st);
out:
    free(args_text);
    return id;
}

/* Folds serialise on their own lock row (PostgreSQL; SQLite: the one
 * writer): the watermark is read after it, so each fold starts where the
 * one before it ended and no row is counted twice. */
int fm_audit_fold(fm_store *st, fm_err *err)
{
    if (fm_store_begin_rows(st, err)) return -1;
    if (fm_store_lock_row(st, FOLDED_KEY, err)) goto fail;
    char buf[32];
    long long from = fm_store_setting_get(st, FOLDED_KEY, buf, sizeof buf) ? 0 : atoll(buf);
    int64_t to = 0;
    int rc = fm_db_run(st->db, max_id_sql, fm_db_row_int64, &to, NULL);
    if (rc != FM_DB_ROW && rc != FM_DB_DONE) {
        fm_store_fail(st, err, "audit counters");
        goto fail;
    }
    if (to > from) {
        if (fm_db_run(st->db, fold_sql, NULL, NULL, "ii", (int64_t)from, to) != FM_DB_DONE) {
            fm_store_fail(st, err, "audit counters");
            goto fail;
        }
        snprintf(buf, sizeof buf, "%lld", (long long)to);
        if (fm_store_setting_set(st, FOLDED_KEY, buf, err)) goto fail;
    }
    return fm_store_commit(st, err);
fail:
    fm_store_rollback(st);
    return -1;
}

/* A stored column as hashed: text by its bytes, so the check sees what
 * the append hashed.  The pointer lives until the next step. */
static acol stored_col(fm_db_stmt *s, int i)
{
    switch (fm_db_column_type(s, i)) {
    case FM_DB_INTEGER:
        return col_i(fm_db_column_int64(s, i));
    case FM_DB_NULL:
        return col_null();
    default: {
        const char *t = (const char *)fm_db_column_text(s, i);
        return (acol){.type = 's', .s = t ? t : "", .n = (size_t)fm_db_column_bytes(s, i)};
    }
    }
}

static json_t *column_json(fm_db_stmt *s, int i)
{
    switch (fm_db_column_type(s, i)) {
    case FM_DB_INTEGER:
        return json_integer(fm_db_column_int64(s, i));
    case FM_DB_NULL:
        return json_null();
    default:
        return json_string((const char *)fm_db_column_text(s, i));
    }
}

/* A head row as verify holds it. */
typedef struct head_row {
    char host[64];
    int64_t id;
    char hash[65];
} head_row;

typedef struct {
    fm_store *st;
    head_row *h;
    int n;
    bool bad;
    fm_err *err;
} heads_acc;

/* One head row into a->h[a->n], its MAC checked; stops at a forged one
 * and when MAX_HEADS are in. */
static int head_row_in(fm_db_stmt *s, void *arg)
{
    heads_acc *a = arg;
    fm_store *st = a->st;
    fm_err *err = a->err;
    const char *host = (const char *)fm_db_column_text(s, 0);
    const char *hash = (const char *)fm_db_column_text(s, 2);
    const char *mac = (const char *)fm_db_column_text(s, 4);
    int64_t keyed_from = fm_db_column_int64(s, 3);
    head_row *r = &a->h[a->n];
    snprintf(r->host, sizeof r->host, "%s", host ? host : "");
    snprintf(r->hash, sizeof r->hash, "%s", hash ? hash : "");
    r->id = fm_db_column_int64(s, 1);
    if (!st->audit_keyed) {
        a->bad = true;
        fm_err_set(err, FM_ERR_IO,
                   "audit heads cannot be checked: the audit key is"
                   " not loaded");
        return 1;
    }
    char calc[65];
    head_mac(st, r->host, r->id, keyed_from, r->hash, calc);
    /* Whole values only: a host name or hash cut to fit would pass as
     * another. */
    if (!host || strlen(host) >= sizeof r->host || !hash || strlen(hash) != 64 || !mac ||
        strcmp(mac, calc)) {
        a->bad = true;
        fm_err_set(err, FM_ERR_CONFLICT,
                   "the audit head of host '%s' (row %lld) does not match its MAC:"
                   " a head was forged or edited in audit_heads by someone without"
                   " the audit key; find who can write the database, then delete"
                   " that row",
                   r->host, (long long)r->id);
        return 1;
    }
    if (keyed_from != st->audit_keyed_from) {
        a->bad = true;
        fm_err_set(err, FM_ERR_CONFLICT,
                   "the audit head of host '%s' says keyed rows start at %lld, the"
                   " store says %lld: the setting %s was edited",
                   r->host, (long long)keyed_from, (long long)st->audit_keyed_from, KEYED_FROM_KEY);
        return 1;
    }
    return ++a->n >= MAX_HEADS;
}

/* Reads the newest MAX_HEADS heads into h (newest first) and checks
 * each one's MAC: the count, or -1 with err at the first forged one. */
static int heads_read(fm_store *st, head_row *h, fm_err *err)
{
    heads_acc a = {st, h, 0, false, err};
    int rc = fm_db_run(st->db, heads_sql, head_row_in, &a, NULL);
    if (!a.bad && a.n < MAX_HEADS && rc != FM_DB_DONE) {
        a.bad = true;
        fm_store_fail(st, err, "audit heads");
    }
    return a.bad ? -1 : a.n;
}

/* A host joining a PostgreSQL store (its first verify: no anchor file,
 * no head row of its own) starts its anchor from what every other host
 * vouched for: the chain, just checked to reach the newest MAC-checked
 * head with its hash, from there on.  A host that has a head row had an
 * anchor: a missing one stays an error, as on SQLite (one host, no one
 * else's word to start from). */
static bool joining(fm_store *st, const head_row *heads, int nheads)
{
    if (st->db->ops != &fm_db_pg_ops || st->anchor_map || nheads <= 0) return false;
    for (int i = 0; i < nheads; i++)
        if (!strcmp(heads[i].host, st->host)) return false;
    char ap[600];
    side_path(st, "audit-anchor", ap, sizeof ap);
    if (!access(ap, F_OK) || anchor_create(ap, sizeof(anchor_file), 0) ||
        !(st->anchor_map = anchor_map(ap, sizeof(anchor_file)))) {
        fm_log("warning", "audit anchor %s cannot be created: %s", ap, strerror(errno));
        return false;
    }
    st->anchor_len = sizeof(anchor_file);
    fm_log("info",
           "audit: this host's anchor %s starts at the chain's end, which reaches host"
           " '%s''s head (row %lld)",
           ap, heads[0].host, (long long)heads[0].id);
    return true;
}

static const char verify_sql[] = "SELECT " AUDIT_COLS ",prev_hash,hash,id FROM audit ORDER BY id";

/* Verify's walk, one row at a time (verify_row). */
typedef struct {
    fm_store *st;
    int64_t *rows, *bad_id;
    fm_err *err;
    int have; /* the anchor: 1 when it names a row */
    const anchor *a;
    const head_row *heads;
    int next_head; /* heads are newest first: the oldest is next */
    int rc;
    int64_t last;
    char expect_prev[65], last_prev[65];
} verify_acc;

/* Checks one row's link, hash, and the anchor's and heads' word on it;
 * stops (rc -1, err) at the first that fails. */
static int verify_row(fm_db_stmt *s, void *arg)
{
    verify_acc *v = arg;
    fm_store *st = v->st;
    fm_err *err = v->err;
    acol cols[AUDIT_NCOLS];
    for (int i = 0; i < AUDIT_NCOLS; i++)
        cols[i] = stored_col(s, i);
    const char *prev = (const char *)fm_db_column_text(s, AUDIT_NCOLS);
    const char *hash = (const char *)fm_db_column_text(s, AUDIT_NCOLS + 1);
    int64_t id = fm_db_column_int64(s, AUDIT_NCOLS + 2);
    char calc[65];
    (*v->rows)++;
    v->rc = -1;
    if (!prev || strcmp(prev, v->expect_prev)) {
        *v->bad_id = id;
        fm_err_set(err, FM_ERR_CONFLICT,
                   "audit row %lld: previous-hash link broken (a row before it was deleted,"
                   " inserted or edited)",
                   (long long)id);
        return 1;
    }
    bool keyed = id >= st->audit_keyed_from;
    if (keyed && !st->audit_keyed) {
        *v->bad_id = id;
        fm_err_set(err, FM_ERR_IO, "audit row %lld is keyed and the audit key is not loaded",
                   (long long)id);
        return 1;
    }
    if (row_hash(cols, id, keyed ? st : NULL, prev, calc)) {
        fm_err_set(err, FM_ERR_NOMEM, "audit verify: out of memory at row %lld", (long long)id);
        return 1;
    }
    if (!hash || strcmp(hash, calc)) {
        *v->bad_id = id;
        fm_err_set(err, FM_ERR_CONFLICT,
                   "audit row %lld: content does not match its hash"
                   " (the row was edited%s)",
                   (long long)id, keyed ? ", renumbered, or rehashed without the key" : "");
        return 1;
    }
    if (v->have == 1 && id == v->a->id && strcmp(hash, v->a->head)) {
        *v->bad_id = id;
        fm_err_set(err, FM_ERR_CONFLICT,
                   "audit row %lld is not the row the anchor recorded (the log was cut"
                   " back and written again)",
                   (long long)id);
        return 1;
    }
    while (v->next_head >= 0 && v->heads[v->next_head].id < id)
        v->next_head--;
    for (int k = v->next_head; k >= 0 && v->heads[k].id == id; k--) {
        if (strcmp(hash, v->heads[k].hash)) {
            *v->bad_id = id;
            fm_err_set(err, FM_ERR_CONFLICT,
                       "audit row %lld is not the row host '%s' recorded in audit_heads"
                       " (the log was cut back and written again)",
                       (long long)id, v->heads[k].host);
            return 1;
        }
    }
    v->rc = 0;
    snprintf(v->last_prev, sizeof v->last_prev, "%s", v->expect_prev);
    snprintf(v->expect_prev, sizeof v->expect_prev, "%s", hash);
    v->last = id;
    return 0;
}

int fm_audit_verify(fm_store *st, int64_t *rows, int64_t *bad_id, fm_err *err)
{
    *rows = 0;
    *bad_id = 0;
    /* The anchor and the heads are read before the rows: both only ever
     * name committed rows, so the snapshot read next holds at least as
     * many. */
    anchor a = {0};
    int have = anchor_get(st, &a);
    if (have == -2) have = 0;
    bool memory = !strcmp(st->path, ":memory:");
    if (have < 0)
        return fm_err_set(err, FM_ERR_CONFLICT,
                          "the audit anchor %s.audit-anchor is not an"
                          " anchor (overwritten?)",
                          st->path),
               -1;
    if (have == 1) {
        char mac[65];
        anchor_mac(st, a.id, a.keyed_from, a.head, mac);
        if (strcmp(mac, a.mac))
            return fm_err_set(err, FM_ERR_CONFLICT,
                              "the audit anchor's MAC does not match:"
                              " it was edited, or the audit key was replaced"),
                   -1;
        if (a.keyed_from != st->audit_keyed_from)
            return fm_err_set(err, FM_ERR_CONFLICT,
                              "the store says keyed rows start at %lld, the anchor says %lld: the"
                              " setting %s was edited",
                              (long long)st->audit_keyed_from, (long long)a.keyed_from,
                              KEYED_FROM_KEY),
                   -1;
    }
    head_row *heads = malloc(MAX_HEADS * sizeof *heads);
    if (!heads) return fm_err_set(err, FM_ERR_NOMEM, "audit verify: out of memory"), -1;
    int nheads = heads_read(st, heads, err);
    if (nheads < 0) {
        free(heads);
        return -1;
    }
    verify_acc v = {st,    rows,       bad_id, err, have,         &a,
                    heads, nheads - 1, 0,      0,   GENESIS_HASH, GENESIS_HASH};
    int step = fm_db_run(st->db, verify_sql, verify_row, &v, NULL);
    int rc = v.rc;
    if (rc == 0 && step != FM_DB_DONE) {
        fm_store_fail(st, err, "audit verify");
        rc = -1;
    }
    int64_t last = v.last;
    char *expect_prev = v.expect_prev, *last_prev = v.last_prev;
    if (rc == 0 && have == 1 && last < a.id) {
        *bad_id = last + 1;
        fm_err_set(err, FM_ERR_CONFLICT,
                   "the log ends at row %lld but the anchor recorded row %lld: %lld"
                   " row(s) missing from the end (deleted)",
                   (long long)last, (long long)a.id, (long long)(a.id - last));
        rc = -1;
    }
    /* heads[0] is the newest any host recorded. */
    if (rc == 0 && nheads > 0 && last < heads[0].id) {
        *bad_id = last + 1;
        fm_err_set(err, FM_ERR_CONFLICT,
                   "the log ends at row %lld but host '%s' recorded row %lld in"
                   " audit_heads: %lld row(s) missing from the end (deleted)",
                   (long long)last, heads[0].host, (long long)heads[0].id,
                   (long long)(heads[0].id - last));
        rc = -1;
    }
    bool joined = rc == 0 && have == 0 && joining(st, heads, nheads);
    free(heads);
    if (rc) return rc;
    if (have == 0 && !memory && last >= st->audit_keyed_from && !joined) {
        *bad_id = last;
        return fm_err_set(err, FM_ERR_CONFLICT,
                          "the audit anchor %s.audit-anchor is missing or empty: rows deleted"
                          " from the end of the log cannot be ruled out",
                          st->side),
               -1;
    }
    /* The whole chain checked out under the key: this host's anchor and
     * head move forward to its end (never back), so a later cut below
     * it shows here even if every head row is deleted. */
    if (last > 0 && st->audit_keyed) {
        anchor_advance(st, last, last_prev, expect_prev);
        head_put(st, last, expect_prev);
    }
    return 0;
}

int64_t fm_audit_anchored(fm_store *st)
{
    anchor a;
    return anchor_get(st, &a) == 1 ? a.id : -1;
}

json_t *fm_audit_query(fm_store *st, const json_t *f, fm_err *err)
{
    char sql[1024] = "SELECT id," AUDIT_COLS " FROM audit WHERE 1=1";
    const char *node = fm_json_str(f, "node", NULL), *tool = fm_json_str(f, "tool", NULL),
               *ini = fm_json_str(f, "initiator", NULL), *ses = fm_json_str(f, "session", NULL),
               *dec = fm_json_str(f, "decision", NULL);
    json_int_t since = json_integer_value(json_object_get(f, "since_ms"));
    json_int_t until = json_integer_value(json_object_get(f, "until_ms"));
    json_int_t before = json_integer_value(json_object_get(f, "before_id"));
    json_int_t limit = json_integer_value(json_object_get(f, "limit"));
    if (limit <= 0 || limit > 1000) limit = limit <= 0 ? 50 : 1000;
    if (node) strcat(sql, " AND node=:node");
    if (tool) strcat(sql, " AND tool=:tool");
    if (ini) strcat(sql, " AND (initiator_kind=:ini OR initiator_name=:ini)");
    if (ses) strcat(sql, " AND session=:ses");
    if (dec) strcat(sql, " AND decision=:dec");
    if (since) strcat(sql, " AND ts_ms>=:since");
    if (until) strcat(sql, " AND ts_ms<=:until");
    if (before) strcat(sql, " AND id<:before");
    strcat(sql, " ORDER BY id DESC LIMIT :limit");
    fm_db_stmt *s = NULL;
    if (fm_db_prepare_v2(st->db, sql, -1, &s, NULL) != FM_DB_OK) {
        fm_store_fail(st, err, "audit query");
        return NULL;
    }
#define BIND_T(name, v)                                                                            \
    if (v) fm_db_bind_text(s, fm_db_bind_parameter_index(s, name), v, -1, FM_DB_STATIC)
#define BIND_I(name, v)                                                                            \
    if (v) fm_db_bind_int64(s, fm_db_bind_parameter_index(s, name), v)
    BIND_T(":node", node);
    BIND_T(":tool", tool);
    BIND_T(":ini", ini);
    BIND_T(":ses", ses);
    BIND_T(":dec", dec);
    BIND_I(":since", since);
    BIND_I(":until", until);
    BIND_I(":before", before);
    BIND_I(":limit", limit);
#undef BIND_T
#undef BIND_I
    json_t *rows = json_array();
    int n = fm_db_column_count(s);
    int rc;
    while ((rc = fm_db_step(s)) == FM_DB_ROW) {
        json_t *row = json_object();
        for (int i = 0; i < n; i++) {
            if (fm_db_column_type(s, i) == FM_DB_NULL) continue;
            json_object_set_new(row, fm_db_column_name(s, i), column_json(s, i));
        }
        json_array_append_new(rows, row);
    }
    if (rc != FM_DB_DONE) {
        fm_store_fail(st, err, "audit query");
        json_decref(rows);
        rows = NULL;
    }
    fm_db_finalize(s);
    return rows;
}

/* ---- reports over the trail ----------------------------------------------
 * The reads other subsystems make of audit and audit_hourly (fleet metrics,
 * fleet_status, resource listing and completion, pool plans), here beside
 * the table so that changing it touches this file only.  Read only. */

typedef struct {
    void (*fn)(const char *node, int64_t n, void *arg);
    void *arg;
} node_count_acc;

static int node_count_row(fm_db_stmt *row, void *arg)
{
    node_count_acc *a = arg;
    a->fn((const char *)fm_db_column_text(row, 0), fm_db_column_int64(row, 1), a->arg);
    return 0;
}

int fm_audit_human_actions_by_node(fm_store *st, const char *tool, int64_t since_ms,
                                   void (*fn)(const char *node, int64_t n, void *arg), void *arg)
{
    node_count_acc a = {fn, arg};
    int rc = fm_db_run(st->db,
                       "SELECT node, count(*) FROM audit WHERE tool=?1 AND ts_ms>=?2 AND"
                       " initiator_kind='human' AND decision='allow' AND phase IN"
                       " ('call','intent') AND node IS NOT NULL GROUP BY node",
                       node_count_row, &a, "ti", tool, since_ms);
    return rc == FM_DB_DONE ? 0 : -1;
}

/* A recommendation is a shadow-mode node action that would run or would
 * wait for an approval; one a guardrail would refuse is not one. */
int fm_audit_shadow_agreement(fm_store *st, int64_t since_ms, int64_t match_ms, int64_t *recs,
                              int64_t *agreed)
{
    *recs = *agreed = 0;
    int rc = fm_db_run(st->db,
                       "SELECT count(*) FROM audit WHERE decision='shadow' AND error_code IN"
                       " ('DENIED','APPROVAL') AND node IS NOT NULL AND ts_ms>=?1",
                       fm_db_row_int64, recs, "i", since_ms);
    int rc2 =
        fm_db_run(st->db,
                  "SELECT count(*) FROM audit r WHERE r.decision='shadow' AND r.error_code IN"
                  " ('DENIED','APPROVAL')"
                  " AND r.node IS NOT NULL AND r.ts_ms>=?1 AND EXISTS (SELECT 1 FROM audit h WHERE"
                  " h.tool=r.tool AND h.node=r.node AND h.initiator_kind='human' AND"
                  " h.decision='allow' AND h.phase IN ('call','intent') AND h.ts_ms>r.ts_ms AND"
                  " h.ts_ms<=r.ts_ms+?2)",
                  fm_db_row_int64, agreed, "ii", since_ms, match_ms);
    return (rc == FM_DB_ROW || rc == FM_DB_DONE) && (rc2 == FM_DB_ROW || rc2 == FM_DB_DONE) ? 0
                                                                                            : -1;
}

typedef struct {
    void (*fn)(const char *tool, const char *decision, int64_t n, void *arg);
    void *arg;
} hourly_acc;

static int hourly_row(fm_db_stmt *row, void *arg)
{
    hourly_acc *a = arg;
    a->fn((const char *)fm_db_column_text(row, 0), (const char *)fm_db_column_text(row, 1),
          fm_db_column_int64(row, 2), a->arg);
    return 0;
}

int fm_audit_hourly_each(fm_store *st, int64_t from_hour,
                         void (*fn)(const char *tool, const char *decision, int64_t n, void *arg),
                         void *arg)
{
    fm_audit_fold(st, NULL);
    hourly_acc a = {fn, arg};
    int rc = fm_db_run(st->db,
                       "SELECT tool, decision, sum(n) FROM audit_hourly WHERE hour>=? GROUP"
                       " BY tool, decision ORDER BY tool, decision",
                       hourly_row, &a, "i", from_hour);
    return rc == FM_DB_DONE ? 0 : -1;
}

static int decision_row(fm_db_stmt *row, void *arg)
{
    const char *d = (const char *)fm_db_column_text(row, 0);
    json_object_set_new(arg, d ? d : "none", json_integer(fm_db_column_int64(row, 1)));
    return 0;
}

json_t *fm_audit_decisions_since(fm_store *st, int64_t from_hour)
{
    json_t *out = json_object();
    fm_audit_fold(st, NULL);
    fm_db_run(st->db, "SELECT decision, sum(n) FROM audit_hourly WHERE hour>=? GROUP BY decision",
              decision_row, out, "i", from_hour);
    return out;
}

int64_t fm_audit_rows(fm_store *st)
{
    int64_t n = 0;
    fm_db_run(st->db, max_id_sql, fm_db_row_int64, &n, NULL);
    return n;
}

typedef struct {
    fm_audit_session_fn fn;
    void *arg;
} session_acc;

static int session_row(fm_db_stmt *row, void *arg)
{
    session_acc *a = arg;
    a->fn((const char *)fm_db_column_text(row, 0), fm_db_column_int64(row, 1),
          fm_db_column_int64(row, 2), fm_db_column_int64(row, 3),
          (const char *)fm_db_column_text(row, 5), a->arg);
    return 0;
}

/* The most recent sessions only, found among the newest rows: the audit
 * can be large and listing must stay cheap. */
int fm_audit_recent_sessions(fm_store *st, fm_audit_session_fn fn, void *arg, fm_err *err)
{
    session_acc a = {fn, arg};
    int rc = fm_db_run(
        st->db,
        "SELECT session, COUNT(*), MIN(ts_ms), MAX(ts_ms), MAX(id) m, MAX(client_name) FROM"
        " (SELECT session, ts_ms, id, client_name FROM audit ORDER BY id DESC LIMIT 5000) AS recent"
        " GROUP BY session ORDER BY m DESC LIMIT 20",
        session_row, &a, NULL);
    return rc == FM_DB_DONE ? 0 : fm_store_fail(st, err, "audit sessions");
}

typedef struct {
    void (*fn)(const char *node, void *arg);
    void *arg;
} node_acc;

static int node_row(fm_db_stmt *row, void *arg)
{
    node_acc *a = arg;
    a->fn((const char *)fm_db_column_text(row, 0), a->arg);
    return 0;
}

/* The partial node index makes the range scan cheap.  The range's end
 * (prefix, then U+10FFFF) is bound, not written as prefix || x'F48FBFBF':
 * PostgreSQL reads that literal as a bit string and refuses the
 * statement, so completion found no audit names there. */
void fm_audit_nodes_prefixed(fm_store *st, const char *prefix,
                             void (*fn)(const char *node, void *arg), void *arg)
{
    if (!prefix) return;
    char end[300];
    int n = snprintf(end, sizeof end, "%s\xF4\x8F\xBF\xBF", prefix);
    if (n < 0 || (size_t)n >= sizeof end) return; /* no node name is that long */
    node_acc a = {fn, arg};
    fm_db_run(st->db,
              "SELECT DISTINCT node FROM audit WHERE node IS NOT NULL AND node >= ?1 AND"
              " node < ?2 ORDER BY node LIMIT 100",
              node_row, &a, "tt", prefix, end);
}

typedef struct {
    void (*fn)(const char *node, const char *result, void *arg);
    void *arg;
} diag_acc;

static int diag_row(fm_db_stmt *row, void *arg)
{
    diag_acc *a = arg;
    a->fn((const char *)fm_db_column_text(row, 0), (const char *)fm_db_column_text(row, 1), a->arg);
    return 0;
}

int fm_audit_latest_diagnoses(fm_store *st,
                              void (*fn)(const char *node, const char *result, void *arg),
                              void *arg, fm_err *err)
{
    diag_acc a = {fn, arg};
    int rc = fm_db_run(st->db,
                       "SELECT a.node, a.result FROM audit a WHERE a.id IN (SELECT max(b.id)"
                       " FROM audit b WHERE b.tool='diagnose' AND b.node IS NOT NULL AND"
                       " b.result IS NOT NULL GROUP BY b.node)",
                       diag_row, &a, NULL);
    return rc == FM_DB_DONE ? 0 : fm_store_fail(st, err, "diagnosis records");
}
