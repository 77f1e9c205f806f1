#include "args.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "fleetmcp/fm_util.h"

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && errlen) vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

void cli_words_free(cli_words *w)
{
    for (int i = 0; w->argv && i < w->argc; i++)
        free(w->argv[i]);
    free(w->argv);
    memset(w, 0, sizeof *w);
}

static int push_word(cli_words *w, const char *buf, size_t len)
{
    if (w->argc + 1 >= CLI_MAX_WORDS) return -1;
    char *copy = malloc(len + 1);
    if (!copy) return -1;
    memcpy(copy, buf, len);
    copy[len] = '\0';
    w->argv[w->argc++] = copy;
    w->argv[w->argc] = NULL;
    return 0;
}

int cli_words_split(const char *s, bool partial, cli_words *w, char *err, size_t errlen)
{
    memset(w, 0, sizeof *w);
    size_t n = strlen(s);
    w->argv = calloc(CLI_MAX_WORDS, sizeof *w->argv);
    char *buf = malloc(n + 1);
    if (!w->argv || !buf) {
        free(buf);
        cli_words_free(w);
        return fail(err, errlen, "out of memory");
    }
    size_t i = 0;
    w->at_blank = true;
    while (i < n) {
        while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n'))
            i++;
        if (i >= n) break;
        size_t k = 0, start = i;
        char q = 0;
        bool open_escape = false;
        for (; i < n; i++) {
            char ch = s[i];
            if (q == '\'') {
                if (ch == '\'')
                    q = 0;
                else
                    buf[k++] = ch;
            } else if (q == '"') {
                if (ch == '"') {
                    q = 0;
                } else if (ch == '\\' && i + 1 < n && strchr("\"\\$`\n", s[i + 1])) {
                    if (s[++i] != '\n') buf[k++] = s[i];
                } else if (ch == '\\' && i + 1 >= n) {
                    open_escape = true;
                } else {
                    buf[k++] = ch;
                }
            } else if (ch == ' ' || ch == '\t' || ch == '\n') {
                break;
            } else if (ch == '\'' || ch == '"') {
                q = ch;
            } else if (ch == '\\') {
                if (i + 1 >= n) {
                    open_escape = true;
                } else if (s[++i] != '\n') {
                    buf[k++] = s[i];
                }
            } else {
                buf[k++] = ch;
            }
        }
        if ((q || open_escape) && !partial) {
            free(buf);
            cli_words_free(w);
            return q ? fail(err, errlen, "unterminated %s quote (close it with %c)",
                            q == '\'' ? "single" : "double", q)
                     : fail(err, errlen, "a backslash ends the line (escape it as \\\\)");
        }
        if (push_word(w, buf, k)) {
            free(buf);
            cli_words_free(w);
            return fail(err, errlen, "more than %d words", CLI_MAX_WORDS - 1);
        }
        w->last_start = start;
        w->open_quote = q;
        w->at_blank = false;
    }
    if (n && (s[n - 1] == ' ' || s[n - 1] == '\t') && !w->open_quote) {
        /* A blank that ends the line closes the last word, unless it was
         * escaped: "a\ " is still inside the word. */
        size_t bs = 0;
        for (size_t j = n - 1; j > 0 && s[j - 1] == '\\'; j--)
            bs++;
        if (bs % 2 == 0) w->at_blank = true;
    }
    free(buf);
    return 0;
}

/* Reads a whole stream up to CLI_MAX_VALUE_FILE bytes (new string). */
static char *read_stream(FILE *f, const char *what, char *err, size_t errlen)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap + 1);
    if (!buf) return fail(err, errlen, "out of memory"), NULL;
    for (;;) {
        if (len == cap) {
            if (cap >= CLI_MAX_VALUE_FILE) {
                free(buf);
                fail(err, errlen, "%s is larger than %u bytes", what, CLI_MAX_VALUE_FILE);
                return NULL;
            }
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb) {
                free(buf);
                return fail(err, errlen, "out of memory"), NULL;
            }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        free(buf);
        return fail(err, errlen, "cannot read %s", what), NULL;
    }
    if (memchr(buf, '\0', len)) {
        free(buf);
        return fail(err, errlen, "%s holds a NUL byte: values are text", what), NULL;
    }
    if (len && buf[len - 1] == '\n') len--;
    buf[len] = '\0';
    return buf;
}

static char *read_named(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) return fail(err, errlen, "cannot open %s: %s", path, strerror(errno)), NULL;
    char *s = read_stream(f, path, err, errlen);
    fclose(f);
    return s;
}

/* A value's text as JSON when it parses, else as a string (new). */
static json_t *typed_value(const char *text)
{
    json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
    return v ? v : json_string(text);
}

static int merge_object(json_t *args, const char *text, const char *from, char *err, size_t errlen)
{
    json_error_t je;
    json_t *obj = json_loads(text, 0, &je);
    if (!json_is_object(obj)) {
        json_decref(obj);
        return fail(err, errlen, "--args from %s is not a JSON object: %s", from,
                    obj ? "another type" : je.text);
    }
    json_object_update(args, obj);
    json_decref(obj);
    return 0;
}

json_t *cli_args_parse(int argc, char *const argv[], const cli_args_src *src, char *err,
                       size_t errlen)
{
    json_t *args = json_object();
    for (int i = 0; i < argc; i++) {
        const char *w = argv[i];
        if (!strcmp(w, "--args")) {
            if (i + 1 >= argc) {
                fail(err, errlen, "--args needs a JSON object, @FILE or - (standard input)");
                goto bad;
            }
            const char *a = argv[++i];
            char *text = NULL;
            const char *from = "the command line";
            if (!strcmp(a, "-")) {
                if (!src || !src->stdin_ok || !src->in) {
                    fail(err, errlen,
                         "--args - reads standard input, which is not available"
                         " here: use --args @FILE");
                    goto bad;
                }
                from = "standard input";
                if (!(text = read_stream(src->in, from, err, errlen))) goto bad;
            } else if (a[0] == '@') {
                from = a + 1;
                if (!(text = read_named(a + 1, err, errlen))) goto bad;
            }
            int rc = merge_object(args, text ? text : a, from, err, errlen);
            free(text);
            if (rc) goto bad;
            continue;
        }
        const char *eq = strchr(w, '=');
        if (!eq || eq == w) {
            char clip[64];
            snprintf(clip, sizeof clip, "%s", w);
            fail(err, errlen,
                 "'%s' is not key=value (quote a value with blanks: key=\"a b\"; or"
                 " use --args JSON)",
                 clip);
            goto bad;
        }
        char *key = strndup(w, (size_t)(eq - w));
        const char *val = eq + 1;
        json_t *v;
        if (val[0] == '@' && val[1] == '@') {
            v = json_string(val + 1);
        } else if (val[0] == '@') {
            char *text = read_named(val + 1, err, errlen);
            if (!text) {
                free(key);
                goto bad;
            }
            v = typed_value(text);
            free(text);
        } else {
            v = typed_value(val);
        }
        json_object_set_new(args, key, v);
        free(key);
    }
    return args;
bad:
    json_decref(args);
    return NULL;
}

static bool looks_like_token(const char *s)
{
    if (!strncasecmp(s, "bearer ", 7)) return true;
    /* A JWT: three base64url parts, the first one a JSON header ("eyJ"). */
    if (strncmp(s, "eyJ", 3)) return false;
    int dots = 0;
    for (; *s; s++) {
        if (*s == '.')
            dots++;
        else if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_')
            return false;
    }
    return dots == 2;
}

bool cli_words_secret(int argc, char *const argv[])
{
    for (int i = 0; i < argc; i++) {
        const char *w = argv[i];
        if (!strncmp(w, "--key", 5) || !strncmp(w, "--token", 7)) return true;
        const char *eq = strchr(w, '=');
        if (eq && eq != w) {
            char key[64];
            snprintf(key, sizeof key, "%.*s", (int)(eq - w), w);
            if (fm_key_is_secret(key) || looks_like_token(eq + 1)) return true;
        } else if (looks_like_token(w)) {
            return true;
        }
    }
    return false;
}

char *cli_quote_word(const char *s)
{
    bool plain = *s != '\0';
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("-_.,:/=@+%^", *p)) plain = false;
    if (plain) return strdup(s);
    /* Single quotes keep everything but a single quote, which is closed,
     * escaped and reopened: it's -> 'it'\''s'. */
    size_t n = 2;
    for (const char *p = s; *p; p++)
        n += *p == '\'' ? 4 : 1;
    char *out = malloc(n + 1), *o = out;
    if (!out) return NULL;
    *o++ = '\'';
    for (const char *p = s; *p; p++) {
        if (*p == '\'') {
            memcpy(o, "'\\''", 4);
            o += 4;
        } else {
            *o++ = *p;
        }
    }
    *o++ = '\'';
    *o = '\0';
    return out;
}
