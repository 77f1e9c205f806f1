/* The one database: audit, settings, plans, approvals, workflows, node
 * states, local tickets.  A SQLite file (WAL) by default, or PostgreSQL
 * (a postgresql:// URL) for processes on several hosts; see fm_db.h.
 * Several server processes may share it: every write runs in BEGIN
 * IMMEDIATE (a busy timeout, or PostgreSQL's write lock), so writers queue
 * instead of failing, except the paths that rest on row locks and
 * constraints instead (fm_store_begin_rows).
 *
 * Each subsystem owns its tables and declares them with fm_store_migrate()
 * at open time (idempotent, versioned per subsystem). */
#ifndef FM_STORE_H
#define FM_STORE_H

#include "fleetmcp/fm_db.h"
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "fleetmcp/fm_error.h"

typedef struct fm_store {
    fm_db *db;
    char path[512]; /* file path, or the URL with its password redacted */
    /* Files kept beside the store (audit key, anchor): "<side>.audit-key".
     * The database path for SQLite; for PostgreSQL a local directory
     * ($FLEETMCP_AUDIT_DIR, default the XDG state dir) that every host
     * must hold the same audit-key in. */
    char side[512];
    /* The audit chain's key and anchor (src/audit/audit.c): held in files
     * beside the database, never in it.  keyed_from: first row hashed
     * with the key (rows before it are from older builds). */
    unsigned char audit_key[32];
    struct fm_hmac_key *audit_mac; /* audit_key kept ready (fm_hmac_sha256_hex_kept) */
    bool audit_keyed;
    void *anchor_map; /* the anchor file, mapped shared (NULL: none) */
    size_t anchor_len;
    int64_t audit_keyed_from;
    /* This host in audit_heads (fm_host_id at open) and this store's
     * appends since it last recorded its head there. */
    char host[64];
    int audit_since_head;
    /* PostgreSQL: the newest chain row this connection has seen
     * committed (its own append, or the read that came back with it), the
     * guess the next append links to; the insert checks it (audit.c). */
    bool audit_head_known;
    int64_t audit_head_id;
    char audit_head[65];
    /* PostgreSQL: the turn file (audit.c, turn_take), mapped shared by
     * this host's appenders; NULL: none (yet), off: not tried again. */
    void *audit_turn;
    size_t audit_turn_len;
    bool audit_turn_off;
    int64_t audit_turn_skip_until; /* ms: a turn timed out, appends go without */
    int audit_turn_busy;           /* appends left that hand the turn on early */
    /* fm_store_now_ms: the database server's clock minus this host's, and
     * when (fm_mono_us) it was last read; 0: not read yet. */
    int64_t clock_offset_ms, clock_read_us;
    /* The emergency setting as that read saw it ("" for none), the guess
     * for the next call (fm_emergency_assume); NULL: unknown. */
    char *audit_emergency_seen;
    /* The emergency setting's text as last parsed, and its until_ms
     * (emergency.c): the same text again past its deadline is no
     * emergency, without a parse. */
    char *emergency_seen_text;
    int64_t emergency_seen_until;
    /* Appends made, inserts that lost their id to another writer
     * (PostgreSQL: each loss is one more round trip) and the appends
     * whose first guess lost (the rest are retries that lost again);
     * logged at close when FLEETMCP_AUDIT_STATS is set (bench/store.sh). */
    long long audit_appends, audit_lost, audit_first_lost;
    /* PostgreSQL: rows this process linked for other appenders of its
     * host (queued in the turn file), and in how many batches. */
    long long audit_linked_others, audit_batches;
    /* PostgreSQL, us in all (logged with the counts above): waiting for
     * the turn or a queued row's outcome, the batches' commit round trips,
     * and their flushes read after the turn was handed on. */
    long long audit_take_us, audit_commit_us, audit_flush_us, audit_commits, audit_flushes;
    /* schema_migrations as read once, at the first fm_store_migrate. */
    struct {
        char subsystem[32];
        int version;
    } migrated[32];
    int n_migrated; /* -1: not read yet */
    /* check-config (fm_store_open_probe): the store is open read-only, and
     * fm_store_migrate notes each subsystem's version here instead of
     * migrating (want: the newest this build knows; have: the store's). */
    bool probe;
    struct {
        char subsystem[32];
        int have, want;
    } wanted[32];
    int n_wanted;
    /* Group commit (fm_store_batch_*): while armed, the audit keeps each
     * row in memory (batch.pending, audit.c's) and takes no lock; at
     * fm_store_batch_commit they are inserted and committed in one short
     * BEGIN IMMEDIATE transaction, so processes sharing the store
     * serialise only on that, not on the calls.  SQLite only.  open: rows
     * are waiting. */
    struct {
        bool armed, open;
        int rows;          /* audit rows waiting in the batch */
        size_t bytes;      /* the memory they hold (the transport bounds it) */
        int64_t opened_us; /* fm_mono_us() at the batch's first row */
        /* Called after the batch ends (ok: committed). */
        void (*done)(void *cls, struct fm_store *st, bool ok);
        void *done_cls;
        /* The audit's side (audit.c): write inserts the waiting rows in
         * the commit's transaction; ended runs after it, committed or
         * not, and drops them. */
        void *pending;
        int (*write)(struct fm_store *st, fm_err *err);
        void (*ended)(struct fm_store *st, bool ok);
        /* Settings read while armed, outside a transaction, until a
         * batch commits after another connection wrote or this process
         * writes (store.c); data_version: the connection's PRAGMA
         * data_version at the last batch's begin. */
        struct fm_setting_memo *memo;
        int64_t data_version;
        unsigned long long commits, batched_rows; /* totals, for tests and logs */
    } batch;
} fm_store;

int fm_store_open(fm_store *st, const char *path, fm_err *err);
/* 1 if path is a SQLite file whose opening may wait (fm_store_check
 * passed: the file and its directory are there and writable), 0 if it
 * must open now (:memory:, a PostgreSQL URL), -1 with err if it cannot
 * be used.  No SQLite: a start that answers initialize runs none. */
int fm_store_check(const char *path, fm_err *err);
void fm_store_close(fm_store *st);

/* For check-config: opens the configured store as the first message
 * would, without changing it (no file, table or row is created; SQLite
 * read-only, PostgreSQL a read-only session), and puts st in probe mode
 * (see fm_store_migrate).  Each thing that would make the open fail is a
 * string appended to problems (borrowed), saying what to do; what the
 * first message will do (create the file, migrate) goes to notes.  0:
 * open in probe mode; 1: nothing to open (the file does not exist yet,
 * :memory:); -1: it cannot be opened (a problem says why). */
int fm_store_open_probe(fm_store *st, const char *path, json_t *problems, json_t *notes);
/* After the subsystems' fm_store_migrate calls in probe mode: a store a
 * newer fleetmcp migrated is a problem, migrations still to run a note
 * (and on PostgreSQL a problem when the role may not create tables). */
void fm_store_probe_versions(fm_store *st, json_t *problems, json_t *notes);
/* 0 when a file may be created at path: its nearest existing directory
 * is writable (mkdir -p works from there); else an errno, with that
 * directory in dir. */
int fm_store_creatable(const char *path, char *dir, size_t len);

/* Runs ddl once per (subsystem, version); safe under concurrent opens.
 * In probe mode it runs nothing: it notes the version wanted. */
int fm_store_migrate(fm_store *st, const char *subsystem, int version, const char *ddl,
                     fm_err *err);

/* BEGIN IMMEDIATE (waits for other writers up to the busy timeout). */
int fm_store_begin(fm_store *st, fm_err *err);
/* A write transaction whose correctness rests on row locks and
 * constraints, not on excluding every other writer: on SQLite the same
 * BEGIN IMMEDIATE (one writer per file, unchanged), on PostgreSQL a plain
 * BEGIN (read committed) without the store-wide advisory lock.  Use it
 * only where every read that a write depends on is covered by a
 * conditional UPDATE (WHERE state=...; check fm_db_changes), a unique
 * constraint, or fm_store_lock_row taken before the read. */
int fm_store_begin_rows(fm_store *st, fm_err *err);
/* Inside fm_store_begin_rows: holds the lock named name until the
 * transaction ends, so transactions taking the same name run one after
 * another and each one's reads (made after this) see the previous one's
 * commit.  PostgreSQL: a row of store_locks (core v3), locked by an
 * upsert, waited for up to lock_timeout; SQLite: nothing to do. */
int fm_store_lock_row(fm_store *st, const char *name, fm_err *err);
int fm_store_commit(fm_store *st, fm_err *err);
void fm_store_rollback(fm_store *st);

/* Group commit, for a transport that holds each answer until its rows
 * are durable (src/transport/http.c).  arm: from now on audit appends
 * wait in memory for the batch's commit (other writes still run in
 * transactions of their own); 0 when armed, -1 when this store cannot
 * batch (PostgreSQL: each append commits on its own).  disarm: later
 * appends are written at once again; waiting rows stay until
 * fm_store_batch_commit, and a begin while rows wait and the batch is
 * disarmed commits them first (a writer outside the batch comes after
 * it).  commit: inserts and commits the waiting rows, if any, in one
 * transaction; 0 committed (or nothing waited), -1 with err when it
 * failed (nothing of it is in the store).  Either way batch.done hears of
 * it. */
int fm_store_batch_arm(fm_store *st);
void fm_store_batch_disarm(fm_store *st);
/* How long the open batch has been open (0: none), in microseconds. */
int64_t fm_store_batch_age_us(const fm_store *st);
int fm_store_batch_commit(fm_store *st, fm_err *err);

/* WAL checkpoints are idle work: the commit that crosses SQLite's
 * threshold would otherwise pay for one (an fdatasync).  The server asks
 * whether one is due and runs it when no message is waiting; a WAL that
 * grows far past it anyway (a client that never pauses) is checkpointed
 * at commit time, as SQLite would. */
bool fm_store_checkpoint_due(const fm_store *st);
void fm_store_checkpoint(fm_store *st);

/* Settings: small key/value pairs (kill switch, counters).  get: 0 when
 * found, -1 when not set, -2 when the store could not be read (busy,
 * locked, broken): a safety check must not read -2 as "not set". */
int fm_store_setting_get(fm_store *st, const char *key, char *buf, size_t len);
int fm_store_setting_set(fm_store *st, const char *key, const char *value, fm_err *err);
/* Removes the settings whose key starts with prefix (LIKE: '_' in it
 * matches any character) last written before before_ms; best effort. */
void fm_store_setting_prune(fm_store *st, const char *prefix, int64_t before_ms);
/* Sets key to value unless it is set: 1 set now, 0 it already was (the
 * primary key decides, so of two writers at once exactly one gets 1), -1
 * with err. */
int fm_store_setting_add(fm_store *st, const char *key, const char *value, fm_err *err);

/* A cached, reset, unbound statement for a literal SQL string (borrowed:
 * do not finalize).  NULL with err on failure.  The same cache as
 * fm_db_run's (fm_db_kept): one statement cache per connection.  New
 * code calls fm_db_run; this stays for callers that step a statement
 * themselves -- the audit append (src/audit/audit.c, whose PostgreSQL
 * path pairs an insert with a read in one round trip) and modules not
 * converted yet -- and can go when they have moved. */
fm_db_stmt *fm_store_stmt(fm_store *st, const char *sql, fm_err *err);

/* Wraps a failed sqlite call into err with the database's message. */
int fm_store_fail(fm_store *st, fm_err *err, const char *what);

/* An fm_db_run row callback for "SELECT key, count(*) ... GROUP BY key":
 * sets arg (a json_t object) key -> count. */
int fm_store_row_count_by(fm_db_stmt *row, void *arg);

int64_t fm_now_ms(void);
/* The store's clock in ms since the epoch, for what processes on several
 * hosts compare (workflow leases and due times, the emergency deadline):
 * on PostgreSQL the server's clock, read as an offset from this host's
 * and read again after a minute (a host whose clock runs ahead must not
 * take over a live workflow); on SQLite, one host's, fm_now_ms. If the
 * server cannot be read, the last offset stays (0 at first). */
int64_t fm_store_now_ms(fm_store *st);
/* CLOCK_MONOTONIC in microseconds: durations (a call's, a batch's age). */
int64_t fm_mono_us(void);

/* This host's name where hosts sharing a store must be told apart
 * (workflow owners, audit heads): FLEETMCP_HOST_ID, else the hostname. */
void fm_host_id(char *out, size_t len);

#endif
