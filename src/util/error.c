#include "fleetmcp/fm_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *fm_strerror(fm_code code)
{
    switch (code) {
    case FM_OK:
        return "OK";
    case FM_ERR_INTERNAL:
        return "INTERNAL";
    case FM_ERR_NOMEM:
        return "NOMEM";
    case FM_ERR_INVALID:
        return "INVALID";
    case FM_ERR_NOT_CONFIGURED:
        return "NOTCONFIGURED";
    case FM_ERR_BACKEND:
        return "BACKEND";
    case FM_ERR_TIMEOUT:
        return "TIMEOUT";
    case FM_ERR_NOT_FOUND:
        return "NOTFOUND";
    case FM_ERR_DENIED:
        return "DENIED";
    case FM_ERR_UNAVAILABLE:
        return "UNAVAILABLE";
    case FM_ERR_TOO_LARGE:
        return "TOOLARGE";
    case FM_ERR_IO:
        return "IO";
    case FM_ERR_HOSTKEY:
        return "HOSTKEY";
    case FM_ERR_AUTH:
        return "AUTH";
    case FM_ERR_RATE_LIMITED:
        return "RATELIMITED";
    case FM_ERR_CONFLICT:
        return "CONFLICT";
    case FM_ERR_APPROVAL:
        return "APPROVAL";
    case FM_ERR_CANCELLED:
        return "CANCELLED";
    case FM_ERR_GUARDRAIL:
        return "GUARDRAIL";
    case FM_ERR_PARSE:
        return "PARSE";
    case FM_ERR_SHADOW:
        return "SHADOW";
    }
    return "UNKNOWN";
}

fm_code fm_err_set(fm_err *e, fm_code code, const char *fmt, ...)
{
    if (!e || e->code != FM_OK) return code;
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->text, sizeof e->text, fmt, ap);
    va_end(ap);
    return code;
}

void fm_err_clear(fm_err *e)
{
    if (!e) return;
    e->code = FM_OK;
    e->text[0] = '\0';
}

void fm_clip(char *dst, size_t dstlen, const char *src)
{
    if (!dstlen) return;
    size_t max = dstlen - 1 < 128 ? dstlen - 1 : 128, i = 0;
    for (; src && src[i] && i < max; i++) {
        unsigned char c = (unsigned char)src[i];
        /* Non-ASCII becomes '?': a clip may split a UTF-8 sequence, and
         * the text must stay valid in a JSON reply. */
        dst[i] = (c < 0x20 || c == 0x7f) ? ' ' : c >= 0x80 ? '?' : (char)c;
    }
    dst[i] = '\0';
}

/* Masks the value at p (after leading blanks) up to the first stop
 * character; returns where it stopped. */
static char *mask_value(char *p, const char *stops)
{
    while (*p == ' ' || *p == '\t')
        p++;
    for (; *p && !strchr(stops, *p); p++)
        *p = '*';
    return p;
}

void fm_scrub(char *text, const char *const *secrets)
{
    if (!text) return;
    for (; secrets && *secrets; secrets++) {
        size_t n = strlen(*secrets);
        if (n < 4) continue; /* too short to tell from ordinary text */
        for (char *p = strstr(text, *secrets); p; p = strstr(p + n, *secrets))
            memset(p, '*', n);
    }
    /* Credential-looking fields, whatever their value: a server that
     * echoes the request (headers, query) echoes them too.  A header runs
     * to the end of its line; a token or parameter to the next space. */
    static const struct {
        const char *mark;
        const char *stops;
    } fields[] = {
        {"authorization:", "\"'\\\r\n<"},      {"cookie:", "\"'\\\r\n<"},
        {"x-slurm-user-token:", "\"'\\\r\n<"}, {"x-api-key:", "\"'\\\r\n<"},
        {"private-token:", "\"'\\\r\n<"},      {"bearer ", " \"'\\\r\n,;&<"},
        {"token=", " \"'\\\r\n,;&<"},          {"password=", " \"'\\\r\n,;&<"},
        {"api_key=", " \"'\\\r\n,;&<"},
    };
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
        size_t n = strlen(fields[i].mark);
        for (char *p = strcasestr(text, fields[i].mark); p; p = strcasestr(p, fields[i].mark))
            p = mask_value(p + n, fields[i].stops);
    }
}
