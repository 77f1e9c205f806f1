/* libcurl, loaded on first use.
 *
 * Linking libcurl costs about 6 ms at every process start (measured: an
 * empty program takes 0.75 ms, 6.8 ms once linked with -lcurl), spent in
 * the constructors of what it pulls in (GnuTLS, p11-kit, Kerberos, LDAP).
 * Most fleetmcp processes are short tool calls that never speak HTTP, so
 * the curl entry points we use are defined here and forward to the real
 * library, dlopen'ed the first time any of them is called.  The handle
 * and function pointers are written once under pthread_once and never
 * change afterwards, like the dynamic linker's own tables. */
#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>
#include <stdarg.h>
#include <stddef.h>

#include "lazy.h"

#define FM_CURL_SONAME "libcurl.so.4"

static struct {
    CURLcode (*global_init)(long);
    void (*global_cleanup)(void);
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_perform)(CURL *);
    void (*easy_cleanup)(CURL *);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    const char *(*easy_strerror)(CURLcode);
    char *(*easy_escape)(CURL *, const char *, int);
    void (*free)(void *);
    struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
    void (*slist_free_all)(struct curl_slist *);
    curl_mime *(*mime_init)(CURL *);
    void (*mime_free)(curl_mime *);
    curl_mimepart *(*mime_addpart)(curl_mime *);
    CURLcode (*mime_name)(curl_mimepart *, const char *);
    CURLcode (*mime_filename)(curl_mimepart *, const char *);
    CURLcode (*mime_type)(curl_mimepart *, const char *);
    CURLcode (*mime_data)(curl_mimepart *, const char *, size_t);
    int loaded;
} lib;

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void)
{
    void *h = fm_lazy_open(FM_CURL_SONAME, "HTTP backends", "libcurl4");
    if (!h) return;
#define SYM(field, name) FM_LAZY_SYM(h, lib.field, name)
    SYM(global_init, "curl_global_init");
    SYM(global_cleanup, "curl_global_cleanup");
    SYM(easy_init, "curl_easy_init");
    SYM(easy_setopt, "curl_easy_setopt");
    SYM(easy_perform, "curl_easy_perform");
    SYM(easy_cleanup, "curl_easy_cleanup");
    SYM(easy_getinfo, "curl_easy_getinfo");
    SYM(easy_strerror, "curl_easy_strerror");
    SYM(easy_escape, "curl_easy_escape");
    SYM(free, "curl_free");
    SYM(slist_append, "curl_slist_append");
    SYM(slist_free_all, "curl_slist_free_all");
    SYM(mime_init, "curl_mime_init");
    SYM(mime_free, "curl_mime_free");
    SYM(mime_addpart, "curl_mime_addpart");
    SYM(mime_name, "curl_mime_name");
    SYM(mime_filename, "curl_mime_filename");
    SYM(mime_type, "curl_mime_type");
    SYM(mime_data, "curl_mime_data");
#undef SYM
    lib.loaded = 1;
}

static int ready(void)
{
    pthread_once(&once, load);
    return lib.loaded;
}

CURLcode curl_global_init(long flags)
{
    return ready() ? lib.global_init(flags) : CURLE_FAILED_INIT;
}

void curl_global_cleanup(void)
{
    /* Nothing to clean if curl was never loaded. */
    if (lib.loaded) lib.global_cleanup();
}

CURL *curl_easy_init(void)
{
    return ready() ? lib.easy_init() : NULL;
}

/* Forwards the one variadic argument by the option's type range, the way
 * curl itself classifies options (CURLOPTTYPE_*). */
CURLcode curl_easy_setopt(CURL *h, CURLoption opt, ...)
{
    if (!ready()) return CURLE_FAILED_INIT;
    va_list ap;
    va_start(ap, opt);
    CURLcode rc;
    if (opt < CURLOPTTYPE_OBJECTPOINT) {
        long v = va_arg(ap, long);
        rc = lib.easy_setopt(h, opt, v);
    } else if (opt < CURLOPTTYPE_FUNCTIONPOINT) {
        void *v = va_arg(ap, void *);
        rc = lib.easy_setopt(h, opt, v);
    } else if (opt < CURLOPTTYPE_OFF_T) {
        void (*v)(void) = va_arg(ap, void (*)(void));
        rc = lib.easy_setopt(h, opt, v);
    } else if (opt < CURLOPTTYPE_BLOB) {
        curl_off_t v = va_arg(ap, curl_off_t);
        rc = lib.easy_setopt(h, opt, v);
    } else {
        void *v = va_arg(ap, void *);
        rc = lib.easy_setopt(h, opt, v);
    }
    va_end(ap);
    return rc;
}

CURLcode curl_easy_perform(CURL *h)
{
    return ready() ? lib.easy_perform(h) : CURLE_FAILED_INIT;
}

void curl_easy_cleanup(CURL *h)
{
    if (ready()) lib.easy_cleanup(h);
}

/* Every CURLINFO takes one pointer argument. */
CURLcode curl_easy_getinfo(CURL *h, CURLINFO info, ...)
{
    if (!ready()) return CURLE_FAILED_INIT;
    va_list ap;
    va_start(ap, info);
    void *p = va_arg(ap, void *);
    va_end(ap);
    return lib.easy_getinfo(h, info, p);
}

const char *curl_easy_strerror(CURLcode code)
{
    return ready() ? lib.easy_strerror(code) : "libcurl could not be loaded";
}

char *curl_easy_escape(CURL *h, const char *s, int len)
{
    return ready() ? lib.easy_escape(h, s, len) : NULL;
}

void curl_free(void *p)
{
    if (ready()) lib.free(p);
}

struct curl_slist *curl_slist_append(struct curl_slist *l, const char *s)
{
    return ready() ? lib.slist_append(l, s) : NULL;
}

void curl_slist_free_all(struct curl_slist *l)
{
    if (ready()) lib.slist_free_all(l);
}

curl_mime *curl_mime_init(CURL *h)
{
    return ready() ? lib.mime_init(h) : NULL;
}

void curl_mime_free(curl_mime *m)
{
    if (ready()) lib.mime_free(m);
}

curl_mimepart *curl_mime_addpart(curl_mime *m)
{
    return ready() ? lib.mime_addpart(m) : NULL;
}

CURLcode curl_mime_name(curl_mimepart *p, const char *name)
{
    return ready() ? lib.mime_name(p, name) : CURLE_FAILED_INIT;
}

CURLcode curl_mime_filename(curl_mimepart *p, const char *name)
{
    return ready() ? lib.mime_filename(p, name) : CURLE_FAILED_INIT;
}

CURLcode curl_mime_type(curl_mimepart *p, const char *type)
{
    return ready() ? lib.mime_type(p, type) : CURLE_FAILED_INIT;
}

CURLcode curl_mime_data(curl_mimepart *p, const char *data, size_t size)
{
    return ready() ? lib.mime_data(p, data, size) : CURLE_FAILED_INIT;
}
