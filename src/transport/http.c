/* Streamable HTTP at /mcp on libmicrohttpd.
 *
 * libmicrohttpd is dlopen'ed when --http is used, not linked: it pulls in
 * GnuTLS and friends, whose constructors would otherwise run at every
 * stdio start (see src/util/curl_lazy.c for the same trade).
 *
 * One thread runs the daemon (external polling, serve_turn) and the
 * protocol core, so the core keeps its single-threaded fm_ctx; concurrency
 * comes from worker processes (http_workers.c) accepting on one socket.  Hardening
 * lives here: Host and Origin allow-lists (DNS rebinding), loopback-only
 * binds unless the config has an `auth` section (then every /mcp request
 * carries a verified credential), a body cap, header and body
 * deadlines enforced by a sweep that shuts slow sockets (an idle timeout
 * alone lets a client trickle one byte at a time), a connection cap, and
 * a graceful stop that lets responses in flight finish. */
#include "fleetmcp/fm_httpd.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "fleetmcp/fm_alert.h"
#include "fleetmcp/fm_auth.h"
#include "fleetmcp/fm_config.h"
#include "fleetmcp/fm_db.h"
#include "fleetmcp/fm_httpd_workers.h"
#include "fleetmcp/fm_mcp.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_util.h"

#define FM_MHD_SONAME "libmicrohttpd.so.12"
#define ENDPOINT "/mcp"
#define ALERTS "/alerts" /* Alertmanager webhook receiver (fm_alert.h) */

/* The libmicrohttpd entry points used, resolved once. */
typedef struct {
    struct MHD_Daemon *(*start_daemon)(unsigned int, uint16_t, MHD_AcceptPolicyCallback, void *,
                                       MHD_AccessHandlerCallback, void *, ...);
    void (*stop_daemon)(struct MHD_Daemon *);
    MHD_socket (*quiesce_daemon)(struct MHD_Daemon *);
    enum MHD_Result (*run_wait)(struct MHD_Daemon *, int32_t);
    enum MHD_Result (*get_fdset2)(struct MHD_Daemon *, fd_set *, fd_set *, fd_set *, MHD_socket *,
                                  unsigned int);
    enum MHD_Result (*get_timeout)(struct MHD_Daemon *, MHD_UNSIGNED_LONG_LONG *);
    enum MHD_Result (*run_from_select)(struct MHD_Daemon *, const fd_set *, const fd_set *,
                                       const fd_set *);
    const union MHD_DaemonInfo *(*get_daemon_info)(struct MHD_Daemon *, enum MHD_DaemonInfoType,
                                                   ...);
    int (*get_connection_values)(struct MHD_Connection *, enum MHD_ValueKind, MHD_KeyValueIterator,
                                 void *);
    const union MHD_ConnectionInfo *(*get_connection_info)(struct MHD_Connection *,
                                                           enum MHD_ConnectionInfoType, ...);
    struct MHD_Response *(*create_response_from_buffer)(size_t, void *,
                                                        enum MHD_ResponseMemoryMode);
    enum MHD_Result (*add_response_header)(struct MHD_Response *, const char *, const char *);
    enum MHD_Result (*queue_response)(struct MHD_Connection *, unsigned int, struct MHD_Response *);
    void (*destroy_response)(struct MHD_Response *);
    void (*suspend_connection)(struct MHD_Connection *);
    void (*resume_connection)(struct MHD_Connection *);
    enum MHD_Result (*add_connection)(struct MHD_Daemon *, MHD_socket, const struct sockaddr *,
                                      socklen_t);
} mhd_api;

static int mhd_load(mhd_api *api, fm_err *err)
{
    void *h = dlopen(FM_MHD_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return fm_err_set(err, FM_ERR_UNAVAILABLE,
                          "cannot load %s (%s); install libmicrohttpd12 to serve HTTP",
                          FM_MHD_SONAME, dlerror()),
               -1;
        /* POSIX dlsym returns void *; a union converts it without the cast
         * ISO C forbids. */
#define SYM(field, name)                                                                           \
    do {                                                                                           \
        union {                                                                                    \
            void *p;                                                                               \
            __typeof__(api->field) f;                                                              \
        } u = {dlsym(h, name)};                                                                    \
        if (!u.p)                                                                                  \
            return fm_err_set(err, FM_ERR_UNAVAILABLE, "%s lacks %s; libmicrohttpd is too old",    \
                              FM_MHD_SONAME, name),                                                \
                   -1;                                                                             \
        api->field = u.f;                                                                          \
    } while (0)
    SYM(start_daemon, "MHD_start_daemon");
    SYM(stop_daemon, "MHD_stop_daemon");
    SYM(quiesce_daemon, "MHD_quiesce_daemon");
    SYM(run_wait, "MHD_run_wait");
    SYM(get_fdset2, "MHD_get_fdset2");
    SYM(get_timeout, "MHD_get_timeout");
    SYM(run_from_select, "MHD_run_from_select");
    SYM(get_daemon_info, "MHD_get_daemon_info");
    SYM(get_connection_values, "MHD_get_connection_values");
    SYM(get_connection_info, "MHD_get_connection_info");
    SYM(create_response_from_buffer, "MHD_create_response_from_buffer");
    SYM(add_response_header, "MHD_add_response_header");
    SYM(queue_response, "MHD_queue_response");
    SYM(destroy_response, "MHD_destroy_response");
    SYM(suspend_connection, "MHD_suspend_connection");
    SYM(resume_connection, "MHD_resume_connection");
    SYM(add_connection, "MHD_add_connection");
#undef SYM
    return 0;
}

/* A connection, for the deadline sweep.  Phase HEAD covers both a request
 * whose headers are still arriving and an idle keep-alive connection: the
 * two look the same from outside and get the same deadline. */
typedef enum { PH_HEAD = 0, PH_BODY = 1, PH_REPLY = 2 } conn_phase;

typedef struct conn {
    int fd;
    conn_phase phase;
    int64_t since_ms;
    bool shut;
    struct conn *prev, *next;
} conn;

/* One request's upload, and its answer while the answer is held. */
/* The request headers the server reads, found in one pass over the
 * request's headers (header_seen), where a lookup for each walked them
 * eleven times a request. */
enum {
    H_HOST,
    H_ORIGIN,
    H_AUTHORIZATION,
    H_CONTENT_TYPE,
    H_ACCEPT,
    H_CONTENT_LENGTH,
    H_VERSION,
    H_SESSION,
    H_METHOD,
    H_NAME,
    H_COUNT
};
#define HDR(s)                                                                                     \
    {                                                                                              \
        s, sizeof s - 1                                                                            \
    }
static const struct {
    const char *name;
    size_t len;
} header_names[H_COUNT] = {
    HDR("Host"),       HDR("Origin"),         HDR("Authorization"),        HDR("Content-Type"),
    HDR("Accept"),     HDR("Content-Length"), HDR("MCP-Protocol-Version"), HDR("Mcp-Session-Id"),
    HDR("Mcp-Method"), HDR("Mcp-Name")};
#undef HDR

typedef struct {
    const char *v[H_COUNT]; /* NULL: absent; the first of a repeated one */
} req_headers;

typedef struct req {
    req_headers h; /* in the connection's pool, valid for the request */
    char *body;
    size_t len, cap;
    bool too_large;
    fm_principal principal; /* verified from the headers (with `auth`) */
    bool verified;
    bool alerts;  /* POST /alerts: the body is an Alertmanager payload */
    size_t limit; /* the body bound of this request */
    size_t first; /* the body buffer's first size: Content-Length + 1, or a guess */
    /* Group commit: the answer waits, its connection suspended, until
     * the batch holding its audit rows ends (batch_ok: committed). */
    bool held, batch_ok;
    fm_mcp_http x;
    struct MHD_Connection *c;
    struct req *next_held;
} req;

/* Workers share the accepting (serve_turn): each publishes its open
 * connections, and whether it is in the middle of a turn (since when), in
 * a page mapped shared before the fork. */
typedef struct {
    atomic_int pid;       /* 0: free */
    atomic_uint conns;    /* connections open */
    atomic_llong busy_ms; /* when its turn began; 0: waiting in select */
    atomic_bool asking;   /* a call of its waits for its client's answer */
} worker_slot;

typedef struct server {
    fm_ctx *ctx;
    fm_auth *auth; /* NULL without an `auth` section: loopback only */
    mhd_api api;
    struct MHD_Daemon *d;
    char host[64]; /* as bound, for the Host allow-list */
    int port;
    bool ipv6;
    size_t max_body;
    int header_ms, body_ms, grace_ms;
    bool draining;
    int workers;               /* workers serving this socket (1: this one alone) */
    bool threaded;             /* they are threads of this process, not processes */
    bool spread;               /* http.spread: connections spread evenly (may_accept) */
    bool took_over;            /* the request in flight ended on a stream we wrote ourselves */
    unsigned long long served; /* requests handled, for idle detection */
    unsigned long long opened; /* connections taken (logged at the stop) */
    conn *conns;
    /* Group commit (SQLite store): the read calls of a turn of the loop
     * append into one transaction; their answers wait in `held`. */
    bool batching;
    req *held;
    /* The loop (serve_turn): select, or libmicrohttpd's epoll when the
     * connection cap is too large for an fd_set. */
    bool use_select;
    bool resumed;              /* answers were resumed: the next turn must not wait */
    worker_slot *slots, *slot; /* with workers: all of them, and this one's */
    unsigned max_conn;         /* this worker's connection cap */
    int listen_fd;             /* libmicrohttpd's listening socket (-1: none) */
    /* Workers in the epoll loop accept on the shared socket themselves
     * (epoll_turn), so they can leave it alone as select's workers do;
     * -1: libmicrohttpd accepts.  epoll_fd: libmicrohttpd's epoll set. */
    int accept_fd, epoll_fd;
    /* Serving threads: held except while the loop waits (the fork guard,
     * http_workers.c: another thread's fork closes this thread's store
     * connection in its child only then). */
    pthread_mutex_t turn;
    bool guarded;
} server;

/* The loop's wait begins: the slot says so (may_accept), and the turn
 * lock is let go. */
static void wait_begins(server *sv)
{
    if (sv->slot) atomic_store(&sv->slot->busy_ms, 0);
    if (sv->guarded) pthread_mutex_unlock(&sv->turn);
}

static void wait_ends(server *sv)
{
    if (sv->guarded) pthread_mutex_lock(&sv->turn);
    if (sv->slot) atomic_store(&sv->slot->busy_ms, fm_now_ms());
}

/* A batch commits when it holds this many audit rows, this much memory
 * (results are kept up to 64 KB a row) or is this old, whichever comes
 * first, and at the end of every turn of the loop: the wait it adds to an
 * answer and the memory it holds stay bounded. */
#define BATCH_MAX_ROWS 64
#define BATCH_MAX_BYTES (1u << 20)
#define BATCH_MAX_US 1000

/* ---- address and allow-lists -------------------------------------------- */

static bool is_loopback_name(const char *h, size_t n)
{
    return (n == 9 && !strncasecmp(h, "localhost", 9)) || (n == 9 && !strncmp(h, "127.0.0.1", 9)) ||
           (n == 5 && !strncmp(h, "[::1]", 5));
}

/* Splits "name[:port]" (name may be "[v6]"); returns the name's length and
 * the port (-1 when absent, -2 when malformed). */
static size_t split_hostport(const char *s, int *port)
{
    size_t n = strlen(s);
    const char *colon =
        s[0] == '[' ? (strchr(s, ']') ? strchr(strchr(s, ']'), ':') : NULL) : strrchr(s, ':');
    *port = -1;
    if (!colon) return n;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    *port = *end || p < 0 || p > 65535 || end == colon + 1 ? -2 : (int)p;
    return (size_t)(colon - s);
}

static bool in_config_list(const server *sv, const char *key, const char *v)
{
    const json_t *list = json_object_get(fm_config_section(&sv->ctx->cfg, "http"), key);
    size_t i;
    const json_t *e;
    json_array_foreach(list, i, e) if (!strcasecmp(json_string_value(e), v)) return true;
    return false;
}

/* Host must name this service: a loopback name or the bound address, on
 * our port (or without one), or be listed in http.allowed_hosts.  A DNS
 * rebinding page arrives with its own name here. */
static bool host_ok(const server *sv, const char *host)
{
    if (!host || !*host) return false;
    if (in_config_list(sv, "allowed_hosts", host)) return true;
    int port;
    size_t n = split_hostport(host, &port);
    if (port == -2 || (port >= 0 && port != sv->port)) return false;
    return is_loopback_name(host, n) || (n == strlen(sv->host) && !strncmp(host, sv->host, n));
}

/* A browser names the page's origin; only our own (loopback, our port)
 * or a listed one may drive the service.  No Origin: not a browser. */
static bool origin_ok(const server *sv, const char *origin)
{
    if (!origin) return true;
    if (in_config_list(sv, "allowed_origins", origin)) return true;
    const char *h = !strncmp(origin, "http://", 7) ? origin + 7 : NULL;
    if (!h || strchr(h, '/')) return false;
    /* An origin without a port is port 80: another server's page. */
    int port;
    size_t n = split_hostport(h, &port);
    if ((port < 0 ? 80 : port) != sv->port) return false;
    return is_loopback_name(h, n) || (n == strlen(sv->host) && !strncmp(h, sv->host, n));
}

/* Parses HOST:PORT into a socket address.  Without an `auth` section a
 * non-loopback bind is refused: anyone who can reach the port would act
 * with the server's SSH key and Slurm token. */
static int parse_listen(server *sv, const char *spec, struct sockaddr_storage *ss, fm_err *err)
{
    char host[64];
    int port;
    size_t n = strlen(spec) < sizeof host ? split_hostport(spec, &port) : 0;
    if (!n || port < 0 || n >= sizeof host)
        return fm_err_set(err, FM_ERR_INVALID,
                          "--http wants HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080 (port 0"
                          " picks a free one)"),
               -1;
    memcpy(host, spec, n);
    host[n] = '\0';
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (!strcasecmp(host, "localhost")) snprintf(host, sizeof host, "127.0.0.1");
    if (host[0] == '[' && host[n - 1] == ']') {
        char v6[64];
        snprintf(v6, sizeof v6, "%.*s", (int)(n - 2), host + 1);
        if (inet_pton(AF_INET6, v6, &a6->sin6_addr) != 1)
            return fm_err_set(err, FM_ERR_INVALID, "--http: %s is not an IPv6 address", v6), -1;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        sv->ipv6 = true;
        if (!IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr)) goto not_loopback;
    } else {
        if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
            return fm_err_set(err, FM_ERR_INVALID,
                              "--http: %s is not an IPv4 address (or localhost, or [v6])", host),
                   -1;
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        if ((ntohl(a4->sin_addr.s_addr) >> 24) != 127) goto not_loopback;
    }
    goto ok;
not_loopback:
    if (!sv->auth)
        return fm_err_set(err, FM_ERR_DENIED,
                          "--http %s is not a loopback address; without an `auth` section"
                          " (tokens) fleetmcp serves HTTP on 127.0.0.1 or [::1] only",
                          host),
               -1;
ok:
    snprintf(sv->host, sizeof sv->host, "%s", host);
    sv->port = port;
    return 0;
}

/* ---- connections and deadlines ------------------------------------------ */

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    server *sv = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        conn *k = calloc(1, sizeof *k);
        if (!k) return;
        const union MHD_ConnectionInfo *ci =
            sv->api.get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        k->fd = ci ? ci->connect_fd : -1;
        k->since_ms = fm_now_ms();
        k->next = sv->conns;
        if (sv->conns) sv->conns->prev = k;
        sv->conns = k;
        *socket_context = k;
        sv->opened++;
        if (sv->slot) atomic_fetch_add(&sv->slot->conns, 1);
        fm_http_stats_event('O', fm_http_stats_now(), k->fd, 0);
    } else if (*socket_context) {
        conn *k = *socket_context;
        fm_http_stats_event('X', fm_http_stats_now(), k->fd, 0);
        if (sv->slot) atomic_fetch_sub(&sv->slot->conns, 1);
        if (k->prev)
            k->prev->next = k->next;
        else
            sv->conns = k->next;
        if (k->next) k->next->prev = k->prev;
        free(k);
        *socket_context = NULL;
    }
}

static conn *conn_of(server *sv, struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        sv->api.get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* Shuts sockets past their phase's deadline (and, when draining, idle
 * ones); libmicrohttpd then sees the error and closes them. */
static void sweep(server *sv)
{
    int64_t now = fm_now_ms();
    for (conn *k = sv->conns; k; k = k->next) {
        if (k->shut || k->fd < 0 || k->phase == PH_REPLY) continue;
        int limit = k->phase == PH_HEAD ? sv->header_ms : sv->body_ms;
        if (now - k->since_ms > limit || (sv->draining && k->phase == PH_HEAD)) {
            shutdown(k->fd, SHUT_RDWR);
            k->shut = true;
        }
    }
}

/* The result text the reply was to splice in, dropped. */
static void splice_drop(fm_mcp_http *x)
{
    free(x->splice_raw);
    x->splice_raw = NULL;
    x->splice_msg = NULL;
}

/* What an exchange left to send, freed. */
static void exchange_free(fm_mcp_http *x)
{
    json_decref(x->out);
    x->out = NULL;
    free(x->session_id);
    x->session_id = NULL;
    splice_drop(x);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    server *sv = cls;
    req *r = *req_cls;
    if (r) {
        free(r->body);
        exchange_free(&r->x);
        free(r);
        *req_cls = NULL;
    }
    sv->took_over = false;
    conn *k = conn_of(sv, c);
    if (k) {
        k->phase = PH_HEAD;
        k->since_ms = fm_now_ms();
    }
}

/* libmicrohttpd's messages, through our log.  Closing a connection whose
 * response stream we wrote ourselves (below) is what we asked for, not an
 * error worth a line. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    const server *sv = cls;
    char msg[300];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n')
        msg[--n] = '\0';
    if (sv->took_over && strstr(msg, "Application reported internal error")) return;
    fm_log("warning", "libmicrohttpd: %s", msg);
}

/* ---- responses ------------------------------------------------------------ */

static enum MHD_Result respond(server *sv, struct MHD_Connection *c, unsigned status,
                               const char *type, char *body, size_t len, const char *session)
{
    struct MHD_Response *rs = sv->api.create_response_from_buffer(
        len, body, body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!rs) {
        free(body);
        return MHD_NO;
    }
    if (type) sv->api.add_response_header(rs, "Content-Type", type);
    if (session) sv->api.add_response_header(rs, "Mcp-Session-Id", session);
    if (status == 405) sv->api.add_response_header(rs, "Allow", "POST, DELETE");
    if (sv->draining) sv->api.add_response_header(rs, "Connection", "close");
    enum MHD_Result ok = sv->api.queue_response(c, status, rs);
    sv->api.destroy_response(rs);
    return ok;
}

/* A refusal before any JSON-RPC exists: a JSON-RPC error with id null. */
static enum MHD_Result refuse(server *sv, struct MHD_Connection *c, unsigned status,
                              const char *msg)
{
    json_t *e = json_pack("{s:s, s:n, s:{s:i, s:s}}", "jsonrpc", "2.0", "id", "error", "code",
                          -32600, "message", msg);
    char *text = json_dumps(e, JSON_COMPACT);
    json_decref(e);
    return respond(sv, c, status, "application/json", text, text ? strlen(text) : 0, NULL);
}

/* An authentication failure, as fm_auth_http_answer says: the status,
 * WWW-Authenticate (RFC 6750 / RFC 9728) and an OAuth error body. */
static enum MHD_Result refuse_auth(server *sv, struct MHD_Connection *c, const fm_auth_fail *f)
{
    fm_auth_http h;
    memset(&h, 0, sizeof h);
    fm_auth_http_answer(sv->auth, f, &h);
    char *text = h.body ? json_dumps(h.body, JSON_COMPACT) : NULL;
    json_decref(h.body);
    struct MHD_Response *rs = sv->api.create_response_from_buffer(
        text ? strlen(text) : 0, text, text ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!rs) {
        free(text);
        return MHD_NO;
    }
    sv->api.add_response_header(rs, "Content-Type", "application/json");
    if (h.www_authenticate[0])
        sv->api.add_response_header(rs, "WWW-Authenticate", h.www_authenticate);
    if (sv->draining) sv->api.add_response_header(rs, "Connection", "close");
    enum MHD_Result ok = sv->api.queue_response(c, (unsigned)h.status, rs);
    sv->api.destroy_response(rs);
    return ok;
}

/* The RFC 9728 protected resource metadata: public, so a client that got
 * 401 can find the authorization server. */
static enum MHD_Result send_metadata(server *sv, struct MHD_Connection *c)
{
    json_t *doc = fm_auth_resource_metadata(sv->auth);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!text) return refuse(sv, c, 500, "Internal error: out of memory");
    return respond(sv, c, 200, "application/json", text, strlen(text), NULL);
}

static bool accepts(const char *accept, const char *type)
{
    return !accept || strstr(accept, type) || strstr(accept, "*/*");
}

/* The exchange's messages as one JSON body, or as an SSE stream when
 * notifications (progress, log messages) precede the reply. */
#define OUT_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

/* One message of an exchange's out as text (malloc'd, length in *len):
 * the tool call's reply gets its structuredContent spliced in as the call
 * dumped it (x->splice_*), not parsed back and dumped again. */
static char *dump_msg(const json_t *m, size_t flags, const void *cls, size_t *len)
{
    const fm_mcp_http *x = cls;
    char *text = NULL;
    if (x && m == x->splice_msg && x->splice_raw) {
        text = fm_json_dumps_spliced(m, flags, x->splice_key, x->splice_raw, len);
        if (text) return text;
        /* Not the shape fm_rpc_result makes: the member the slow way. */
        json_t *copy = json_deep_copy(m);
        json_object_set_new(json_object_get(copy, "result"), x->splice_key,
                            json_loads(x->splice_raw, 0, NULL));
        text = json_dumps(copy, flags);
        json_decref(copy);
    } else {
        return fm_json_dumps_compact(m, flags, len);
    }
    *len = text ? strlen(text) : 0;
    return text;
}

/* out as SSE events (malloc'd, length in *len). */
static char *sse_events(const fm_mcp_http *x, const json_t *out, size_t *len)
{
    return fm_json_join_with(out, OUT_FLAGS, false, "event: message\ndata: ", "\n\n", dump_msg, x,
                             len);
}

static enum MHD_Result send_out(server *sv, struct MHD_Connection *c, fm_mcp_http *x,
                                const char *accept)
{
    size_t n = json_array_size(x->out);
    if (x->status == 202 || n == 0) return respond(sv, c, 202, NULL, NULL, 0, x->session_id);
    bool sse = n > 1 && accepts(accept, "text/event-stream");
    if (!sse) {
        /* Without a stream, notifications have nowhere to go: the reply,
         * always last, is what the client asked for. */
        size_t len = 0;
        char *text = dump_msg(json_array_get(x->out, n - 1), OUT_FLAGS, x, &len);
        return respond(sv, c, (unsigned)x->status, "application/json", text, text ? len : 0,
                       x->session_id);
    }
    size_t len = 0;
    char *buf = sse_events(x, x->out, &len);
    return respond(sv, c, (unsigned)x->status, "text/event-stream", buf, buf ? len : 0,
                   x->session_id);
}

/* POST /alerts: the alert intake under the request's principal (the
 * gate checks its scopes on every internal call, the audit names it),
 * recorded with the client name "alert-intake".  200 with the report,
 * 400/413 with {"error"} when the payload is refused (nothing done). */
static enum MHD_Result serve_alerts(server *sv, struct MHD_Connection *c, req *r)
{
    fm_session *ss = &sv->ctx->session;
    char saved[sizeof ss->client_name];
    memcpy(saved, ss->client_name, sizeof saved);
    snprintf(ss->client_name, sizeof ss->client_name, "alert-intake");
    ss->verified = r->verified;
    ss->principal = r->principal;
    sv->served++;
    fm_err e = {0};
    json_t *rep = fm_alert_intake(sv->ctx, r->body ? r->body : "", r->len, &e);
    ss->verified = false;
    memset(&ss->principal, 0, sizeof ss->principal);
    memcpy(ss->client_name, saved, sizeof saved);
    unsigned status = 200;
    if (!rep) {
        status = e.code == FM_ERR_TOO_LARGE ? 413 : 400;
        rep = json_pack("{s:s, s:s}", "error", fm_strerror(e.code), "message", e.text);
    }
    char *text = rep ? json_dumps(rep, JSON_COMPACT) : NULL;
    json_decref(rep);
    if (!text) return refuse(sv, c, 500, "Internal error: out of memory");
    return respond(sv, c, status, "application/json", text, strlen(text), NULL);
}

/* ---- response streams for server-to-client requests ----------------------
 *
 * A tool call that asks its client something does so from inside this
 * worker's one thread, in the middle of on_request: libmicrohttpd cannot
 * run (it must not be re-entered from a callback), so it cannot send a
 * streamed response for us.  The stream is therefore written on the
 * connection's socket directly: status line and headers with
 * `Connection: close`, then SSE events, and when the call is done the last
 * events, a FIN, and MHD_NO, which makes libmicrohttpd close the
 * connection without writing anything of its own.  While the call waits,
 * this worker serves nothing: its idle keep-alive connections are shut
 * when the stream opens, so the client sends its answer on a connection
 * another worker accepts (the answer reaches the waiting call through the
 * store, src/mcp/backchannel.c), and at most workers - 1 calls wait at
 * once. */

typedef struct {
    server *sv;
    conn *k;
    const char *version;  /* the request's HTTP version */
    const fm_mcp_http *x; /* its splice, for the reply at the end */
    bool opened, gone;
} stream_out;

/* Writes all of buf to the (non-blocking) socket within the body
 * deadline; -1 when the client is gone or too slow to read. */
static int write_all(const server *sv, int fd, const char *buf, size_t len)
{
    int64_t deadline = fm_now_ms() + sv->body_ms;
    while (len) {
        ssize_t w = send(fd, buf, len, MSG_NOSIGNAL);
        if (w > 0) {
            buf += w;
            len -= (size_t)w;
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return -1;
        int64_t left = deadline - fm_now_ms();
        if (left <= 0) return -1;
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        poll(&p, 1, (int)(left > 100 ? 100 : left));
    }
    return 0;
}

static int on_stream(void *cls, const json_t *msgs)
{
    stream_out *so = cls;
    server *sv = so->sv;
    if (so->gone || !so->k || so->k->fd < 0) return -1;
    int fd = so->k->fd;
    if (!msgs) {
        /* Still there?  A client that gave up has closed its end. */
        struct pollfd p = {.fd = fd, .events = POLLRDHUP};
        if (poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) so->gone = true;
        return so->gone ? -1 : 0;
    }
    if (!so->opened) {
        for (conn *o = sv->conns; o; o = o->next)
            if (o != so->k && o->phase == PH_HEAD && !o->shut && o->fd >= 0) {
                shutdown(o->fd, SHUT_RDWR);
                o->shut = true;
            }
        char head[160];
        int n = snprintf(head, sizeof head,
                         "%s 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control:"
                         " no-cache\r\nConnection: close\r\n\r\n",
                         strcmp(so->version, "HTTP/1.0") ? "HTTP/1.1" : "HTTP/1.0");
        so->opened = true;
        /* The answer comes on a new connection: another worker must take
         * it now (may_accept). */
        if (sv->slot) atomic_store(&sv->slot->asking, true);
        if (write_all(sv, fd, head, (size_t)n)) so->gone = true;
    }
    size_t len = 0;
    char *buf = so->gone ? NULL : sse_events(so->x, msgs, &len);
    if (buf && write_all(sv, fd, buf, len)) so->gone = true;
    free(buf);
    return so->gone ? -1 : 0;
}

/* The waiting call naps between polls: its thread's store connection is
 * idle, so the turn lock is let go for a fork from another serving
 * thread (the fork guard, http_workers.c). */
static void on_stream_idle(void *cls, bool idle)
{
    stream_out *so = cls;
    if (!so->sv->guarded) return;
    if (idle)
        pthread_mutex_unlock(&so->sv->turn);
    else
        pthread_mutex_lock(&so->sv->turn);
}

/* Ends a stream on_stream opened: the remaining messages (the reply
 * last), then the end of the response. */
static enum MHD_Result end_stream(server *sv, stream_out *so, const json_t *out)
{
    if (json_array_size(out)) on_stream(so, out);
    if (so->k && so->k->fd >= 0) shutdown(so->k->fd, SHUT_WR);
    sv->took_over = true;
    return MHD_NO;
}

/* ---- group commit ---------------------------------------------------------
 *
 * An event-loop server's group commit: in one turn of the loop every ready
 * request's read call queues its audit row in memory (fm_store_batch_arm),
 * its answer is held (the connection suspended) until the turn's rows are
 * inserted and committed in one short transaction (the write lock is held
 * for that alone, so workers overlap their calls), then every held answer
 * goes out.  No
 * answer leaves before its row is as durable as an unbatched call's
 * (synchronous=NORMAL in WAL).  Calls that must not ride in a batch end it
 * themselves (fm_audit_batch_flush, from the call pipeline). */

/* Every reply in out becomes an error: the transaction meant to hold its
 * audit row failed, and no answer may claim a success the audit does
 * not record.  Notifications that preceded it are dropped. */
static void fail_out(fm_mcp_http *x)
{
    json_t *o = json_array();
    size_t i;
    json_t *m;
    json_array_foreach(x->out, i, m)
    {
        json_t *id = json_object_get(m, "id");
        if (!id || json_object_get(m, "method")) continue;
        json_array_append_new(
            o, json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id", id, "error", "code",
                         -32603, "message",
                         "Internal error: the audit store could not commit this call's record,"
                         " so its result is withheld; retry the call (the server log says why)"));
    }
    json_decref(x->out);
    x->out = o;
    splice_drop(x);
    x->step_up = 0;
}

/* The store's batch ended: every held answer may go (or fail). */
static void on_batch_done(void *cls, fm_store *st, bool ok)
{
    server *sv = cls;
    (void)st;
    req *r = sv->held;
    sv->held = NULL;
    while (r) {
        req *n = r->next_held;
        r->next_held = NULL;
        r->batch_ok = ok;
        sv->api.resume_connection(r->c);
        sv->resumed = true;
        r = n;
    }
}

/* Commits the batch's waiting rows, if any; -1 (logged) when that failed. */
static int batch_commit(server *sv)
{
    fm_store *st = &sv->ctx->store;
    fm_err e = {0};
    int64_t t0 = st->batch.open ? fm_http_stats_now() : 0, rows = st->batch.rows;
    int rc = fm_store_batch_commit(st, &e);
    if (t0) fm_http_stats_event('C', t0, rows, rc);
    if (!rc) return 0;
    fm_log("error", "%s; the calls in it were answered with an error", e.text);
    return -1;
}

/* An exchange's answer, now or after its batch: with a failed batch each
 * reply becomes an error; a call refused for a missing scope gets 403. */
static enum MHD_Result send_answer(server *sv, struct MHD_Connection *c, fm_mcp_http *x,
                                   const fm_principal *who, const char *accept, bool batch_failed)
{
    if (batch_failed) fail_out(x);
    fm_auth_fail f;
    memset(&f, 0, sizeof f);
    enum MHD_Result ok;
    if (x->step_up && sv->auth &&
        fm_auth_require(sv->auth, who, (fm_autonomy)(x->step_up - 1), &f) != FM_AUTH_OK)
        ok = refuse_auth(sv, c, &f);
    else
        ok = send_out(sv, c, x, accept);
    exchange_free(x);
    return ok;
}

/* ---- the handler -------------------------------------------------------- */

static enum MHD_Result header_seen(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    req_headers *h = cls;
    (void)kind;
    size_t n = strlen(key);
    for (int i = 0; i < H_COUNT; i++) {
        if (header_names[i].len != n || strcasecmp(key, header_names[i].name)) continue;
        if (!h->v[i]) h->v[i] = value;
        break;
    }
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    server *sv = cls;
    const mhd_api *api = &sv->api;
    req *r = *req_cls;
    if (!r) {
        /* First call: headers are in, the body is not. */
        conn *k = conn_of(sv, c);
        if (k) {
            k->phase = PH_BODY;
            k->since_ms = fm_now_ms();
        }
        req_headers h;
        memset(&h, 0, sizeof h);
        api->get_connection_values(c, MHD_HEADER_KIND, header_seen, &h);
        if (!host_ok(sv, h.v[H_HOST]))
            return refuse(sv, c, 403,
                          "Forbidden: Host header does not name this service"
                          " (add it to http.allowed_hosts if it should)");
        if (!origin_ok(sv, h.v[H_ORIGIN]))
            return refuse(sv, c, 403,
                          "Forbidden: Origin is not allowed (add it to"
                          " http.allowed_origins if it should be)");
        if (sv->auth && !strcmp(url, fm_auth_metadata_path(sv->auth))) {
            if (strcmp(method, "GET") && strcmp(method, "HEAD"))
                return refuse(sv, c, 405, "Method Not Allowed: GET the metadata document");
            return send_metadata(sv, c);
        }
        bool alerts = !strcmp(url, ALERTS);
        if (strcmp(url, ENDPOINT) && !alerts)
            return refuse(sv, c, 404,
                          "Not Found: MCP is served at /mcp (and Alertmanager webhooks at"
                          " /alerts)");
        /* Who calls, before the body is read: a request without a valid
         * credential runs nothing and costs no upload. */
        fm_principal who;
        memset(&who, 0, sizeof who);
        if (sv->auth) {
            fm_auth_fail f;
            memset(&f, 0, sizeof f);
            if (fm_auth_verify(sv->auth, h.v[H_AUTHORIZATION], &who, &f) != FM_AUTH_OK)
                return refuse_auth(sv, c, &f);
        }
        if (alerts && strcmp(method, "POST"))
            return refuse(sv, c, 405,
                          "Method Not Allowed: POST an Alertmanager webhook payload"
                          " to /alerts");
        if (!strcmp(method, "DELETE")) {
            /* Ends a 2025-era session; the body, if any, is not read. */
            fm_err e = {0};
            int st = fm_mcp_http_end_session(sv->ctx, h.v[H_SESSION], &e);
            return st == 200 ? respond(sv, c, 200, NULL, NULL, 0, NULL)
                             : refuse(sv, c, (unsigned)st, e.text);
        }
        if (strcmp(method, "POST"))
            return refuse(sv, c, 405,
                          "Method Not Allowed: POST JSON-RPC to /mcp (DELETE ends a session);"
                          " this server opens no standalone SSE stream");
        const char *ct = h.v[H_CONTENT_TYPE];
        if (!ct || strncasecmp(ct, "application/json", 16))
            return refuse(sv, c, 415,
                          "Unsupported Media Type: send Content-Type:"
                          " application/json");
        const char *accept = h.v[H_ACCEPT];
        if (!accepts(accept, "application/json") && !accepts(accept, "text/event-stream"))
            return refuse(sv, c, 406,
                          "Not Acceptable: Accept application/json and"
                          " text/event-stream");
        size_t limit = sv->max_body;
        if (alerts && fm_alert_max_bytes(sv->ctx) < limit) limit = fm_alert_max_bytes(sv->ctx);
        const char *cl = h.v[H_CONTENT_LENGTH];
        if (cl && strtoull(cl, NULL, 10) > limit)
            return refuse(sv, c, 413,
                          alerts ? "Content Too Large: the payload exceeds alerts.max_bytes;"
                                   " nothing was done"
                                 : "Content Too Large: the body exceeds"
                                   " limits.max_message_bytes");
        r = calloc(1, sizeof *r);
        if (!r) return MHD_NO;
        r->h = h;
        r->alerts = alerts;
        r->limit = limit;
        /* A buffer the size the body says it is: a request's body is a
         * few hundred bytes, and glibc serves those from its per-thread
         * cache, where a fixed 4 KB buffer made it consolidate its fast
         * bins first (malloc_consolidate) on every request. */
        r->first = cl ? (size_t)strtoull(cl, NULL, 10) + 1 : 1000;
        r->principal = who;
        r->verified = sv->auth != NULL;
        *req_cls = r;
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (r->too_large || r->len + n > r->limit) {
            /* Chunked bodies have no Content-Length to refuse up front. */
            r->too_large = true;
            free(r->body);
            r->body = NULL;
            r->len = r->cap = 0;
            return MHD_YES;
        }
        if (r->len + n + 1 > r->cap) {
            size_t cap = r->cap ? r->cap : r->first;
            while (cap < r->len + n + 1)
                cap *= 2;
            char *nb = realloc(r->body, cap);
            if (!nb) return MHD_NO;
            r->body = nb;
            r->cap = cap;
        }
        memcpy(r->body + r->len, upload_data, n);
        r->len += n;
        return MHD_YES;
    }
    if (r->held) {
        /* Resumed: the batch holding this answer's rows has ended.  A
         * turn that sends held answers is not idle (no checkpoint). */
        r->held = false;
        sv->served++;
        return send_answer(sv, c, &r->x, &r->principal, r->h.v[H_ACCEPT], !r->batch_ok);
    }
    conn *k = conn_of(sv, c);
    if (k) k->phase = PH_REPLY;
    if (r->too_large)
        return refuse(sv, c, 413,
                      r->alerts ? "Content Too Large: the payload exceeds alerts.max_bytes;"
                                  " nothing was done"
                                : "Content Too Large: the body exceeds limits.max_message_bytes");
    if (r->alerts) return serve_alerts(sv, c, r);
    const char *accept = r->h.v[H_ACCEPT];
    stream_out so = {.sv = sv, .k = conn_of(sv, c), .version = version};
    bool can_stream = sv->workers >= 2 && accept && strstr(accept, "text/event-stream") && so.k;
    fm_mcp_http x = {
        .stream = can_stream ? on_stream : NULL,
        .stream_cls = &so,
        .stream_idle = on_stream_idle,
        .stream_waiters = sv->workers - 1,
        .stream_group = sv->threaded ? (int)getpid() : 0,
        .body = r->body ? r->body : "",
        .len = r->len,
        .version_hdr = r->h.v[H_VERSION],
        .session_hdr = r->h.v[H_SESSION],
        .method_hdr = r->h.v[H_METHOD],
        .name_hdr = r->h.v[H_NAME],
    };
    sv->served++;
    /* The principal rides on the session for this one exchange: the gate
     * reads its scopes, the audit records it as the initiator. */
    sv->ctx->session.verified = r->verified;
    sv->ctx->session.principal = r->principal;
    fm_store *st = &sv->ctx->store;
    bool armed = sv->batching && !fm_store_batch_arm(st);
    so.x = &x;
    int64_t t0 = fm_http_stats_now();
    fm_mcp_http_exchange(sv->ctx, &x);
    fm_http_stats_event('E', t0, (int64_t)r->len, st->batch.rows);
    if (sv->slot) atomic_store(&sv->slot->asking, false);
    if (armed) fm_store_batch_disarm(st);
    sv->ctx->session.verified = false;
    memset(&sv->ctx->session.principal, 0, sizeof sv->ctx->session.principal);
    bool batch_failed = false;
    if (st->batch.open) {
        if (!x.streamed && st->batch.rows < BATCH_MAX_ROWS && st->batch.bytes < BATCH_MAX_BYTES &&
            fm_store_batch_age_us(st) < BATCH_MAX_US) {
            /* Held until the batch commits (on_batch_done resumes it). */
            r->x = x;
            r->c = c;
            r->held = true;
            r->next_held = sv->held;
            sv->held = r;
            sv->api.suspend_connection(c);
            return MHD_YES;
        }
        /* The batch is full, or old, or this answer is a stream already
         * open: it commits now, and this answer goes after it. */
        batch_failed = batch_commit(sv) != 0;
    }
    if (x.streamed) {
        if (batch_failed) fail_out(&x);
        enum MHD_Result ok = end_stream(sv, &so, x.out);
        exchange_free(&x);
        return ok;
    }
    return send_answer(sv, c, &x, &r->principal, accept, batch_failed);
}

/* ---- serve -------------------------------------------------------------- */

static unsigned connection_count(server *sv);

/* One turn of libmicrohttpd, waiting at most ms.
 *
 * With epoll libmicrohttpd takes every suspended connection out of its
 * epoll set and puts it back on resume (two epoll_ctl for each answer a
 * batch holds: 6.6% of a loaded worker's CPU under perf) and reads each
 * socket until EAGAIN (a second recv per request).  So while this worker's
 * connections fit in an fd_set the loop is select(2) on libmicrohttpd's
 * own sets (MHD_get_fdset2, MHD_run_from_select): one pass over the
 * connections per turn instead.  Two things libmicrohttpd's select mode
 * does not do here are done here: it would keep the listening socket in
 * the set at the connection cap (it drops it only when it has an
 * inter-thread channel, which an external loop does not get) and then
 * accept and close the connection, where epoll stops accepting and lets it
 * wait in the backlog (for another worker); and resumed connections are
 * only seen inside MHD_run_from_select, so a turn after a resume starts
 * with one (below). */
/* A worker that has been in one turn this long is in a slow call (a
 * backend, a wait for input): the others accept without it. */
#define STUCK_MS 50

/* Standing by, a worker takes over from the first only when that one
 * asks its client something or has been in one turn this long (a slow
 * call): a shorter stall (a checkpoint at the WAL's bound, the CPU taken
 * by another job) would split the clients' keep-alive connections over
 * two workers for good, and that costs more than it saves (may_accept). */
#define STANDBY_STUCK_MS 1000

/* Whether worker o would take a connection now in this one's place:
 * alive, not asking its client, not stuck in a long call, and holding
 * fewer connections than this one (spread) or under its cap. */
static bool takes_instead(server *sv, worker_slot *o, bool spread, unsigned mine, long long now)
{
    int pid = atomic_load(&o->pid);
    unsigned theirs = atomic_load(&o->conns);
    if (o == sv->slot || !pid || (spread ? theirs >= mine : theirs >= sv->max_conn)) return false;
    if (atomic_load(&o->asking)) return false;
    long long busy = atomic_load(&o->busy_ms);
    if (busy && now - busy > (spread ? STUCK_MS : STANDBY_STUCK_MS)) return false;
    return !(kill(pid, 0) && errno == ESRCH); /* died: the parent replaces it */
}

/* With workers, whether this one should accept now.  By default the
 * first worker takes every connection while it is not stuck in a long
 * call and under its cap, and the others stand by: on a machine without
 * a core to spare, calls spread over two workers each cost more (each
 * commit drops the other's page cache, the commits collide on the write
 * lock) and wait longer (bench/http.sh, README).  With http.spread each
 * accepts only while no other holds fewer: the kernel wakes every worker
 * on the shared socket and the first one up took every connection of a
 * burst (32 clients: 32 and 0), so one worker served them all. */
static bool may_accept(server *sv)
{
    if (!sv->slots) return true;
    unsigned mine = atomic_load(&sv->slot->conns);
    long long now = fm_now_ms();
    int upto = sv->spread ? sv->workers : (int)(sv->slot - sv->slots);
    for (int i = 0; i < upto; i++)
        if (takes_instead(sv, &sv->slots[i], sv->spread, mine, now)) return false;
    return true;
}

/* Takes a free slot, or a dead worker's (this one replaces it). */
static void claim_slot(server *sv, worker_slot *slots)
{
    for (int i = 0; i < sv->workers; i++) {
        int pid = atomic_load(&slots[i].pid);
        if (pid && !(kill(pid, 0) && errno == ESRCH)) continue;
        if (!atomic_compare_exchange_strong(&slots[i].pid, &pid, (int)getpid())) continue;
        atomic_store(&slots[i].conns, 0);
        atomic_store(&slots[i].busy_ms, 0);
        atomic_store(&slots[i].asking, false);
        sv->slots = slots;
        sv->slot = &slots[i];
        return;
    }
}

/* Whether this worker takes new connections now: under its cap, not
 * stopping, and no other worker holds fewer (may_accept). */
static bool accepting(server *sv)
{
    return !sv->draining && connection_count(sv) < sv->max_conn && may_accept(sv);
}

/* The epoll loop of a worker: libmicrohttpd's epoll set and, while this
 * worker takes connections, the shared listening socket, which it
 * accepts on itself and hands to libmicrohttpd (MHD_add_connection):
 * libmicrohttpd's own epoll loop would accept whenever the socket is
 * ready, and the first worker up took a whole burst (as select's did
 * before may_accept).  Up to 16 a turn, as in select's loop. */
static void epoll_turn(server *sv, int ms)
{
    struct pollfd p[2] = {{.fd = sv->epoll_fd, .events = POLLIN},
                          {.fd = sv->accept_fd, .events = POLLIN}};
    MHD_UNSIGNED_LONG_LONG t;
    if (sv->api.get_timeout(sv->d, &t) == MHD_YES && t < (MHD_UNSIGNED_LONG_LONG)ms) ms = (int)t;
    if (sv->resumed) ms = 0;
    sv->resumed = false;
    bool take = accepting(sv);
    if (!take && sv->slots && ms > STUCK_MS) ms = STUCK_MS; /* as serve_turn's */
    int64_t t0 = fm_http_stats_now();
    wait_begins(sv);
    if (poll(p, take ? 2 : 1, ms) < 0 && errno != EINTR)
        fm_log("warning", "poll: %s", strerror(errno));
    wait_ends(sv);
    fm_http_stats_event('W', t0, ms, take);
    for (int i = 0; take && (p[1].revents & POLLIN) && i < 16 && (i == 0 || accepting(sv)); i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd = accept4(sv->accept_fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) break; /* another worker took it, or none is left */
        /* libmicrohttpd closes it itself when refused (per-address cap). */
        sv->api.add_connection(sv->d, fd, (struct sockaddr *)&ss, len);
    }
    sv->api.run_wait(sv->d, 0);
}

static void serve_turn(server *sv, int ms)
{
    if (!sv->use_select) {
        if (sv->accept_fd >= 0)
            epoll_turn(sv, ms);
        else
            sv->api.run_wait(sv->d, ms);
        return;
    }
    fd_set rs, ws, es;
    FD_ZERO(&rs);
    FD_ZERO(&ws);
    FD_ZERO(&es);
    if (sv->resumed) {
        /* libmicrohttpd resumes the held answers inside this call, and
         * they are queued; the select below then finds their sockets
         * writable, so they go out in this turn, beside the requests it
         * reads, as with epoll.  Without it they would leave a turn later
         * and the requests of that turn make a batch of their own (group
         * commit's 16-client test: 37 transactions for 65 rows, not 20). */
        sv->api.run_from_select(sv->d, &rs, &ws, &es);
        sv->resumed = false;
        ms = 0;
        /* And out before anything is read: in one pass libmicrohttpd
         * reads, runs and writes connection by connection, so an answer
         * would wait behind every call read ahead of it in the pass (32
         * clients: up to 30 calls, the slowest answers).  Loopback
         * sockets with a small answer are writable; one that is not gets
         * EAGAIN and its answer goes in a later pass. */
        MHD_socket wmax = MHD_INVALID_SOCKET;
        sv->api.get_fdset2(sv->d, &rs, &ws, &es, &wmax, FD_SETSIZE);
        FD_ZERO(&rs);
        FD_ZERO(&es);
        sv->api.run_from_select(sv->d, &rs, &ws, &es);
        FD_ZERO(&ws);
    }
    MHD_socket max = MHD_INVALID_SOCKET;
    /* MHD_NO: a descriptor did not fit; libmicrohttpd refuses connections
     * past FD_SETSIZE in this mode, so only its own could be missing. */
    sv->api.get_fdset2(sv->d, &rs, &ws, &es, &max, FD_SETSIZE);
    if (sv->listen_fd >= 0 && !accepting(sv)) {
        FD_CLR(sv->listen_fd, &rs);
        /* A worker standing by looks again soon: the one it stands in for
         * may be stuck by then (a call waiting for its client's answer,
         * whose answer comes on a new connection). */
        if (sv->slots && ms > STUCK_MS) ms = STUCK_MS;
    }
    MHD_UNSIGNED_LONG_LONG t;
    if (sv->api.get_timeout(sv->d, &t) == MHD_YES && t < (MHD_UNSIGNED_LONG_LONG)ms) ms = (int)t;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    int64_t t0 = fm_http_stats_now();
    wait_begins(sv);
    if (select(max + 1, &rs, &ws, &es, &tv) < 0) {
        if (errno != EINTR) fm_log("warning", "select: %s", strerror(errno));
        FD_ZERO(&rs);
        FD_ZERO(&ws);
        FD_ZERO(&es);
    }
    wait_ends(sv);
    fm_http_stats_event('W', t0, ms, sv->listen_fd >= 0 && FD_ISSET(sv->listen_fd, &rs));
    bool listen_ready = sv->listen_fd >= 0 && FD_ISSET(sv->listen_fd, &rs);
    sv->api.run_from_select(sv->d, &rs, &ws, &es);
    /* libmicrohttpd accepts one connection per select pass (its epoll
     * loop takes up to ten): a burst of new clients would otherwise be
     * read one per turn, each turn a commit of its own.  Up to 16 more,
     * while they come and the cap allows; their requests are read in the
     * next turn, together. */
    for (int i = 0; listen_ready && i < 16; i++) {
        if (!accepting(sv)) break;
        unsigned before = connection_count(sv);
        FD_ZERO(&rs);
        FD_ZERO(&ws);
        FD_ZERO(&es);
        FD_SET(sv->listen_fd, &rs);
        sv->api.run_from_select(sv->d, &rs, &ws, &es);
        listen_ready = connection_count(sv) > before;
    }
}

/* http.workers, by default one per online CPU: the core handles a request
 * at a time, so concurrency comes from processes. */
static int workers_of(const fm_ctx *ctx)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus < 1) cpus = 1;
    if (cpus > 64) cpus = 64;
    return (int)fm_cfg_int(fm_config_section(&ctx->cfg, "http"), "workers", cpus);
}

static unsigned connection_count(server *sv)
{
    const union MHD_DaemonInfo *di =
        sv->api.get_daemon_info(sv->d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    return di ? di->num_connections : 0;
}

/* Serves on listen_fd when it is a socket a parent bound for several
 * workers (-1: libmicrohttpd binds `listen` itself). */
/* Opens authentication, checks the address against it and loads
 * libmicrohttpd: what a server needs before it binds; -1 with err. */
static int prepare(server *sv, fm_ctx *ctx, const char *listen, struct sockaddr_storage *ss,
                   fm_err *err)
{
    memset(sv, 0, sizeof *sv);
    sv->ctx = ctx;
    const json_t *auth_sec = fm_config_section(&ctx->cfg, "auth");
    if (auth_sec && fm_auth_open(&sv->auth, auth_sec, err)) return -1;
    if (parse_listen(sv, listen, ss, err) || mhd_load(&sv->api, err)) {
        fm_auth_close(sv->auth);
        sv->auth = NULL;
        return -1;
    }
    return 0;
}

static int serve(fm_ctx *ctx, const char *listen, int listen_fd, worker_slot *slots, bool threaded,
                 fm_err *err)
{
    server sv;
    struct sockaddr_storage ss;
    if (prepare(&sv, ctx, listen, &ss, err)) return 1;
    ctx->auth = sv.auth;
    const json_t *cfg = fm_config_section(&ctx->cfg, "http");
    unsigned max_conn = (unsigned)fm_cfg_int(cfg, "max_connections", 256);
    unsigned per_ip = (unsigned)fm_cfg_int(cfg, "max_connections_per_ip", max_conn);
    if (listen_fd >= 0) {
        /* The caps are the service's: each worker takes its share.  A
         * worker at its cap stops accepting and the others take over; the
         * per-address cap is per worker, so one address may be refused a
         * little before it holds max_connections_per_ip in all. */
        unsigned n = (unsigned)workers_of(ctx);
        sv.workers = (int)n;
        sv.threaded = threaded;
        sv.spread = fm_cfg_bool(cfg, "spread", false);
        if (slots) claim_slot(&sv, slots);
        max_conn = max_conn / n ? max_conn / n : 1;
        per_ip = per_ip / n ? per_ip / n : 1;
    }
    sv.header_ms = (int)fm_cfg_int(cfg, "header_timeout_s", 10) * 1000;
    sv.body_ms = (int)fm_cfg_int(cfg, "body_timeout_s", 30) * 1000;
    sv.grace_ms = (int)fm_cfg_int(cfg, "shutdown_grace_s", 30) * 1000;
    sv.max_body = ctx->cfg.max_message;
    if (!sv.workers) sv.workers = 1;
    /* Over HTTP nobody is the OS user.  With `auth` each request's
     * principal replaces this in the audit row; without, the row says the
     * caller is unauthenticated. */
    snprintf(ctx->session.os_user, sizeof ctx->session.os_user, "http:unauthenticated");
    ctx->session.initialized = false;
    /* select while the cap leaves room in an fd_set for the store's and
     * the backends' descriptors too (serve_turn says why). */
    sv.max_conn = max_conn;
    sv.use_select = max_conn <= FD_SETSIZE / 4;
    bool own_accept = listen_fd >= 0 && !sv.use_select; /* epoll_turn */
    unsigned flags = (sv.use_select ? 0 : MHD_USE_EPOLL) | MHD_USE_ERROR_LOG |
                     MHD_ALLOW_SUSPEND_RESUME | (sv.ipv6 ? MHD_USE_IPv6 : 0) |
                     (own_accept ? MHD_USE_NO_LISTEN_SOCKET : 0);
    sv.batching = true;
    ctx->store.batch.done = on_batch_done;
    ctx->store.batch.done_cls = &sv;
    sv.d = sv.api.start_daemon(
        flags, (uint16_t)sv.port, NULL, NULL, on_request, &sv, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
        &sv, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT, max_conn,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip,
        /* Without a listening socket libmicrohttpd refuses the option
         * (even -1): the cap again, an int-sized value, in its place. */
        own_accept ? MHD_OPTION_CONNECTION_LIMIT : MHD_OPTION_LISTEN_SOCKET,
        own_accept ? (int)max_conn : listen_fd, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)(sv.header_ms > sv.body_ms ? sv.header_ms : sv.body_ms) / 1000,
        /* A connection's pool holds its request's headers and read
         * buffer (bodies are copied out to req), and libmicrohttpd zeroes
         * all of it for every request on a keep-alive connection, and
         * half of it again when the read buffer moves: 64 KB was 3.6% of
         * a loaded worker's CPU (perf), and each request's memset evicted
         * the cache; at 32 KB the two memsets were 49 K of a call's 261 K
         * instructions (callgrind), at 16 KB 24 K.  16 KB takes up to
         * 15.4 KB of request headers (Node's default bound is 16 KB; a
         * large bearer token is a few KB): tests/http/hardening.py sends
         * 12 KB, which is served, and 20 KB, which is refused with 431. */
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)16384, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, &sv, MHD_OPTION_NOTIFY_CONNECTION, on_connection, &sv, MHD_OPTION_END);
    if (!sv.d) {
        ctx->auth = NULL;
        fm_auth_close(sv.auth);
        return fm_err_set(err, FM_ERR_UNAVAILABLE,
                          "cannot listen on %s (in use, or not a local address)", listen),
               1;
    }
    const union MHD_DaemonInfo *di = sv.api.get_daemon_info(sv.d, MHD_DAEMON_INFO_BIND_PORT);
    if (di) sv.port = di->port;
    di = sv.api.get_daemon_info(sv.d, MHD_DAEMON_INFO_LISTEN_FD);
    sv.listen_fd = di && !own_accept ? di->listen_fd : -1;
    sv.accept_fd = sv.epoll_fd = -1;
    di = own_accept ? sv.api.get_daemon_info(sv.d, MHD_DAEMON_INFO_EPOLL_FD) : NULL;
    if (di) {
        /* Non-blocking: another worker may take the connection this one
         * was woken for (the flag is the socket's, shared with them). */
        int fl = fcntl(listen_fd, F_GETFL);
        if (fl >= 0) fcntl(listen_fd, F_SETFL, fl | O_NONBLOCK);
        sv.accept_fd = listen_fd;
        sv.epoll_fd = di->epoll_fd;
        struct sockaddr_storage bound;
        socklen_t blen = sizeof bound;
        if (!getsockname(listen_fd, (struct sockaddr *)&bound, &blen))
            sv.port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                        : ((struct sockaddr_in *)&bound)->sin_port);
    } else if (own_accept) {
        sv.api.stop_daemon(sv.d);
        ctx->auth = NULL;
        fm_auth_close(sv.auth);
        return fm_err_set(err, FM_ERR_UNAVAILABLE, "libmicrohttpd gave no epoll descriptor"), 1;
    }
    if (listen_fd < 0) /* with workers, the parent said it once */
        fm_log("info", "serving MCP on http://%s%s%s:%d" ENDPOINT, sv.ipv6 ? "[" : "", sv.host,
               sv.ipv6 ? "]" : "", sv.port);
    /* WAL checkpoints off this loop: with workers the parent runs them,
     * alone a thread does (src/transport/http_workers.c).  Without one
     * (it could not start), at idle turns as before. */
    fm_http_checkpointer *ckpt =
        listen_fd < 0 && ctx->store.db && ctx->store.db->ops == &fm_db_sqlite_ops
            ? fm_http_checkpointer_start(ctx->cfg.db_path)
            : NULL;
    if (threaded) {
        pthread_mutex_init(&sv.turn, NULL);
        pthread_mutex_lock(&sv.turn);
        sv.guarded = true;
        fm_http_fork_guard_add(ctx->store.db, &sv.turn);
    }
    while (!ctx->stop) {
        unsigned long long before = sv.served, opened = sv.opened;
        int64_t t0 = fm_http_stats_now();
        serve_turn(&sv, 250);
        fm_http_stats_event('T', t0, (int64_t)(sv.served - before), (int64_t)(sv.opened - opened));
        batch_commit(&sv); /* the turn's batch: its answers go in the next turn */
        sweep(&sv);
        if (listen_fd < 0 && !ckpt && sv.served == before && fm_store_checkpoint_due(&ctx->store))
            fm_store_checkpoint(&ctx->store);
    }
    /* Graceful stop: no new connections; idle ones are shut; requests
     * already in progress get their replies, within the grace period. */
    sv.draining = true;
    sv.api.quiesce_daemon(sv.d);
    int64_t deadline = fm_now_ms() + sv.grace_ms;
    while (connection_count(&sv) && fm_now_ms() < deadline) {
        sweep(&sv);
        serve_turn(&sv, 100);
        batch_commit(&sv);
    }
    /* libmicrohttpd must not stop with a connection suspended. */
    batch_commit(&sv);
    if (sv.held) on_batch_done(&sv, &ctx->store, false);
    ctx->store.batch.done = NULL;
    ctx->store.batch.done_cls = NULL;
    if (ctx->store.batch.commits)
        fm_log("info", "group commit: %llu audit rows in %llu transactions",
               ctx->store.batch.batched_rows, ctx->store.batch.commits);
    /* How the accepting was shared (tests/http/workers.py reads it). */
    if (sv.slot)
        fm_log("info", "http worker %d: %llu connections, %llu requests", (int)(sv.slot - sv.slots),
               sv.opened, sv.served);
    unsigned left = connection_count(&sv);
    sv.api.stop_daemon(sv.d);
    if (sv.guarded) {
        /* Let go first: a fork waiting for this lock holds the guard's. */
        pthread_mutex_unlock(&sv.turn);
        fm_http_fork_guard_drop(ctx->store.db);
        pthread_mutex_destroy(&sv.turn);
    }
    fm_http_checkpointer_stop(ckpt);
    ctx->auth = NULL;
    fm_auth_close(sv.auth);
    fm_log("info", "HTTP service stopped%s", left ? " (grace period over, connections cut)" : "");
    return 0;
}

/* ---- several workers ------------------------------------------------------ */

typedef struct {
    const char *listen;
    int fd;
    worker_slot *slots;
    bool threaded;
} worker_arg;

static int serve_worker(fm_ctx *ctx, void *arg, fm_err *err)
{
    const worker_arg *a = arg;
    return serve(ctx, a->listen, a->fd, a->slots, a->threaded, err);
}

/* The socket the workers share, bound and listening; non-blocking, since
 * every worker polls it and all but one lose each accept. */
static int bind_shared(const struct sockaddr_storage *ss, bool ipv6, fm_err *err)
{
    int fd = socket(ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    socklen_t len = ipv6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        bind(fd, (const struct sockaddr *)ss, len) || listen(fd, 128)) {
        fm_err_set(err, FM_ERR_UNAVAILABLE, "cannot listen (%s): in use, or not a local address",
                   strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    return fd;
}

static int serve_layout(fm_ctx *ctx, const char *listen, int workers, fm_err *err);

int fm_httpd_serve(fm_ctx *ctx, const char *listen, fm_err *err)
{
    int workers = workers_of(ctx);
    fm_http_stats_open();
    int rc = serve_layout(ctx, listen, workers, err);
    fm_http_stats_close();
    return rc;
}

static int serve_layout(fm_ctx *ctx, const char *listen, int workers, fm_err *err)
{
    if (workers <= 1) {
        fm_http_stats_thread(1); /* as serving thread 0 is (http-tail.py) */
        return serve(ctx, listen, -1, NULL, false, err);
    }
    /* Everything a worker would refuse is refused here, once, before any
     * process is forked. */
    server sv;
    struct sockaddr_storage ss;
    if (prepare(&sv, ctx, listen, &ss, err)) return 1;
    fm_auth_close(sv.auth); /* each worker opens its own */
    int fd = bind_shared(&ss, sv.ipv6, err);
    if (fd < 0) return 1;
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    if (!getsockname(fd, (struct sockaddr *)&bound, &blen))
        sv.port = ntohs(sv.ipv6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                : ((struct sockaddr_in *)&bound)->sin_port);
    int grace_ms =
        (int)fm_cfg_int(fm_config_section(&ctx->cfg, "http"), "shutdown_grace_s", 30) * 1000;
    /* Threads by default: processes each map and touch their own copy of
     * the libraries (summed peak RSS 27 MB for 2 workers and their parent
     * against 14 MB for one process); processes isolate a crash. */
    bool threaded = !fm_cfg_bool(fm_config_section(&ctx->cfg, "http"), "processes", false);
    fm_log("info", "serving MCP on http://%s%s%s:%d" ENDPOINT " (%d %s)", sv.ipv6 ? "[" : "",
           sv.host, sv.ipv6 ? "]" : "", sv.port, workers,
           threaded ? "serving threads" : "worker processes");
    /* Shared by the workers (may_accept); without it they accept as the
     * kernel wakes them.  Processes need it mapped shared before the fork. */
    size_t slots_len = sizeof(worker_slot) * (size_t)workers;
    worker_slot *slots =
        mmap(NULL, slots_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    worker_arg a = {listen, fd, slots == MAP_FAILED ? NULL : slots, threaded};
    int rc = threaded ? fm_http_threads_run(ctx, workers, serve_worker, &a, err)
                      : fm_http_workers_run(ctx, workers, grace_ms, serve_worker, &a, err);
    if (a.slots) munmap(a.slots, slots_len);
    close(fd);
    fm_log("info", "HTTP service stopped");
    return rc;
}
