/* Shared by the libraries fleetmcp loads on first use (curl_lazy.c,
 * crypto_lazy.c, ssh_lazy.c): each defines the entry points fleetmcp calls,
 * forwarding to the real library, dlopen'ed once under pthread_once.
 * Linking them instead would map and relocate them at every start, and
 * most processes are short tool calls that never use them. */
#ifndef FM_LAZY_H
#define FM_LAZY_H

#include <dlfcn.h>
#include <pthread.h>

/* dlopen(soname) or log, naming what is unavailable and what to install;
 * NULL on failure. */
void *fm_lazy_open(const char *soname, const char *unavailable, const char *package);

/* Loads libcrypto (crypto_lazy.c) without the system openssl.cnf; 1 when
 * it is usable.  ssh_lazy.c calls it before libssh2, which needs it. */
int fm_crypto_load(void);

/* Sets the function pointer `field` from symbol `name` of handle h, or
 * returns from the enclosing loader.  POSIX dlsym returns void *; the
 * union converts it without the cast ISO C forbids. */
#define FM_LAZY_SYM(h, field, name)                                                                \
    do {                                                                                           \
        union {                                                                                    \
            void *p;                                                                               \
            __typeof__(field) f;                                                                   \
        } u_ = {dlsym(h, name)};                                                                   \
        if (!u_.p) return;                                                                         \
        field = u_.f;                                                                              \
    } while (0)

#endif
