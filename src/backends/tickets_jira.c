/* Jira tickets over REST API v2 (Cloud and Data Center) with libcurl.
 * Search is the one call that differs: Atlassian removed /rest/api/2/search
 * from Cloud in 2025 (410 Gone), so Cloud gets the enhanced search
 * (/rest/api/3/search/jql, token paging) and Data Center and Server keep
 * /rest/api/2/search (startAt paging).  jira.deployment names the kind, or
 * auto asks /rest/api/2/serverInfo once.  The search asks for no rich-text
 * field, so v3's Atlassian Document Format never has to be read; every
 * write stays on v2, which both kinds serve with plain text.
 *
 * Safety: only http/https, no redirects, timeouts on every request, a cap
 * on response size, verbose off.  The credential goes to curl through
 * CURLOPT_USERNAME/PASSWORD (Basic) or CURLOPT_XOAUTH2_BEARER (Bearer),
 * never into a URL, a header string we build, a log line or an error
 * message.  429 and 5xx are retried with backoff that honours Retry-After
 * within a total budget; other answers come back with Jira's own
 * errorMessages / errors, clipped. */
#include "fleetmcp/fm_tickets.h"

#include <ctype.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "fleetmcp/fm_config.h"
#include "fleetmcp/fm_util.h"

#define API "/rest/api/2"
#define CLOUD_SEARCH "/rest/api/3/search/jql"

typedef enum { DEPLOY_AUTO = 0, DEPLOY_CLOUD = 1, DEPLOY_DC = 2 } jira_deploy;

typedef enum { AUTH_BASIC = 0, AUTH_BEARER = 1 } jira_auth;

typedef struct jira_st {
    char base[512]; /* no trailing slash */
    char project[64];
    char issue_type[128];
    char close_transition[128]; /* "" : the first transition into a done status */
    json_t *priority_map;       /* owned copies, may be NULL */
    json_t *labels;
    json_t *custom_fields; /* normalized name -> "customfield_NNNNN" */
    jira_auth auth;
    char email[256];
    char secret[1024]; /* API token or PAT; wiped on destroy */
    long timeout_ms, connect_timeout_ms, budget_ms;
    int retries;
    size_t max_resp;
    char ca_file[512];
    _Atomic int deploy; /* jira_deploy; AUTO until serverInfo answered */
} jira_st;

/* ---- set-up ---------------------------------------------------------- */

static bool url_ok(const char *u)
{
    const char *p = !strncmp(u, "https://", 8) ? u + 8 : !strncmp(u, "http://", 7) ? u + 7 : NULL;
    if (!p || !*p) return false;
    /* userinfo in the URL would put a credential where it can be logged */
    size_t host = strcspn(p, "/?#");
    if (memchr(p, '@', host)) return false;
    for (const char *c = u; *c; c++)
        if ((unsigned char)*c <= 0x20 || *c == 0x7f) return false;
    return true;
}

static void wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;
    while (n--)
        *v++ = 0;
}

static void jira_destroy(void *st)
{
    jira_st *j = st;
    if (!j) return;
    json_decref(j->priority_map);
    json_decref(j->labels);
    json_decref(j->custom_fields);
    wipe(j->secret, sizeof j->secret);
    free(j);
    curl_global_cleanup();
}

void *fm_tickets_jira_new(const json_t *sec, fm_err *err)
{
    const char *url = fm_cfg_str(sec, "url", NULL);
    const char *project = fm_cfg_str(sec, "project", NULL);
    const json_t *auth = json_object_get(sec, "auth");
    if (!url || !url_ok(url)) {
        fm_err_set(err, FM_ERR_NOT_CONFIGURED,
                   "jira.url must be an http(s) URL without credentials, e.g. "
                   "https://example.atlassian.net");
        return NULL;
    }
    if (!project || !*project || strlen(project) > 32) {
        fm_err_set(err, FM_ERR_NOT_CONFIGURED, "jira.project must name the project key, e.g. OPS");
        return NULL;
    }
    if (!json_is_object(auth)) {
        fm_err_set(err, FM_ERR_NOT_CONFIGURED,
                   "jira.auth must be {email, token} or {pat} with {env: NAME} or {file: PATH}");
        return NULL;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fm_err_set(err, FM_ERR_INTERNAL, "libcurl failed to initialise");
        return NULL;
    }
    jira_st *j = calloc(1, sizeof *j);
    if (!j) {
        curl_global_cleanup();
        fm_err_set(err, FM_ERR_NOMEM, "out of memory opening jira");
        return NULL;
    }
    snprintf(j->base, sizeof j->base, "%s", url);
    size_t n = strlen(j->base);
    while (n && j->base[n - 1] == '/')
        j->base[--n] = '\0';
    snprintf(j->project, sizeof j->project, "%s", project);
    snprintf(j->issue_type, sizeof j->issue_type, "%s", fm_cfg_str(sec, "issue_type", "Task"));
    snprintf(j->close_transition, sizeof j->close_transition, "%s",
             fm_cfg_str(sec, "close_transition", ""));
    snprintf(j->ca_file, sizeof j->ca_file, "%s", fm_cfg_str(sec, "ca_file", ""));
    const char *dep = fm_cfg_str(sec, "deployment", "auto");
    if (!strcmp(dep, "cloud")) {
        j->deploy = DEPLOY_CLOUD;
    } else if (!strcmp(dep, "datacenter")) {
        j->deploy = DEPLOY_DC;
    } else if (strcmp(dep, "auto") != 0) {
        fm_err_set(err, FM_ERR_NOT_CONFIGURED, "jira.deployment must be auto, cloud or datacenter");
        jira_destroy(j);
        return NULL;
    }
    const json_t *v;
    if (json_is_object(v = json_object_get(sec, "priority_map")))
        j->priority_map = json_deep_copy(v);
    if (json_is_array(v = json_object_get(sec, "labels"))) j->labels = json_deep_copy(v);
    if (json_is_object(v = json_object_get(sec, "custom_fields")))
        j->custom_fields = json_deep_copy(v);
    long long t = fm_cfg_int(sec, "timeout_ms", 10000);
    j->timeout_ms = t < 100 ? 100 : t > 120000 ? 120000 : (long)t;
    t = fm_cfg_int(sec, "connect_timeout_ms", 5000);
    j->connect_timeout_ms = t < 100 ? 100 : t > 60000 ? 60000 : (long)t;
    t = fm_cfg_int(sec, "retries", 3);
    j->retries = t < 0 ? 0 : t > 10 ? 10 : (int)t;
    t = fm_cfg_int(sec, "retry_budget_ms", 30000);
    j->budget_ms = t < 0 ? 0 : t > 300000 ? 300000 : (long)t;
    t = fm_cfg_int(sec, "max_response_bytes", 4 << 20);
    j->max_resp = t < 4096 ? 4096 : t > (64 << 20) ? (64u << 20) : (size_t)t;

    const json_t *pat = json_object_get(auth, "pat");
    const json_t *tok = json_object_get(auth, "token");
    const char *email = fm_cfg_str(auth, "email", NULL);
    int rc;
    if (pat) {
        j->auth = AUTH_BEARER;
        rc = fm_secret_resolve(pat, j->secret, sizeof j->secret, err);
    } else if (tok && email && *email && !strchr(email, ':')) {
        j->auth = AUTH_BASIC;
        snprintf(j->email, sizeof j->email, "%s", email);
        rc = fm_secret_resolve(tok, j->secret, sizeof j->secret, err);
    } else {
        rc = fm_err_set(err, FM_ERR_NOT_CONFIGURED,
                        "jira.auth needs email and token (Basic) or pat (Bearer)");
    }
    if (rc) {
        jira_destroy(j);
        return NULL;
    }
    /* a token file usually ends with a newline */
    n = strlen(j->secret);
    while (n && (j->secret[n - 1] == '\n' || j->secret[n - 1] == '\r' || j->secret[n - 1] == ' '))
        j->secret[--n] = '\0';
    if (!n) {
        fm_err_set(err, FM_ERR_NOT_CONFIGURED, "jira credential is empty");
        jira_destroy(j);
        return NULL;
    }
    return j;
}

/* ---- HTTP ------------------------------------------------------------ */

typedef struct resp {
    char *buf;
    size_t len, cap, max;
    bool over;
    long retry_after; /* seconds; -1: none */
} resp;

static size_t on_body(char *p, size_t sz, size_t nm, void *ud)
{
    resp *r = ud;
    size_t k = sz * nm;
    if (r->len + k > r->max) {
        r->over = true;
        return 0; /* CURLE_WRITE_ERROR: stop reading */
    }
    if (r->len + k + 1 > r->cap) {
        size_t nc = r->cap ? r->cap : 4096;
        while (nc < r->len + k + 1)
            nc *= 2;
        char *nb = realloc(r->buf, nc);
        if (!nb) return 0;
        r->buf = nb;
        r->cap = nc;
    }
    memcpy(r->buf + r->len, p, k);
    r->len += k;
    r->buf[r->len] = '\0';
    return k;
}

static size_t on_header(char *p, size_t sz, size_t nm, void *ud)
{
    resp *r = ud;
    size_t k = sz * nm;
    if (k >= 5 && !strncmp(p, "HTTP/", 5)) r->retry_after = -1; /* a new response */
    if (k > 12 && !strncasecmp(p, "Retry-After:", 12)) {
        /* seconds only: an HTTP date is treated as "no hint" (backoff) */
        const char *q = p + 12;
        const char *e = p + k;
        while (q < e && (*q == ' ' || *q == '\t'))
            q++;
        long v = 0;
        bool digits = false;
        while (q < e && isdigit((unsigned char)*q) && v < 100000) {
            v = v * 10 + (*q++ - '0');
            digits = true;
        }
        if (digits) r->retry_after = v;
    }
    return k;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* Jira's errorMessages and errors, clipped, into out. */
static void jira_messages(const resp *r, char *out, size_t outlen)
{
    out[0] = '\0';
    json_t *b = r->buf ? json_loadb(r->buf, r->len, 0, NULL) : NULL;
    size_t used = 0;
    char piece[160];
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(b, "errorMessages"), i, v)
    {
        if (!json_is_string(v) || i >= 4) continue;
        fm_clip(piece, sizeof piece, json_string_value(v));
        used += (size_t)snprintf(out + used, used < outlen ? outlen - used : 0, "%s%s",
                                 used ? "; " : "", piece);
        if (used >= outlen) break;
    }
    const char *k;
    int nerr = 0;
    json_object_foreach(json_object_get(b, "errors"), k, v)
    {
        if (!json_is_string(v) || nerr++ >= 4 || used >= outlen) continue;
        char kc[64];
        fm_clip(kc, sizeof kc, k);
        fm_clip(piece, sizeof piece, json_string_value(v));
        used += (size_t)snprintf(out + used, used < outlen ? outlen - used : 0, "%s%s: %s",
                                 used ? "; " : "", kc, piece);
    }
    if (!out[0]) snprintf(out, outlen, "%s", b ? "no error message" : "no JSON error body");
    json_decref(b);
}

static fm_code status_code(long status)
{
    switch (status) {
    case 400:
        return FM_ERR_INVALID;
    case 401:
    case 403:
        return FM_ERR_AUTH;
    case 404:
        return FM_ERR_NOT_FOUND;
    case 409:
        return FM_ERR_CONFLICT;
    case 413:
        return FM_ERR_TOO_LARGE;
    case 429:
        return FM_ERR_RATE_LIMITED;
    default:
        return status >= 500 ? FM_ERR_UNAVAILABLE : FM_ERR_BACKEND;
    }
}

static const char *status_hint(long status)
{
    switch (status) {
    case 400:
        return "check the fields and jira.custom_fields";
    case 401:
        return "check jira.auth (email and token, or pat)";
    case 403:
        return "the Jira user lacks permission in this project";
    case 404:
        return "check the key and jira.project";
    case 429:
        return "Jira rate limit; try again later";
    default:
        return status >= 500 ? "Jira is failing; try again later" : "see Jira's message";
    }
}

/* One Jira call.  body (borrowed, may be NULL) is sent as JSON; att, if
 * not NULL, as a multipart "file" part instead.  *out gets the parsed
 * answer (new) or NULL for an empty one.  Returns 0 or sets err. */
static int jira_call(jira_st *j, const char *method, const char *path, const json_t *body,
                     const char *att_name, const void *att, size_t att_len, json_t **out,
                     fm_err *err)
{
    if (out) *out = NULL;
    char url[1200];
    if ((size_t)snprintf(url, sizeof url, "%s%s", j->base, path) >= sizeof url)
        return fm_err_set(err, FM_ERR_INVALID, "jira request path too long");
    char *payload = body ? json_dumps(body, JSON_COMPACT) : NULL;
    if (body && !payload) return fm_err_set(err, FM_ERR_NOMEM, "out of memory encoding a request");

    CURL *c = curl_easy_init();
    if (!c) {
        free(payload);
        return fm_err_set(err, FM_ERR_NOMEM, "libcurl could not make a handle");
    }
    resp r = {.max = j->max_resp, .retry_after = -1};
    struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");
    curl_mime *mime = NULL;
    if (att) {
        /* Jira refuses attachments without this (XSRF check). */
        h = curl_slist_append(h, "X-Atlassian-Token: no-check");
        mime = curl_mime_init(c);
        curl_mimepart *part = curl_mime_addpart(mime);
        curl_mime_name(part, "file");
        curl_mime_filename(part, att_name);
        curl_mime_type(part, "application/octet-stream");
        curl_mime_data(part, att_len ? att : "", att_len);
        curl_easy_setopt(c, CURLOPT_MIMEPOST, mime);
    } else if (payload) {
        h = curl_slist_append(h, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, payload);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(payload));
    }
    h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (!strcmp(method, "GET")) curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_VERBOSE, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, j->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, j->connect_timeout_ms);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "fleetmcp");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    if (j->ca_file[0]) curl_easy_setopt(c, CURLOPT_CAINFO, j->ca_file);
    if (j->auth == AUTH_BASIC) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERNAME, j->email);
        curl_easy_setopt(c, CURLOPT_PASSWORD, j->secret);
    } else {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
        curl_easy_setopt(c, CURLOPT_XOAUTH2_BEARER, j->secret);
    }

    int64_t start = mono_ms();
    int rc = -1;
    char msg[320];
    for (int attempt = 0;; attempt++) {
        if (attempt > 0) {
            /* A retry never runs past the total budget by more than 1 s. */
            long left = j->budget_ms - (long)(mono_ms() - start);
            long t = left < 1000 ? 1000 : left;
            curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, t < j->timeout_ms ? t : j->timeout_ms);
        }
        r.len = 0;
        r.over = false;
        r.retry_after = -1;
        if (r.buf) r.buf[0] = '\0';
        CURLcode cc = curl_easy_perform(c);
        long status = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        bool retry = false;
        fm_code fail = FM_OK;
        if (cc != CURLE_OK) {
            if (r.over) {
                fm_err_set(err, FM_ERR_TOO_LARGE,
                           "jira %s %s answered more than %zu bytes; raise "
                           "jira.max_response_bytes or narrow the request",
                           method, path, r.max);
                break;
            }
            /* Only a refused connection is safe to repeat: the request
             * never reached Jira, so nothing can be created twice. */
            retry = cc == CURLE_COULDNT_CONNECT;
            fail = cc == CURLE_OPERATION_TIMEDOUT ? FM_ERR_TIMEOUT : FM_ERR_UNAVAILABLE;
            snprintf(msg, sizeof msg, "%s", curl_easy_strerror(cc));
        } else if (status >= 200 && status < 300) {
            if (out && r.len) {
                json_error_t je;
                *out = json_loadb(r.buf, r.len, 0, &je);
                if (!*out) {
                    fm_err_set(err, FM_ERR_PARSE, "jira %s %s answered invalid JSON (%s)", method,
                               path, je.text);
                    break;
                }
            }
            rc = 0;
            break;
        } else {
            retry = status == 429 || status >= 500;
            fail = status_code(status);
            jira_messages(&r, msg, sizeof msg);
        }
        long wait = r.retry_after >= 0
                        ? r.retry_after * 1000L
                        : (250L << (attempt < 5 ? attempt : 5)) + (long)(mono_ms() % 100);
        int64_t spent = mono_ms() - start;
        if (retry && attempt < j->retries && spent + wait <= j->budget_ms) {
            sleep_ms(wait);
            continue;
        }
        if (cc != CURLE_OK)
            fm_err_set(err, fail, "jira %s %s failed after %d attempt(s): %s; check jira.url",
                       method, path, attempt + 1, msg);
        else if (status == 429 && r.retry_after >= 0)
            fm_err_set(err, fail,
                       "jira %s %s answered 429 after %d attempt(s): %s; Jira asks to retry "
                       "after %ld s",
                       method, path, attempt + 1, msg, r.retry_after);
        else
            fm_err_set(err, fail, "jira %s %s answered %ld: %s; %s", method, path, status, msg,
                       status_hint(status));
        /* Jira's messages may quote the request back. */
        const char *secrets[] = {j->secret, NULL};
        if (err) fm_scrub(err->text, secrets);
        break;
    }
    curl_easy_cleanup(c);
    curl_mime_free(mime);
    curl_slist_free_all(h);
    free(payload);
    free(r.buf);
    return rc;
}

/* ---- normalizing Jira's answers -------------------------------------- */

static json_t *browse_url(const jira_st *j, const char *key)
{
    char u[700];
    snprintf(u, sizeof u, "%s/browse/%s", j->base, key);
    return json_string(u);
}

static const char *cf_id(const jira_st *j, const char *name)
{
    return json_string_value(json_object_get(j->custom_fields, name));
}

static json_t *str_or_null(const json_t *v, size_t max)
{
    return json_is_string(v) ? fm_ticket_str_clip(json_string_value(v), max) : json_null();
}

static json_t *from_label(const json_t *labels, const char *prefix)
{
    size_t n = strlen(prefix), i;
    json_t *v;
    json_array_foreach(labels, i, v)
    {
        const char *s = json_string_value(v);
        if (s && !strncmp(s, prefix, n) && s[n]) return fm_ticket_str_clip(s + n, 128);
    }
    return json_null();
}

static json_t *normalize(const jira_st *j, const json_t *issue, bool full, fm_err *err)
{
    const char *key = json_string_value(json_object_get(issue, "key"));
    const json_t *f = json_object_get(issue, "fields");
    if (!key || !fm_ticket_key_valid(key) || !json_is_object(f)) {
        fm_err_set(err, FM_ERR_PARSE, "jira answered an issue without a valid key or fields");
        return NULL;
    }
    json_t *t = json_object();
    json_object_set_new(t, "backend", json_string("jira"));
    json_object_set_new(t, "key", json_string(key));
    json_object_set_new(t, "summary", str_or_null(json_object_get(f, "summary"), 1024));
    if (json_is_null(json_object_get(t, "summary")))
        json_object_set_new(t, "summary", json_string(""));
    if (full)
        json_object_set_new(
            t, "description",
            str_or_null(json_object_get(f, "description"), FM_TICKET_MAX_DESCRIPTION));
    const json_t *st = json_object_get(f, "status");
    json_t *sname = str_or_null(json_object_get(st, "name"), 64);
    json_object_set_new(t, "status", json_is_null(sname) ? json_string("") : sname);
    if (json_is_null(sname)) json_decref(sname);
    const char *cat =
        json_string_value(json_object_get(json_object_get(st, "statusCategory"), "key"));
    json_object_set_new(t, "open", json_boolean(!cat || strcmp(cat, "done") != 0));

    json_t *labels = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(f, "labels"), i, v)
    {
        if (i >= 100) break;
        if (json_is_string(v))
            json_array_append_new(labels, fm_ticket_str_clip(json_string_value(v), 255));
    }
    const char *cf;
    json_t *node = (cf = cf_id(j, "node")) ? str_or_null(json_object_get(f, cf), 128) : json_null();
    if (json_is_null(node)) {
        json_decref(node);
        node = from_label(labels, "node-");
    }
    json_t *fc =
        (cf = cf_id(j, "fault_class")) ? str_or_null(json_object_get(f, cf), 128) : json_null();
    if (json_is_null(fc)) {
        json_decref(fc);
        fc = from_label(labels, "fault-");
    }
    json_object_set_new(t, "node", node);
    json_object_set_new(t, "fault_class", fc);
    json_object_set_new(t, "priority",
                        str_or_null(json_object_get(json_object_get(f, "priority"), "name"), 64));
    json_object_set_new(t, "labels", labels);
    json_t *cr = str_or_null(json_object_get(f, "created"), 40);
    json_t *up = str_or_null(json_object_get(f, "updated"), 40);
    json_object_set_new(t, "created", json_is_null(cr) ? (json_decref(cr), json_string("")) : cr);
    json_object_set_new(t, "updated", json_is_null(up) ? (json_decref(up), json_string("")) : up);
    json_object_set_new(t, "url", browse_url(j, key));

    const json_t *com = json_object_get(f, "comment");
    const json_t *coms = json_object_get(com, "comments");
    json_int_t ncom = json_is_integer(json_object_get(com, "total"))
                          ? json_integer_value(json_object_get(com, "total"))
                          : (json_int_t)json_array_size(coms);
    json_object_set_new(t, "comments_count", json_integer(ncom < 0 ? 0 : ncom));
    json_object_set_new(
        t, "attachments_count",
        json_integer((json_int_t)json_array_size(json_object_get(f, "attachment"))));

    json_t *ctx = json_object();
    const char *name;
    json_object_foreach(j->custom_fields, name, v)
    {
        if (!strcmp(name, "node") || !strcmp(name, "fault_class") || !json_is_string(v)) continue;
        json_t *val = json_object_get(f, json_string_value(v));
        if (json_is_string(val))
            json_object_set_new(ctx, name, fm_ticket_str_clip(json_string_value(val), 2000));
        else if (json_is_number(val))
            json_object_set(ctx, name, val);
    }
    json_object_set_new(t, "context", ctx);

    if (full) {
        json_t *out = json_array();
        size_t n = json_array_size(coms);
        for (size_t k = n > FM_TICKET_MAX_COMMENTS ? n - FM_TICKET_MAX_COMMENTS : 0; k < n; k++) {
            const json_t *c = json_array_get(coms, k);
            const json_t *a = json_object_get(c, "author");
            const char *who = fm_json_str(a, "displayName", fm_json_str(a, "name", NULL));
            json_t *o = json_object();
            json_object_set_new(o, "author", who ? fm_ticket_str_clip(who, 128) : json_string(""));
            json_t *cc = str_or_null(json_object_get(c, "created"), 40);
            json_object_set_new(o, "created",
                                json_is_null(cc) ? (json_decref(cc), json_string("")) : cc);
            json_t *bd = str_or_null(json_object_get(c, "body"), FM_TICKET_MAX_COMMENT_BODY);
            json_object_set_new(o, "body",
                                json_is_null(bd) ? (json_decref(bd), json_string("")) : bd);
            json_array_append_new(out, o);
        }
        json_object_set_new(t, "comments", out);
    }
    return t;
}

/* ---- operations ------------------------------------------------------ */

/* {"name": <Jira priority>} from the severity through priority_map, if
 * it maps to one. */
static void set_priority(const jira_st *j, json_t *jf, const json_t *fields)
{
    const char *prio = fm_ticket_priority(j->priority_map, fields);
    if (prio) json_object_set_new(jf, "priority", json_pack("{s:s}", "name", prio));
}

/* Custom field values: strings and numbers as they are, anything else as
 * compact JSON text (Jira text fields take strings). */
static void set_custom_fields(const jira_st *j, json_t *jf, const json_t *fields)
{
    const char *name;
    json_t *id;
    json_object_foreach(j->custom_fields, name, id)
    {
        json_t *v = json_object_get(fields, name);
        if (!v || json_is_null(v) || !json_is_string(id)) continue;
        if (json_is_string(v) || json_is_number(v)) {
            json_object_set(jf, json_string_value(id), v);
        } else {
            char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
            if (s) json_object_set_new(jf, json_string_value(id), fm_ticket_str_clip(s, 2000));
            free(s);
        }
    }
}

static json_t *jira_create(void *st, const json_t *fields, fm_err *err)
{
    jira_st *j = st;
    const char *summary = fm_json_str(fields, "summary", NULL);
    if (!summary || !*summary) {
        fm_err_set(err, FM_ERR_INVALID, "a ticket needs a summary");
        return NULL;
    }
    json_t *jf = json_object();
    json_t *proj = json_object();
    json_object_set_new(proj, "key", json_string(j->project));
    json_object_set_new(jf, "project", proj);
    json_object_set_new(jf, "summary", fm_ticket_summary(summary));
    json_t *it = json_object();
    json_object_set_new(it, "name", json_string(j->issue_type));
    json_object_set_new(jf, "issuetype", it);
    char *desc = fm_ticket_render(fields, fm_json_str(fields, "description", NULL));
    json_object_set_new(jf, "description", json_string(desc ? desc : ""));
    free(desc);
    json_object_set_new(jf, "labels", fm_ticket_labels(fields, j->labels));
    set_priority(j, jf, fields);
    set_custom_fields(j, jf, fields);
    json_t *body = json_object();
    json_object_set_new(body, "fields", jf);
    json_t *ans = NULL;
    int rc = jira_call(j, "POST", API "/issue", body, NULL, NULL, 0, &ans, err);
    json_decref(body);
    if (rc) return NULL;
    const char *key = json_string_value(json_object_get(ans, "key"));
    if (!key || !fm_ticket_key_valid(key)) {
        json_decref(ans);
        fm_err_set(err, FM_ERR_PARSE, "jira create answered without a valid issue key");
        return NULL;
    }
    json_t *out = json_object();
    json_object_set_new(out, "key", json_string(key));
    json_object_set_new(out, "url", browse_url(j, key));
    json_object_set_new(out, "deduplicated", json_false());
    json_decref(ans);
    return out;
}

static void field_list(const jira_st *j, char *out, size_t len, bool full)
{
    size_t n = (size_t)snprintf(out, len,
                                "summary,status,priority,labels,created,updated,"
                                "comment,attachment%s",
                                full ? ",description" : "");
    const char *name;
    json_t *id;
    json_object_foreach(j->custom_fields, name, id)
    {
        if (json_is_string(id) && n < len)
            n += (size_t)snprintf(out + n, len - n, ",%s", json_string_value(id));
    }
}

static json_t *jira_get(void *st, const char *key, fm_err *err)
{
    jira_st *j = st;
    char fl[600], path[800];
    field_list(j, fl, sizeof fl, true);
    snprintf(path, sizeof path, API "/issue/%s?fields=%s", key, fl);
    json_t *ans = NULL;
    if (jira_call(j, "GET", path, NULL, NULL, NULL, 0, &ans, err)) return NULL;
    json_t *t = normalize(j, ans, true, err);
    json_decref(ans);
    return t;
}

static int jira_update(void *st, const char *key, const json_t *fields, fm_err *err)
{
    jira_st *j = st;
    json_t *jf = json_object();
    const char *s;
    if ((s = fm_json_str(fields, "summary", NULL)))
        json_object_set_new(jf, "summary", fm_ticket_summary(s));
    if ((s = fm_json_str(fields, "description", NULL)))
        json_object_set_new(jf, "description", fm_ticket_str_clip(s, FM_TICKET_MAX_DESCRIPTION));
    if (json_object_get(fields, "severity")) set_priority(j, jf, fields);
    set_custom_fields(j, jf, fields);
    json_t *body = json_object();
    if (json_object_size(jf))
        json_object_set_new(body, "fields", jf);
    else
        json_decref(jf);
    const json_t *lab = json_object_get(fields, "labels");
    if (json_array_size(lab)) {
        json_t *ops = json_array();
        size_t i;
        json_t *v;
        json_array_foreach(lab, i, v)
        {
            char l[256];
            fm_ticket_label(l, sizeof l, "", json_string_value(v) ? json_string_value(v) : "");
            if (!l[0]) continue;
            json_t *op = json_object();
            json_object_set_new(op, "add", json_string(l));
            json_array_append_new(ops, op);
        }
        json_t *upd = json_object();
        json_object_set_new(upd, "labels", ops);
        json_object_set_new(body, "update", upd);
    }
    int rc = 0;
    if (json_object_size(body)) {
        char path[128];
        snprintf(path, sizeof path, API "/issue/%s", key);
        rc = jira_call(j, "PUT", path, body, NULL, NULL, 0, NULL, err);
    }
    json_decref(body);
    return rc;
}

static int jira_comment(void *st, const char *key, const char *text, fm_err *err)
{
    jira_st *j = st;
    char path[128];
    snprintf(path, sizeof path, API "/issue/%s/comment", key);
    json_t *body = json_object();
    json_object_set_new(body, "body", fm_ticket_str_clip(text, FM_TICKET_MAX_DESCRIPTION));
    json_t *ans = NULL;
    int rc = jira_call(j, "POST", path, body, NULL, NULL, 0, &ans, err);
    json_decref(body);
    json_decref(ans);
    return rc;
}

static int jira_attach(void *st, const char *key, const char *name, const void *bytes, size_t len,
                       fm_err *err)
{
    jira_st *j = st;
    if (len > FM_TICKET_MAX_ATTACH)
        return fm_err_set(err, FM_ERR_TOO_LARGE, "attachment of %zu bytes is over the %u limit",
                          len, FM_TICKET_MAX_ATTACH);
    char path[128];
    snprintf(path, sizeof path, API "/issue/%s/attachments", key);
    json_t *ans = NULL;
    int rc = jira_call(j, "POST", path, NULL, name, bytes, len, &ans, err);
    json_decref(ans);
    return rc;
}

static json_t *jira_transitions(void *st, const char *key, fm_err *err)
{
    jira_st *j = st;
    char path[128];
    snprintf(path, sizeof path, API "/issue/%s/transitions", key);
    json_t *ans = NULL;
    if (jira_call(j, "GET", path, NULL, NULL, NULL, 0, &ans, err)) return NULL;
    json_t *out = json_array();
    size_t i;
    json_t *tr;
    json_array_foreach(json_object_get(ans, "transitions"), i, tr)
    {
        if (i >= 50) break;
        const json_t *id = json_object_get(tr, "id");
        const char *name = fm_json_str(tr, "name", NULL);
        if (!json_is_string(id) || !name) continue;
        const json_t *to = json_object_get(tr, "to");
        const char *cat =
            json_string_value(json_object_get(json_object_get(to, "statusCategory"), "key"));
        json_t *o = json_object();
        json_object_set_new(o, "id", fm_ticket_str_clip(json_string_value(id), 32));
        json_object_set_new(o, "name", fm_ticket_str_clip(name, 64));
        json_object_set_new(o, "to", fm_ticket_str_clip(fm_json_str(to, "name", ""), 64));
        json_object_set_new(o, "done", json_boolean(cat && !strcmp(cat, "done")));
        json_array_append_new(out, o);
    }
    json_decref(ans);
    return out;
}

static int jira_close(void *st, const char *key, char *name, size_t namelen, fm_err *err)
{
    jira_st *j = st;
    json_t *trs = jira_transitions(st, key, err);
    if (!trs) return -1;
    const json_t *pick = NULL;
    size_t i;
    json_t *tr;
    json_array_foreach(trs, i, tr)
    {
        const char *n = fm_json_str(tr, "name", "");
        if (j->close_transition[0] ? !strcasecmp(n, j->close_transition)
                                   : json_is_true(json_object_get(tr, "done"))) {
            pick = tr;
            break;
        }
    }
    if (!pick) {
        json_decref(trs);
        return fm_err_set(err, FM_ERR_CONFLICT,
                          "jira offers no transition to a done status for %s%s%s; set "
                          "jira.close_transition or close it in Jira",
                          key, j->close_transition[0] ? " named " : "", j->close_transition);
    }
    json_t *body = json_object();
    json_t *t = json_object();
    json_object_set(t, "id", json_object_get(pick, "id"));
    json_object_set_new(body, "transition", t);
    if (name) snprintf(name, namelen, "%s", fm_json_str(pick, "name", ""));
    char path[128];
    snprintf(path, sizeof path, API "/issue/%s/transitions", key);
    int rc = jira_call(j, "POST", path, body, NULL, NULL, 0, NULL, err);
    json_decref(body);
    json_decref(trs);
    return rc;
}

/* Appends "s" as a JQL string literal: quotes and backslashes escaped,
 * control characters refused (they cannot be written safely). */
static int jql_quote(char *out, size_t len, size_t *used, const char *s, fm_err *err)
{
    size_t n = *used;
    if (n + 1 >= len) goto full;
    out[n++] = '"';
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch < 0x20 || ch == 0x7f)
            return fm_err_set(err, FM_ERR_INVALID, "search value has a control character");
        if (n + 3 >= len) goto full;
        if (ch == '"' || ch == '\\') out[n++] = '\\';
        out[n++] = (char)ch;
    }
    if (n + 2 >= len) goto full;
    out[n++] = '"';
    out[n] = '\0';
    *used = n;
    return 0;
full:
    return fm_err_set(err, FM_ERR_TOO_LARGE, "search query too long");
}

static int jql_add(char *out, size_t len, size_t *used, const char *text)
{
    int w = snprintf(out + *used, len - *used, "%s", text);
    if (w < 0 || (size_t)w >= len - *used) return -1;
    *used += (size_t)w;
    return 0;
}

/* Builds the JQL for q into out (exposed to the unit tests through search). */
static int build_jql(const jira_st *j, const fm_ticket_query *q, char *out, size_t len, fm_err *err)
{
    size_t n = 0;
    char l[256];
    out[0] = '\0';
    if (jql_add(out, len, &n, "project = ") || jql_quote(out, len, &n, j->project, err) ||
        jql_add(out, len, &n, " AND labels = ") || jql_quote(out, len, &n, "fleetmcp", err))
        goto fail;
    if (q->node) {
        fm_ticket_label(l, sizeof l, "node-", q->node);
        if (jql_add(out, len, &n, " AND labels = ") || jql_quote(out, len, &n, l, err)) goto fail;
    }
    if (q->fault_class) {
        fm_ticket_label(l, sizeof l, "fault-", q->fault_class);
        if (jql_add(out, len, &n, " AND labels = ") || jql_quote(out, len, &n, l, err)) goto fail;
    }
    if (q->state == FM_TICKET_STATE_OPEN && jql_add(out, len, &n, " AND statusCategory != Done"))
        goto fail;
    if (q->state == FM_TICKET_STATE_CLOSED && jql_add(out, len, &n, " AND statusCategory = Done"))
        goto fail;
    if (jql_add(out, len, &n, " ORDER BY created DESC")) goto fail;
    return 0;
fail:
    return fm_err_set(err, FM_ERR_TOO_LARGE, "search query too long");
}

/* Cloud or Data Center, from jira.deployment or, once, serverInfo's
 * deploymentType ("Cloud"; Data Center and Server both say "Server"). */
static int jira_deployment(jira_st *j, fm_err *err)
{
    if (j->deploy != DEPLOY_AUTO) return j->deploy;
    json_t *ans = NULL;
    if (jira_call(j, "GET", API "/serverInfo", NULL, NULL, NULL, 0, &ans, err)) return -1;
    const char *t = fm_json_str(ans, "deploymentType", NULL);
    int d = t && !strcasecmp(t, "Cloud") ? DEPLOY_CLOUD : DEPLOY_DC;
    json_decref(ans);
    j->deploy = d;
    return d;
}

/* Longest nextPageToken kept; Cloud's are a few hundred bytes. */
#define MAX_PAGE_TOKEN 4096

static json_t *jira_search(void *st, const fm_ticket_query *q, fm_err *err)
{
    jira_st *j = st;
    char jql[1024];
    if (build_jql(j, q, jql, sizeof jql, err)) return NULL;
    int deploy = jira_deployment(j, err);
    if (deploy < 0) return NULL;
    bool cloud = deploy == DEPLOY_CLOUD;
    size_t lim = (size_t)(q->limit < 1                      ? 1
                          : q->limit > FM_TICKET_MAX_SEARCH ? FM_TICKET_MAX_SEARCH
                                                            : q->limit);
    char fl[600];
    field_list(j, fl, sizeof fl, false);
    json_t *fields = json_array();
    for (char *save = NULL, *tok = strtok_r(fl, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
        json_array_append_new(fields, json_string(tok));
    json_t *out = json_array();
    json_t *token = NULL; /* Cloud: the next page's token */
    /* A page may hold fewer issues than asked (Cloud caps it by the fields
     * requested), so pages are read until lim, the last page, or an empty
     * one: at most lim pages. */
    while (json_array_size(out) < lim) {
        json_t *body = json_object();
        json_object_set_new(body, "jql", json_string(jql));
        if (token)
            json_object_set_new(body, "nextPageToken", token);
        else if (!cloud)
            json_object_set_new(body, "startAt", json_integer((json_int_t)json_array_size(out)));
        token = NULL;
        json_object_set_new(body, "maxResults",
                            json_integer((json_int_t)(lim - json_array_size(out))));
        json_object_set(body, "fields", fields);
        json_t *ans = NULL;
        int rc = jira_call(j, "POST", cloud ? CLOUD_SEARCH : API "/search", body, NULL, NULL, 0,
                           &ans, err);
        json_decref(body);
        if (rc) goto fail;
        const json_t *issues = json_object_get(ans, "issues");
        size_t i, before = json_array_size(out);
        json_t *issue;
        json_array_foreach(issues, i, issue)
        {
            if (json_array_size(out) >= lim) break;
            json_t *t = normalize(j, issue, false, err);
            if (!t) {
                json_decref(ans);
                goto fail;
            }
            json_array_append_new(out, t);
        }
        const char *next = fm_json_str(ans, "nextPageToken", NULL);
        json_int_t total = json_integer_value(json_object_get(ans, "total"));
        bool more = json_array_size(out) > before &&
                    (cloud ? next && *next && strlen(next) <= MAX_PAGE_TOKEN &&
                                 !json_is_true(json_object_get(ans, "isLast"))
                           : (json_int_t)json_array_size(out) < total);
        if (more && cloud) token = json_string(next);
        json_decref(ans);
        if (!more) break;
    }
    json_decref(token);
    json_decref(fields);
    return out;
fail:
    json_decref(fields);
    json_decref(out);
    return NULL;
}

const struct fm_ticket_ops fm_tickets_jira = {
    .name = "jira",
    .create = jira_create,
    .get = jira_get,
    .update = jira_update,
    .comment = jira_comment,
    .attach = jira_attach,
    .transitions = jira_transitions,
    .close = jira_close,
    .search = jira_search,
    .destroy = jira_destroy,
};
