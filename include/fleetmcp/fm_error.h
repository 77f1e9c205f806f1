/* Stable error codes.  Numbers are a contract: never renumber, never reuse;
 * retire a slot as FM_ERR_OBSOLETEnn.  Every code has a word in
 * fm_strerror() (a switch without default, so -Wswitch flags a gap). */
#ifndef FM_ERROR_H
#define FM_ERROR_H

#include <stddef.h>

typedef enum {
    FM_OK = 0,
    FM_ERR_INTERNAL = 1,       /* a bug in fleetmcp */
    FM_ERR_NOMEM = 2,          /* allocation failed */
    FM_ERR_INVALID = 3,        /* argument or input fails validation */
    FM_ERR_NOT_CONFIGURED = 4, /* a backend or setting is missing */
    FM_ERR_BACKEND = 5,        /* a backend answered with an error */
    FM_ERR_TIMEOUT = 6,        /* a backend did not answer in time */
    FM_ERR_NOT_FOUND = 7,      /* node, job, plan, ticket... unknown */
    FM_ERR_DENIED = 8,         /* the gate refused */
    FM_ERR_UNAVAILABLE = 9,    /* a backend cannot be reached */
    FM_ERR_TOO_LARGE = 10,     /* input or output over a bound */
    FM_ERR_IO = 11,            /* file or store error */
    FM_ERR_HOSTKEY = 12,       /* SSH host key unknown or changed */
    FM_ERR_AUTH = 13,          /* credentials refused */
    FM_ERR_RATE_LIMITED = 14,  /* a rate limit refused the call */
    FM_ERR_CONFLICT = 15,      /* state changed under us, or a duplicate */
    FM_ERR_APPROVAL = 16,      /* approval missing, forged, expired, replayed */
    FM_ERR_CANCELLED = 17,     /* the client cancelled the call */
    FM_ERR_GUARDRAIL = 18,     /* a guardrail refused the action */
    FM_ERR_PARSE = 19,         /* a backend or file answered unparseable data */
    FM_ERR_SHADOW = 20,        /* shadow mode: recorded as a recommendation, nothing ran */
} fm_code;

/* The highest code in use: fm_strerror() has a word for 1..FM_ERR_LAST. */
#define FM_ERR_LAST FM_ERR_SHADOW

/* The first error set is kept (like json_error_t): later calls are no-ops,
 * so the innermost, most specific cause survives.  Filling never allocates. */
typedef struct fm_err {
    fm_code code;
    char text[480];
} fm_err;

/* The stable upper-case word for a code, e.g. "BACKEND". */
const char *fm_strerror(fm_code code);

/* Sets *e once (printf-style); e may be NULL.  Returns code for tail calls. */
fm_code fm_err_set(fm_err *e, fm_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

void fm_err_clear(fm_err *e);

/* Copies at most 128 bytes of untrusted text into dst, blanking control
 * characters, so echoed input cannot break a log line or a reply. */
void fm_clip(char *dst, size_t dstlen, const char *src);

/* Masks with '*', in place, every occurrence in text of the secrets
 * (NULL-terminated list, may be NULL; values under 4 bytes are skipped)
 * and the value of every credential-looking header or parameter
 * (Authorization:, Bearer ..., token=...).  For error text and bodies a
 * backend got back, before they reach a reply, a log or the audit. */
void fm_scrub(char *text, const char *const *secrets);

#endif
