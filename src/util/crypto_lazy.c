/* libcrypto and libcjose, loaded together on first use: see fm_crypto.h.
 *
 * RTLD_LOCAL: their symbols stay out of the global scope, so nothing
 * else resolves against them by accident; libcjose finds libcrypto as its
 * own DT_NEEDED, the same instance as ours.  jansson is linked, so
 * libcjose's json_t and ours are one library. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fleetmcp/fm_crypto.h"
#include "fleetmcp/fm_util.h"
#include "lazy.h"

#define CRYPTO_SONAME "libcrypto.so.3"
#define CJOSE_SONAME "libcjose.so.0"
#define WHAT "the audit chain, approvals, JWT checks and state tokens"

static struct fm_crypto_lib lib;
static bool loaded;
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* dlsym into `field`; POSIX dlsym returns void *, the union converts it
 * without the cast ISO C forbids. */
static bool sym(void *h, const char *soname, const char *package, const char *name, void *field,
                size_t size)
{
    void *p = dlsym(h, name);
    if (!p) {
        fm_log("error", "UNAVAILABLE: %s has no %s: %s are unavailable; install %s", soname, name,
               WHAT, package);
        return false;
    }
    union {
        void *p;
        void (*f)(void);
    } u = {p};
    if (size != sizeof u.f) { /* POSIX function pointers are all one size */
        fm_log("error", "INTERNAL: %s: pointer size %zu, not %zu", name, size, sizeof u.f);
        return false;
    }
    memcpy(field, &u.f, size);
    return true;
}

#define LOAD_C(name)                                                                               \
    if (!sym(c, CRYPTO_SONAME, "libssl3", #name, &lib.name, sizeof lib.name)) return;
#define LOAD_J(name)                                                                               \
    if (!sym(j, CJOSE_SONAME, "libcjose0", #name, &lib.name, sizeof lib.name)) return;

static void load(void)
{
    void *c = fm_lazy_open(CRYPTO_SONAME, WHAT, "libssl3");
    if (!c) return;
    /* libcrypto's names first: a libcrypto that lacks them would also
     * fail libcjose's load, with a message that names the wrong package. */
    FM_CRYPTO_FUNCS(LOAD_C)
    void *j = fm_lazy_open(CJOSE_SONAME, WHAT, "libcjose0");
    if (!j) return;
    FM_CJOSE_FUNCS(LOAD_J)
#undef LOAD_C
#undef LOAD_J
    /* fleetmcp needs SHA-256, HMAC and Ed25519 from the default provider
     * only: skipping the system openssl.cnf (engines, modules) keeps the
     * first audited call cheap and the resident set small. */
    if (!lib.OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, NULL)) {
        fm_log("error", "UNAVAILABLE: %s did not initialise: %s are unavailable; reinstall libssl3",
               CRYPTO_SONAME, WHAT);
        return;
    }
    loaded = true;
}

static bool available(void)
{
    pthread_once(&once, load);
    return loaded;
}

const struct fm_crypto_lib *fm_crypto_lib(void)
{
    if (!available()) {
        fm_log("error", "fleetmcp cannot continue without %s and %s; exiting", CRYPTO_SONAME,
               CJOSE_SONAME);
        exit(69);
    }
    return &lib;
}
