/* The node executor over SSH (libssh2).
 *
 * One connection per command: connect (non-blocking, bounded), handshake,
 * host key checked against known_hosts (unknown or changed refuses),
 * public-key auth (key file, or ssh-agent when no key file is set), one
 * exec channel, stdout/stderr read under a cap, exit status, teardown.
 * Every libssh2 call runs non-blocking under a deadline, so a silent
 * node costs at most connect_timeout_ms + command_timeout_ms.
 *
 * Only fm_cmd_build() output is ever sent: this file has no way to run
 * anything that is not in the catalog. */
#include "fleetmcp/fm_config.h"
#include "fleetmcp/fm_exec.h"
#include "fleetmcp/fm_util.h"

#include <errno.h>
#include <fcntl.h>
#include <libssh2.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define KNOWN_HOSTS_MAX (4u << 20) /* bytes read from known_hosts */
#define DRAIN_FACTOR 16            /* read and drop up to 16x the cap past it */

typedef struct fm_exec_ssh {
    char user[64];
    int port;
    char key_file[512];
    char pub_file[520]; /* key_file.pub if it exists, else "" */
    char passphrase[256];
    char known_hosts[512];
    json_t *hosts; /* owned copy: node -> address */
    int connect_timeout_ms;
    int command_timeout_ms;
    size_t max_output;
    int max_diag_level;
} fm_exec_ssh;

/* One connection in flight. */
typedef struct conn {
    fm_exec_ssh *cfg;
    const char *node;
    const char *addr;
    int fd;
    LIBSSH2_SESSION *s;
    int64_t deadline;
} conn;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until libssh2 can make progress or the deadline passes.
 * Returns 0, or -1 on timeout. */
static int wait_io(conn *c)
{
    int dir = libssh2_session_block_directions(c->s);
    struct pollfd p = {.fd = c->fd, .events = 0};
    if (dir & LIBSSH2_SESSION_BLOCK_INBOUND) p.events |= POLLIN;
    if (dir & LIBSSH2_SESSION_BLOCK_OUTBOUND) p.events |= POLLOUT;
    if (!p.events) p.events = POLLIN;
    for (;;) {
        int64_t left = c->deadline - mono_ms();
        if (left <= 0) return -1;
        int r = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
        if (r > 0) return 0;
        if (r == 0) return -1;
        if (errno != EINTR) return -1;
    }
}

/* Runs a libssh2 call until it stops saying EAGAIN; jumps to timeout. */
#define AGAIN(c, rc, call)                                                                         \
    while (((rc) = (call)) == LIBSSH2_ERROR_EAGAIN)                                                \
        if (wait_io(c)) goto timeout;

static const char *ssh_errmsg(LIBSSH2_SESSION *s)
{
    char *msg = NULL;
    libssh2_session_last_error(s, &msg, NULL, 0);
    return msg && *msg ? msg : "unknown libssh2 error";
}

/* ---- configuration ---------------------------------------------------- */

static int cfg_bounded(const json_t *sec, const char *key, long long dflt, long long lo,
                       long long hi, long long *out, fm_err *err)
{
    long long v = fm_cfg_int(sec, key, dflt);
    if (v < lo || v > hi)
        return fm_err_set(err, FM_ERR_INVALID, "ssh.%s = %lld out of range %lld..%lld", key, v, lo,
                          hi),
               -1;
    *out = v;
    return 0;
}

static bool valid_user(const char *u)
{
    if (!*u || strlen(u) > 32) return false;
    for (const char *p = u; *p; p++) {
        char ch = *p;
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' ||
                  (p != u && ((ch >= '0' && ch <= '9') || ch == '-' || ch == '.'));
        if (!ok) return false;
    }
    return true;
}

static int load_config(fm_exec_ssh *x, const json_t *sec, fm_err *err)
{
    const char *user = fm_cfg_str(sec, "user", NULL);
    if (!user || !valid_user(user))
        return fm_err_set(err, FM_ERR_NOT_CONFIGURED,
                          "ssh.user missing or not a valid user name: set the remote account"),
               -1;
    snprintf(x->user, sizeof x->user, "%s", user);

    long long v;
    if (cfg_bounded(sec, "port", 22, 1, 65535, &v, err)) return -1;
    x->port = (int)v;
    if (cfg_bounded(sec, "connect_timeout_ms", 10000, 100, 120000, &v, err)) return -1;
    x->connect_timeout_ms = (int)v;
    if (cfg_bounded(sec, "command_timeout_ms", 60000, 100, 3600000, &v, err)) return -1;
    x->command_timeout_ms = (int)v;
    if (cfg_bounded(sec, "max_output_bytes", 1 << 20, 1024, 64 << 20, &v, err)) return -1;
    x->max_output = (size_t)v;
    if (cfg_bounded(sec, "max_diag_level", 3, 3, 4, &v, err)) return -1;
    x->max_diag_level = (int)v;

    const char *kh = fm_cfg_str(sec, "known_hosts", NULL);
    if (!kh || !*kh)
        return fm_err_set(err, FM_ERR_NOT_CONFIGURED,
                          "ssh.known_hosts is not set: strict host key checking needs a "
                          "known_hosts file"),
               -1;
    if (strlen(kh) >= sizeof x->known_hosts || access(kh, R_OK) != 0)
        return fm_err_set(err, FM_ERR_NOT_CONFIGURED, "ssh.known_hosts %.200s is not readable", kh),
               -1;
    snprintf(x->known_hosts, sizeof x->known_hosts, "%s", kh);

    const char *key = fm_cfg_str(sec, "key_file", NULL);
    if (key && *key) {
        if (strlen(key) >= sizeof x->key_file || access(key, R_OK) != 0)
            return fm_err_set(err, FM_ERR_NOT_CONFIGURED, "ssh.key_file %.200s is not readable",
                              key),
                   -1;
        snprintf(x->key_file, sizeof x->key_file, "%s", key);
        snprintf(x->pub_file, sizeof x->pub_file, "%s.pub", key);
        if (access(x->pub_file, R_OK) != 0) x->pub_file[0] = '\0';
    } else if (!getenv("SSH_AUTH_SOCK")) {
        return fm_err_set(err, FM_ERR_NOT_CONFIGURED,
                          "no ssh.key_file and no SSH_AUTH_SOCK: set a key file or run an agent"),
               -1;
    }
    const json_t *pass = json_object_get(sec, "key_passphrase");
    if (pass && fm_secret_resolve(pass, x->passphrase, sizeof x->passphrase, err)) return -1;

    const json_t *hosts = json_object_get(sec, "hosts");
    if (hosts && !json_is_object(hosts))
        return fm_err_set(err, FM_ERR_INVALID, "ssh.hosts must map node names to addresses"), -1;
    x->hosts = hosts ? json_deep_copy(hosts) : json_object();
    if (!x->hosts) return fm_err_set(err, FM_ERR_NOMEM, "out of memory copying ssh.hosts"), -1;
    const char *node;
    json_t *addr;
    json_object_foreach(x->hosts, node, addr)
    {
        char clip[64];
        fm_clip(clip, sizeof clip, node);
        if (!fm_exec_valid_node(node))
            return fm_err_set(err, FM_ERR_INVALID, "ssh.hosts: '%s' is not a valid node name",
                              clip),
                   -1;
        if (!json_is_string(addr) || !fm_exec_valid_address(json_string_value(addr)))
            return fm_err_set(err, FM_ERR_INVALID, "ssh.hosts.%s: not an IP address or host name",
                              clip),
                   -1;
    }
    return 0;
}

/* ---- connection ------------------------------------------------------- */

static int tcp_connect(conn *c, fm_err *err)
{
    char port[8];
    snprintf(port, sizeof port, "%d", c->cfg->port);
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int g = getaddrinfo(c->addr, port, &hints, &res);
    if (g != 0)
        return fm_err_set(err, FM_ERR_UNAVAILABLE, "cannot resolve %s for node %s: %s", c->addr,
                          c->node, gai_strerror(g)),
               -1;
    int last = 0;
    bool timed_out = false;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd =
            socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            last = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            c->fd = fd;
            freeaddrinfo(res);
            return 0;
        }
        if (errno == EINPROGRESS) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            int r;
            do {
                int64_t left = c->deadline - mono_ms();
                r = left <= 0 ? 0 : poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
            } while (r < 0 && errno == EINTR);
            if (r > 0) {
                int soerr = 0;
                socklen_t sl = sizeof soerr;
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0) {
                    c->fd = fd;
                    freeaddrinfo(res);
                    return 0;
                }
                last = soerr ? soerr : errno;
            } else if (r == 0) {
                timed_out = true;
            } else {
                last = errno;
            }
        } else {
            last = errno;
        }
        close(fd);
        if (timed_out) break;
    }
    freeaddrinfo(res);
    if (timed_out)
        return fm_err_set(err, FM_ERR_TIMEOUT,
                          "no TCP connection to node %s (%s port %d) within %d ms", c->node,
                          c->addr, c->cfg->port, c->cfg->connect_timeout_ms),
               -1;
    return fm_err_set(err, FM_ERR_UNAVAILABLE,
                      "cannot connect to node %s (%s port %d): %s; check sshd there and "
                      "ssh.port",
                      c->node, c->addr, c->cfg->port, strerror(last ? last : ECONNREFUSED)),
           -1;
}

static void fingerprint(LIBSSH2_SESSION *s, char *out, size_t cap)
{
    const unsigned char *h =
        (const unsigned char *)libssh2_hostkey_hash(s, LIBSSH2_HOSTKEY_HASH_SHA256);
    if (!h) {
        snprintf(out, cap, "(unknown)");
        return;
    }
    char b64[64];
    size_t n = fm_base64_encode(h, 32, b64);
    while (n > 0 && b64[n - 1] == '=')
        n--; /* OpenSSH prints it unpadded */
    snprintf(out, cap, "SHA256:%.*s", (int)n, b64);
}

static int knownhost_keybit(int hostkey_type)
{
    switch (hostkey_type) {
    case LIBSSH2_HOSTKEY_TYPE_RSA:
        return LIBSSH2_KNOWNHOST_KEY_SSHRSA;
    case LIBSSH2_HOSTKEY_TYPE_DSS:
        return LIBSSH2_KNOWNHOST_KEY_SSHDSS;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_256:
        return LIBSSH2_KNOWNHOST_KEY_ECDSA_256;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_384:
        return LIBSSH2_KNOWNHOST_KEY_ECDSA_384;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_521:
        return LIBSSH2_KNOWNHOST_KEY_ECDSA_521;
    case LIBSSH2_HOSTKEY_TYPE_ED25519:
        return LIBSSH2_KNOWNHOST_KEY_ED25519;
    default:
        return 0;
    }
}

/* Loads known_hosts line by line: libssh2_knownhost_readfile() gives up on
 * the first line it cannot parse (e.g. a key type it does not know),
 * which would turn one exotic entry into "every host unknown".  Lines
 * marked @revoked go to revoked; @cert-authority lines are skipped
 * (libssh2 has no certificate support, so they can only fail closed). */
static int load_known_hosts(LIBSSH2_KNOWNHOSTS *kh, LIBSSH2_KNOWNHOSTS *revoked, const char *path,
                            fm_err *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return fm_err_set(err, FM_ERR_IO, "cannot open known_hosts %.200s: %s", path,
                          strerror(errno)),
               -1;
    char line[8192];
    size_t total = 0;
    while (fgets(line, sizeof line, f)) {
        size_t n = strlen(line);
        total += n;
        if (total > KNOWN_HOSTS_MAX) break;
        if (n && line[n - 1] != '\n' && !feof(f)) { /* overlong line: skip the rest */
            int ch;
            while ((ch = fgetc(f)) != EOF && ch != '\n')
                total++;
            continue;
        }
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '#' || *p == '\n' || *p == '\0') continue;
        if (!strncmp(p, "@revoked", 8) && (p[8] == ' ' || p[8] == '\t')) {
            /* The host pattern does not matter (a revoked key is refused
             * for every host) and libssh2 silently drops patterns like
             * "*": keep the key under a placeholder name. */
            p += 9;
            while (*p == ' ' || *p == '\t')
                p++;
            while (*p && *p != ' ' && *p != '\t')
                p++;
            char rl[8200];
            int m = snprintf(rl, sizeof rl, "revoked%s", p);
            if (m > 0 && (size_t)m < sizeof rl)
                (void)libssh2_knownhost_readline(revoked, rl, (size_t)m,
                                                 LIBSSH2_KNOWNHOST_FILE_OPENSSH);
            continue;
        }
        if (*p == '@') continue;
        (void)libssh2_knownhost_readline(kh, p, strlen(p), LIBSSH2_KNOWNHOST_FILE_OPENSSH);
    }
    fclose(f);
    return 0;
}

/* True if the raw host key appears in a @revoked line, whatever host
 * pattern the line names (libssh2 does not match patterns such as "*"). */
static bool key_revoked(LIBSSH2_KNOWNHOSTS *revoked, const char *key, size_t klen)
{
    if (klen > 16384) return true; /* no real host key is this large: refuse */
    char *b64 = malloc(4 * ((klen + 2) / 3) + 1);
    if (!b64) return true;
    fm_base64_encode((const unsigned char *)key, klen, b64);
    struct libssh2_knownhost *e = NULL, *prev = NULL;
    bool hit = false;
    while (!hit && libssh2_knownhost_get(revoked, &e, prev) == 0) {
        if (e->key && !strcmp(e->key, b64)) hit = true;
        prev = e;
    }
    free(b64);
    return hit;
}

static int check_host_key(conn *c, fm_err *err)
{
    size_t klen = 0;
    int ktype = 0;
    const char *key = libssh2_session_hostkey(c->s, &klen, &ktype);
    if (!key) return fm_err_set(err, FM_ERR_HOSTKEY, "node %s sent no host key", c->node), -1;
    LIBSSH2_KNOWNHOSTS *kh = libssh2_knownhost_init(c->s);
    LIBSSH2_KNOWNHOSTS *revoked = libssh2_knownhost_init(c->s);
    if (!kh || !revoked || load_known_hosts(kh, revoked, c->cfg->known_hosts, err)) {
        if (kh) libssh2_knownhost_free(kh);
        if (revoked) libssh2_knownhost_free(revoked);
        return fm_err_set(err, FM_ERR_NOMEM, "out of memory for known_hosts"), -1;
    }
    bool is_revoked = key_revoked(revoked, key, klen);
    libssh2_knownhost_free(revoked);
    int mask =
        LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW | knownhost_keybit(ktype);
    struct libssh2_knownhost *found = NULL;
    /* The address we connect to first, then the node name: known_hosts
     * files list either (or both, as "name,addr"). */
    int r = libssh2_knownhost_checkp(kh, c->addr, c->cfg->port, key, klen, mask, &found);
    if (r == LIBSSH2_KNOWNHOST_CHECK_NOTFOUND && strcmp(c->addr, c->node) != 0)
        r = libssh2_knownhost_checkp(kh, c->node, c->cfg->port, key, klen, mask, &found);
    libssh2_knownhost_free(kh);

    char fp[64];
    fingerprint(c->s, fp, sizeof fp);
    char hostport[300];
    if (c->cfg->port == 22)
        snprintf(hostport, sizeof hostport, "%s", c->addr);
    else
        snprintf(hostport, sizeof hostport, "[%s]:%d", c->addr, c->cfg->port);
    if (is_revoked)
        return fm_err_set(err, FM_ERR_HOSTKEY,
                          "host key of node %s (%s, %s) is marked @revoked in %.160s; refused",
                          c->node, hostport, fp, c->cfg->known_hosts),
               -1;
    switch (r) {
    case LIBSSH2_KNOWNHOST_CHECK_MATCH:
        return 0;
    case LIBSSH2_KNOWNHOST_CHECK_MISMATCH:
        return fm_err_set(err, FM_ERR_HOSTKEY,
                          "host key CHANGED for node %s (%s): it now offers %s, which differs "
                          "from known_hosts %.160s; refused (possible man-in-the-middle or a "
                          "reinstalled node: verify out of band before replacing the entry)",
                          c->node, hostport, fp, c->cfg->known_hosts),
               -1;
    case LIBSSH2_KNOWNHOST_CHECK_NOTFOUND:
        return fm_err_set(err, FM_ERR_HOSTKEY,
                          "host key for node %s (%s, %s) not in known_hosts %.160s: add it with "
                          "`ssh-keyscan -p %d %s >> %.160s` after verifying that fingerprint "
                          "out of band",
                          c->node, hostport, fp, c->cfg->known_hosts, c->cfg->port, c->addr,
                          c->cfg->known_hosts),
               -1;
    default:
        return fm_err_set(err, FM_ERR_HOSTKEY,
                          "cannot check the host key of node %s against %.200s; refused", c->node,
                          c->cfg->known_hosts),
               -1;
    }
}

static int auth_agent(conn *c, fm_err *err)
{
    LIBSSH2_AGENT *ag = libssh2_agent_init(c->s);
    if (!ag) return fm_err_set(err, FM_ERR_NOMEM, "out of memory for ssh-agent"), -1;
    int rc = -1;
    if (libssh2_agent_connect(ag) != 0) {
        fm_err_set(err, FM_ERR_AUTH, "cannot reach ssh-agent at SSH_AUTH_SOCK: %s",
                   ssh_errmsg(c->s));
        goto done;
    }
    if (libssh2_agent_list_identities(ag) != 0) {
        fm_err_set(err, FM_ERR_AUTH, "ssh-agent lists no identities: %s", ssh_errmsg(c->s));
        goto done;
    }
    struct libssh2_agent_publickey *id = NULL, *prev = NULL;
    for (int i = 0; i < 64 && libssh2_agent_get_identity(ag, &id, prev) == 0; i++, prev = id) {
        int r;
        AGAIN(c, r, libssh2_agent_userauth(ag, c->cfg->user, id));
        if (r == 0) {
            rc = 0;
            goto done;
        }
    }
    fm_err_set(err, FM_ERR_AUTH, "no ssh-agent key accepted for user %s on node %s", c->cfg->user,
               c->node);
    goto done;
timeout:
    fm_err_set(err, FM_ERR_TIMEOUT, "authentication to node %s did not finish within %d ms",
               c->node, c->cfg->connect_timeout_ms);
done:
    libssh2_agent_disconnect(ag);
    libssh2_agent_free(ag);
    return rc;
}

static int authenticate(conn *c, fm_err *err)
{
    if (!c->cfg->key_file[0]) return auth_agent(c, err);
    int r;
    const fm_exec_ssh *x = c->cfg;
    AGAIN(c, r,
          libssh2_userauth_publickey_fromfile_ex(c->s, x->user, (unsigned)strlen(x->user),
                                                 x->pub_file[0] ? x->pub_file : NULL, x->key_file,
                                                 x->passphrase[0] ? x->passphrase : NULL));
    if (r == 0) return 0;
    /* With a .pub file the public key is offered first: a wrong passphrase
     * then shows as a failed signature after the node accepted the key. */
    if (r == LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED)
        return fm_err_set(err, FM_ERR_AUTH,
                          "node %s knows key %.200s but signing with it failed: wrong "
                          "ssh.key_passphrase or an unusable private key",
                          c->node, x->key_file),
               -1;
    if (r == LIBSSH2_ERROR_FILE)
        return fm_err_set(err, FM_ERR_AUTH,
                          "cannot use key %.200s (unreadable, wrong format or wrong "
                          "passphrase): %s",
                          x->key_file, ssh_errmsg(c->s)),
               -1;
    return fm_err_set(err, FM_ERR_AUTH,
                      "key %.200s refused for user %s on node %s: check the node's "
                      "authorized_keys",
                      x->key_file, x->user, c->node),
           -1;
timeout:
    return fm_err_set(err, FM_ERR_TIMEOUT, "authentication to node %s did not finish within %d ms",
                      c->node, x->connect_timeout_ms),
           -1;
}

static int session_open(conn *c, fm_err *err)
{
    c->deadline = mono_ms() + c->cfg->connect_timeout_ms;
    if (tcp_connect(c, err)) return -1;
    c->s = libssh2_session_init();
    if (!c->s) return fm_err_set(err, FM_ERR_NOMEM, "out of memory for an SSH session"), -1;
    libssh2_session_set_blocking(c->s, 0);
    int r;
    AGAIN(c, r, libssh2_session_handshake(c->s, c->fd));
    if (r)
        return fm_err_set(err, FM_ERR_UNAVAILABLE, "SSH handshake with node %s failed: %s", c->node,
                          ssh_errmsg(c->s)),
               -1;
    if (check_host_key(c, err)) return -1;
    return authenticate(c, err);
timeout:
    return fm_err_set(err, FM_ERR_TIMEOUT, "SSH handshake with node %s did not finish within %d ms",
                      c->node, c->cfg->connect_timeout_ms),
           -1;
}

/* Closes politely when the session is healthy, abruptly otherwise; the
 * short blocking timeout keeps a dead peer from holding us here. */
static void session_close(conn *c, bool healthy)
{
    if (c->s) {
        if (!healthy && c->fd >= 0) shutdown(c->fd, SHUT_RDWR);
        libssh2_session_set_blocking(c->s, 1);
        libssh2_session_set_timeout(c->s, 1000);
        if (healthy) libssh2_session_disconnect(c->s, "fleetmcp: done");
        libssh2_session_free(c->s);
        c->s = NULL;
    }
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
}

/* ---- one command ------------------------------------------------------ */

typedef struct sink {
    char *buf;
    size_t len, cap; /* cap: the most we keep */
    size_t dropped;
    bool truncated;
} sink;

static int sink_add(sink *k, const char *data, size_t n)
{
    size_t keep = k->len < k->cap ? k->cap - k->len : 0;
    if (keep > n) keep = n;
    if (keep) {
        memcpy(k->buf + k->len, data, keep);
        k->len += keep;
    }
    if (keep < n) {
        k->truncated = true;
        k->dropped += n - keep;
    }
    return 0;
}

static int run_channel(conn *c, const char *remote, fm_exec_result *out, fm_err *err)
{
    int rc = -1, r;
    LIBSSH2_CHANNEL *ch = NULL;
    sink so = {.cap = c->cfg->max_output}, se = {.cap = FM_EXEC_MAX_STDERR};
    so.buf = malloc(so.cap + 1);
    se.buf = malloc(se.cap + 1);
    if (!so.buf || !se.buf) {
        fm_err_set(err, FM_ERR_NOMEM, "out of memory for command output");
        goto fail;
    }
    c->deadline = mono_ms() + c->cfg->command_timeout_ms;
    for (;;) {
        ch = libssh2_channel_open_session(c->s);
        if (ch || libssh2_session_last_errno(c->s) != LIBSSH2_ERROR_EAGAIN) break;
        if (wait_io(c)) goto timeout;
    }
    if (!ch) {
        fm_err_set(err, FM_ERR_BACKEND, "node %s refused an exec channel: %s", c->node,
                   ssh_errmsg(c->s));
        goto fail;
    }
    AGAIN(c, r, libssh2_channel_exec(ch, remote));
    if (r) {
        fm_err_set(err, FM_ERR_BACKEND, "node %s refused the command: %s", c->node,
                   ssh_errmsg(c->s));
        goto fail;
    }

    /* Past the cap we keep reading and dropping, so the remote command can
     * finish and report its exit status; a command that never stops is cut
     * after DRAIN_FACTOR times the cap (exit status then unknown). */
    bool cut = false;
    char buf[16384];
    for (;;) {
        bool again = true;
        ssize_t n;
        while ((n = libssh2_channel_read_ex(ch, 0, buf, sizeof buf)) > 0) {
            sink_add(&so, buf, (size_t)n);
            again = false;
        }
        if (n < 0 && n != LIBSSH2_ERROR_EAGAIN) goto readfail;
        ssize_t m;
        while ((m = libssh2_channel_read_ex(ch, SSH_EXTENDED_DATA_STDERR, buf, sizeof buf)) > 0) {
            sink_add(&se, buf, (size_t)m);
            again = false;
        }
        if (m < 0 && m != LIBSSH2_ERROR_EAGAIN) goto readfail;
        if (so.dropped + se.dropped > DRAIN_FACTOR * c->cfg->max_output) {
            cut = true;
            break;
        }
        if (libssh2_channel_eof(ch)) break;
        if (again && wait_io(c)) goto timeout;
    }
    if (!cut) {
        AGAIN(c, r, libssh2_channel_close(ch));
        AGAIN(c, r, libssh2_channel_wait_closed(ch));
    }
    char *sig = NULL;
    size_t siglen = 0;
    libssh2_channel_get_exit_signal(ch, &sig, &siglen, NULL, NULL, NULL, NULL);
    out->exit_status = cut ? -1 : libssh2_channel_get_exit_status(ch);
    if (sig) {
        snprintf(out->exit_signal, sizeof out->exit_signal, "%.*s", (int)siglen, sig);
        out->exit_status = -1;
        libssh2_free(c->s, sig);
    }
    so.buf[so.len] = '\0';
    se.buf[se.len] = '\0';
    out->out = so.buf;
    out->out_len = so.len;
    out->truncated = so.truncated;
    out->err_out = se.buf;
    out->err_len = se.len;
    out->err_truncated = se.truncated;
    so.buf = se.buf = NULL;
    rc = cut ? 1 : 0; /* 1: channel left open, close the session abruptly */
    goto done;
readfail:
    fm_err_set(err, FM_ERR_BACKEND, "reading output from node %s failed: %s", c->node,
               ssh_errmsg(c->s));
    goto fail;
timeout:
    fm_err_set(err, FM_ERR_TIMEOUT,
               "command on node %s did not finish within %d ms (ssh.command_timeout_ms); the "
               "channel was closed",
               c->node, c->cfg->command_timeout_ms);
fail:
    rc = -1;
done:
    if (ch && rc != 0) {
        /* Unhealthy: session_close() shuts the socket down first, so
         * freeing cannot block on the peer. */
        shutdown(c->fd, SHUT_RDWR);
    }
    if (ch) {
        libssh2_session_set_blocking(c->s, 1);
        libssh2_session_set_timeout(c->s, 1000);
        libssh2_channel_free(ch);
    }
    free(so.buf);
    free(se.buf);
    return rc;
}

static int ssh_run(void *st, const char *node, fm_cmd_id cmd, const fm_cmd_args *a,
                   fm_exec_result *out, fm_err *err)
{
    fm_exec_ssh *x = st;
    memset(out, 0, sizeof *out);
    out->exit_status = -1;
    int64_t t0 = mono_ms();

    /* Validate everything before a packet leaves. */
    fm_cmd_line line;
    if (fm_cmd_build(cmd, a, x->max_diag_level, &line, err)) return -1;
    char clip[64];
    if (!fm_exec_valid_node(node)) {
        fm_clip(clip, sizeof clip, node ? node : "(null)");
        return fm_err_set(err, FM_ERR_INVALID, "'%s' is not a valid node name", clip), -1;
    }
    const char *addr = json_string_value(json_object_get(x->hosts, node));
    if (!addr)
        return fm_err_set(err, FM_ERR_NOT_FOUND,
                          "node %s has no address in ssh.hosts: add it to the config", node),
               -1;

    conn c = {.cfg = x, .node = node, .addr = addr, .fd = -1};
    int rc = session_open(&c, err);
    if (rc == 0) rc = run_channel(&c, line.remote, out, err);
    session_close(&c, rc == 0);
    out->duration_ms = mono_ms() - t0;
    return rc < 0 ? -1 : 0;
}

static void ssh_close(void *st)
{
    fm_exec_ssh *x = st;
    if (!x) return;
    json_decref(x->hosts);
    /* Passphrase bytes must not linger in freed memory. */
    volatile char *p = x->passphrase;
    for (size_t i = 0; i < sizeof x->passphrase; i++)
        p[i] = 0;
    free(x);
    libssh2_exit();
}

static const struct fm_exec_ops ssh_ops = {
    .name = "ssh",
    .run = ssh_run,
    .close = ssh_close,
};

int fm_exec_ssh_open(const json_t *ssh_section, const struct fm_exec_ops **ops, void **st,
                     fm_err *err)
{
    *ops = NULL;
    *st = NULL;
    if (!json_is_object(ssh_section))
        return fm_err_set(err, FM_ERR_NOT_CONFIGURED, "no ssh section in the config"), -1;
    fm_exec_ssh *x = calloc(1, sizeof *x);
    if (!x) return fm_err_set(err, FM_ERR_NOMEM, "out of memory for the ssh executor"), -1;
    if (libssh2_init(0) != 0) {
        free(x);
        return fm_err_set(err, FM_ERR_INTERNAL, "libssh2_init failed"), -1;
    }
    if (load_config(x, ssh_section, err)) {
        ssh_close(x);
        return -1;
    }
    *ops = &ssh_ops;
    *st = x;
    return 0;
}
