/* Shared by the libraries fleetmcp loads on first use (curl_lazy.c,
 * ssh_lazy.c): each defines the entry points fleetmcp calls,
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

/* A library's entry points are one X-macro list, X(return type, name,
 * parameters, arguments, value if the library cannot be loaded) and
 * V(name, parameters, arguments) for those returning nothing, expanded
 * three times with these: the fields of a `lib` struct of pointers, their
 * dlsym in the loader (handle `h`), and the forwarding definitions, which
 * call the file's `ready()`.  V functions only free or set, so they do
 * nothing when the library was never loaded. */
#define FM_LAZY_FIELD(ret, name, params, args, fail) ret(*name) params;
#define FM_LAZY_VFIELD(name, params, args) void(*name) params;
#define FM_LAZY_LOAD(ret, name, params, args, fail) FM_LAZY_SYM(h, lib.name, #name);
#define FM_LAZY_VLOAD(name, params, args) FM_LAZY_SYM(h, lib.name, #name);
#define FM_LAZY_WRAP(ret, name, params, args, fail)                                                \
    ret name params                                                                                \
    {                                                                                              \
        return ready() ? lib.name args : fail;                                                     \
    }
#define FM_LAZY_VWRAP(name, params, args)                                                          \
    void name params                                                                               \
    {                                                                                              \
        if (lib.loaded) lib.name args;                                                             \
    }

/* All of a library whose entry points only forward: the `lib` table, its
 * loader under pthread_once and the forwarding definitions.  FUNCS is the
 * library's X-macro list. */
#define FM_LAZY_LIBRARY(FUNCS, soname, unavailable, package)                                       \
    static struct {                                                                                \
        FUNCS(FM_LAZY_FIELD, FM_LAZY_VFIELD)                                                       \
        int loaded;                                                                                \
    } lib;                                                                                         \
    static pthread_once_t once = PTHREAD_ONCE_INIT;                                                \
    static void load(void)                                                                         \
    {                                                                                              \
        void *h = fm_lazy_open(soname, unavailable, package);                                      \
        if (!h) return;                                                                            \
        FUNCS(FM_LAZY_LOAD, FM_LAZY_VLOAD)                                                         \
        lib.loaded = 1;                                                                            \
    }                                                                                              \
    static int ready(void)                                                                         \
    {                                                                                              \
        pthread_once(&once, load);                                                                 \
        return lib.loaded;                                                                         \
    }                                                                                              \
    FUNCS(FM_LAZY_WRAP, FM_LAZY_VWRAP)

#endif
