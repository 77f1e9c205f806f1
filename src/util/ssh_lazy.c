/* libssh2, loaded on first use.
 *
 * Linked, libssh2 maps itself and zlib at every start, yet only the SSH executor's
 * sessions use it: node_diag_bundle and remediation steps, never a read
 * of Slurm, metrics or the audit.  So the libssh2 entry points exec_ssh.c
 * calls are defined here and forward to the real library, loaded under
 * pthread_once the first time one of them is called.
 *
 * libssh2_init is the exception: the executor calls it when it opens,
 * which is at start whenever the config has an ssh section.  Here it only
 * counts; the real libssh2_init runs that many times when the library
 * loads, so libssh2's own init/exit count stays paired. */
#include <libssh2.h>
#include <stddef.h>

#include "lazy.h"

#define FM_SSH2_SONAME "libssh2.so.1"

/* X(return type, name, parameters, arguments, value if not loadable);
 * V(name, parameters, arguments) for functions returning nothing. */
#define FM_SSH2_FUNCS(X, V)                                                                        \
    X(LIBSSH2_SESSION *, libssh2_session_init_ex,                                                  \
      (LIBSSH2_ALLOC_FUNC((*a)), LIBSSH2_FREE_FUNC((*f)), LIBSSH2_REALLOC_FUNC((*r)), void *ab),   \
      (a, f, r, ab), NULL)                                                                         \
    X(int, libssh2_session_handshake, (LIBSSH2_SESSION * s, libssh2_socket_t sock), (s, sock), -1) \
    X(int, libssh2_session_disconnect_ex,                                                          \
      (LIBSSH2_SESSION * s, int reason, const char *desc, const char *lang),                       \
      (s, reason, desc, lang), -1)                                                                 \
    X(int, libssh2_session_free, (LIBSSH2_SESSION * s), (s), -1)                                   \
    X(const char *, libssh2_session_hostkey, (LIBSSH2_SESSION * s, size_t * len, int *type),       \
      (s, len, type), NULL)                                                                        \
    X(const char *, libssh2_hostkey_hash, (LIBSSH2_SESSION * s, int hash_type), (s, hash_type),    \
      NULL)                                                                                        \
    X(int, libssh2_session_last_errno, (LIBSSH2_SESSION * s), (s), -1)                             \
    X(int, libssh2_session_last_error,                                                             \
      (LIBSSH2_SESSION * s, char **msg, int *msg_len, int want_buf), (s, msg, msg_len, want_buf),  \
      -1)                                                                                          \
    X(int, libssh2_session_block_directions, (LIBSSH2_SESSION * s), (s), 0)                        \
    V(libssh2_session_set_blocking, (LIBSSH2_SESSION * s, int blocking), (s, blocking))            \
    V(libssh2_session_set_timeout, (LIBSSH2_SESSION * s, long timeout), (s, timeout))              \
    V(libssh2_free, (LIBSSH2_SESSION * s, void *p), (s, p))                                        \
    X(int, libssh2_userauth_publickey_fromfile_ex,                                                 \
      (LIBSSH2_SESSION * s, const char *user, unsigned int user_len, const char *pub,              \
       const char *priv, const char *pass),                                                        \
      (s, user, user_len, pub, priv, pass), -1)                                                    \
    X(LIBSSH2_AGENT *, libssh2_agent_init, (LIBSSH2_SESSION * s), (s), NULL)                       \
    X(int, libssh2_agent_connect, (LIBSSH2_AGENT * a), (a), -1)                                    \
    X(int, libssh2_agent_list_identities, (LIBSSH2_AGENT * a), (a), -1)                            \
    X(int, libssh2_agent_get_identity,                                                             \
      (LIBSSH2_AGENT * a, struct libssh2_agent_publickey * *store,                                 \
       struct libssh2_agent_publickey * prev),                                                     \
      (a, store, prev), -1)                                                                        \
    X(int, libssh2_agent_userauth,                                                                 \
      (LIBSSH2_AGENT * a, const char *user, struct libssh2_agent_publickey *id), (a, user, id),    \
      -1)                                                                                          \
    X(int, libssh2_agent_disconnect, (LIBSSH2_AGENT * a), (a), -1)                                 \
    V(libssh2_agent_free, (LIBSSH2_AGENT * a), (a))                                                \
    X(LIBSSH2_KNOWNHOSTS *, libssh2_knownhost_init, (LIBSSH2_SESSION * s), (s), NULL)              \
    X(int, libssh2_knownhost_readline,                                                             \
      (LIBSSH2_KNOWNHOSTS * h, const char *line, size_t len, int type), (h, line, len, type), -1)  \
    X(int, libssh2_knownhost_checkp,                                                               \
      (LIBSSH2_KNOWNHOSTS * h, const char *host, int port, const char *key, size_t keylen,         \
       int typemask, struct libssh2_knownhost **known),                                            \
      (h, host, port, key, keylen, typemask, known), LIBSSH2_KNOWNHOST_CHECK_FAILURE)              \
    X(int, libssh2_knownhost_get,                                                                  \
      (LIBSSH2_KNOWNHOSTS * h, struct libssh2_knownhost * *store,                                  \
       struct libssh2_knownhost * prev),                                                           \
      (h, store, prev), -1)                                                                        \
    V(libssh2_knownhost_free, (LIBSSH2_KNOWNHOSTS * h), (h))                                       \
    X(LIBSSH2_CHANNEL *, libssh2_channel_open_ex,                                                  \
      (LIBSSH2_SESSION * s, const char *type, unsigned int type_len, unsigned int window,          \
       unsigned int packet, const char *msg, unsigned int msg_len),                                \
      (s, type, type_len, window, packet, msg, msg_len), NULL)                                     \
    X(int, libssh2_channel_process_startup,                                                        \
      (LIBSSH2_CHANNEL * c, const char *req, unsigned int req_len, const char *msg,                \
       unsigned int msg_len),                                                                      \
      (c, req, req_len, msg, msg_len), -1)                                                         \
    X(ssize_t, libssh2_channel_read_ex, (LIBSSH2_CHANNEL * c, int stream, char *buf, size_t len),  \
      (c, stream, buf, len), -1)                                                                   \
    X(int, libssh2_channel_eof, (LIBSSH2_CHANNEL * c), (c), -1)                                    \
    X(int, libssh2_channel_close, (LIBSSH2_CHANNEL * c), (c), -1)                                  \
    X(int, libssh2_channel_wait_closed, (LIBSSH2_CHANNEL * c), (c), -1)                            \
    X(int, libssh2_channel_get_exit_status, (LIBSSH2_CHANNEL * c), (c), -1)                        \
    X(int, libssh2_channel_get_exit_signal,                                                        \
      (LIBSSH2_CHANNEL * c, char **sig, size_t *sig_len, char **msg, size_t *msg_len, char **lang, \
       size_t *lang_len),                                                                          \
      (c, sig, sig_len, msg, msg_len, lang, lang_len), -1)                                         \
    X(int, libssh2_channel_free, (LIBSSH2_CHANNEL * c), (c), -1)

static struct {
    FM_SSH2_FUNCS(FM_LAZY_FIELD, FM_LAZY_VFIELD)
    int (*libssh2_init)(int);
    void (*libssh2_exit)(void);
    int loaded;
} lib;

static pthread_once_t once = PTHREAD_ONCE_INIT;
/* libssh2_init calls made before the library was loaded, and their flags.
 * Like libssh2's own, init and exit are not thread-safe. */
static int pending_inits, pending_flags;

static void load(void)
{
    void *h = fm_lazy_open(FM_SSH2_SONAME, "SSH actions", "libssh2-1");
    if (!h) return;
    FM_SSH2_FUNCS(FM_LAZY_LOAD, FM_LAZY_VLOAD)
    FM_LAZY_SYM(h, lib.libssh2_init, "libssh2_init");
    FM_LAZY_SYM(h, lib.libssh2_exit, "libssh2_exit");
    for (; pending_inits > 0; pending_inits--)
        if (lib.libssh2_init(pending_flags) != 0) return;
    lib.loaded = 1;
}

static int ready(void)
{
    pthread_once(&once, load);
    return lib.loaded;
}

FM_SSH2_FUNCS(FM_LAZY_WRAP, FM_LAZY_VWRAP)

int libssh2_init(int flags)
{
    if (lib.loaded) return lib.libssh2_init(flags);
    pending_inits++;
    pending_flags = flags;
    return 0;
}

void libssh2_exit(void)
{
    if (lib.loaded)
        lib.libssh2_exit();
    else if (pending_inits > 0)
        pending_inits--;
}
