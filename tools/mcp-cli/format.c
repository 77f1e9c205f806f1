#include "format.h"

#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define CELL_MAX 40  /* a table cell */
#define FACT_MAX 200 /* a "key: value" line */
#define TABLE_ROWS 1000
#define TABLE_COLS 16

#define BOLD "\033[1m"
#define RED "\033[31m"
#define DIM "\033[2m"
#define OFF "\033[0m"

bool cli_color(FILE *f)
{
    const char *nc = getenv("NO_COLOR"), *term = getenv("TERM");
    if (nc && *nc) return false;
    if (term && !strcmp(term, "dumb")) return false;
    return isatty(fileno(f));
}

static bool is_scalar(const json_t *v)
{
    return !json_is_object(v) && !json_is_array(v);
}

static bool all_scalars(const json_t *v)
{
    size_t i;
    json_t *x;
    if (json_is_array(v)) {
        json_array_foreach(v, i, x) if (!is_scalar(x)) return false;
        return true;
    }
    const char *k;
    json_object_foreach((json_t *)v, k, x) if (!is_scalar(x)) return false;
    return true;
}

static bool array_of_objects(const json_t *v)
{
    size_t i;
    json_t *x;
    if (!json_is_array(v) || !json_array_size(v)) return false;
    json_array_foreach(v, i, x) if (!json_is_object(x)) return false;
    return true;
}

/* Clips s into out (size max + 1) with "..." and blanks control bytes, so
 * a server's text cannot move the cursor or break a table. */
static void clip(const char *s, char *out, size_t max)
{
    size_t n = strlen(s), k = 0;
    bool cut = n > max;
    size_t keep = cut ? max - 3 : n;
    /* Cut on a UTF-8 character boundary. */
    while (cut && keep > 0 && ((unsigned char)s[keep] & 0xC0) == 0x80)
        keep--;
    for (size_t i = 0; i < keep; i++)
        out[k++] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? ' ' : s[i];
    if (cut) memcpy(out + k, "...", 3), k += 3;
    out[k] = '\0';
}

void cli_cell(const json_t *v, char *out, size_t max)
{
    if (json_is_string(v)) {
        clip(json_string_value(v), out, max);
        return;
    }
    if (json_is_array(v) && all_scalars(v)) {
        size_t cap = 256, len = 0, i;
        char *buf = malloc(cap);
        json_t *x;
        if (!buf) {
            out[0] = '\0';
            return;
        }
        buf[0] = '\0';
        json_array_foreach(v, i, x)
        {
            char part[FACT_MAX + 1];
            cli_cell(x, part, FACT_MAX);
            size_t pl = strlen(part);
            if (len + pl + 3 > cap) {
                char *nb = realloc(buf, cap = 2 * (len + pl + 3));
                if (!nb) break;
                buf = nb;
            }
            len += (size_t)snprintf(buf + len, cap - len, "%s%s", i ? "," : "", part);
            if (len > max) break;
        }
        clip(buf, out, max);
        free(buf);
        return;
    }
    if (json_is_object(v) && all_scalars(v) && json_object_size(v)) {
        /* A flat object reads as key=value pairs: rack=r01 sku=h100. */
        char buf[FACT_MAX + 1];
        size_t len = 0;
        const char *k;
        json_t *x;
        buf[0] = '\0';
        json_object_foreach((json_t *)v, k, x)
        {
            char part[64];
            cli_cell(x, part, sizeof part - 1);
            int w = snprintf(buf + len, sizeof buf - len, "%s%s=%s", len ? " " : "", k, part);
            if (w < 0 || (size_t)w >= sizeof buf - len) break;
            len += (size_t)w;
        }
        clip(buf, out, max);
        return;
    }
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    clip(s ? s : "", out, max);
    free(s);
}

static size_t width(const char *s)
{
    /* Display width of UTF-8 text: count lead bytes only. */
    size_t w = 0;
    for (; *s; s++)
        w += ((unsigned char)*s & 0xC0) != 0x80;
    return w;
}

static void pad(FILE *f, const char *s, size_t w)
{
    fputs(s, f);
    for (size_t n = width(s); n < w; n++)
        fputc(' ', f);
}

/* An aligned table: header row then rows, each a list of column texts. */
typedef struct table {
    int ncols, nrows;
    char *head[TABLE_COLS];
    char **cells; /* nrows * ncols */
    size_t w[TABLE_COLS];
} table;

/* The terminal's width, or 0 when f is not a terminal. */
static size_t term_width(FILE *f)
{
    struct winsize ws;
    if (!isatty(fileno(f)) || ioctl(fileno(f), TIOCGWINSZ, &ws) || !ws.ws_col) return 0;
    return ws.ws_col;
}

static void table_print(FILE *f, table *t, int indent, bool color)
{
    for (int c = 0; c < t->ncols; c++)
        t->w[c] = width(t->head[c]);
    for (int r = 0; r < t->nrows; r++)
        for (int c = 0; c < t->ncols; c++) {
            size_t w = width(t->cells[r * t->ncols + c]);
            if (w > t->w[c]) t->w[c] = w;
        }
    /* On a terminal, rows never wrap: the columns that do not fit are
     * left out and named (the first one always shows). */
    size_t tw = term_width(f), used = (size_t)indent;
    int shown = t->ncols;
    for (int c = 0; tw && c < t->ncols; c++) {
        used += t->w[c] + (c ? 2 : 0);
        if (c && used > tw) {
            shown = c;
            break;
        }
    }
    int all = t->ncols;
    t->ncols = shown; /* rows keep their stride, all */
    fprintf(f, "%*s%s", indent, "", color ? BOLD : "");
    for (int c = 0; c < t->ncols; c++) {
        if (c + 1 < t->ncols)
            pad(f, t->head[c], t->w[c] + 2);
        else
            fputs(t->head[c], f);
    }
    fprintf(f, "%s\n", color ? OFF : "");
    for (int r = 0; r < t->nrows; r++) {
        char **row = t->cells + (size_t)r * (size_t)all;
        int last = t->ncols - 1; /* no blanks after the last cell */
        while (last > 0 && !*row[last])
            last--;
        fprintf(f, "%*s", indent, "");
        for (int c = 0; c <= last; c++) {
            if (c < last)
                pad(f, row[c], t->w[c] + 2);
            else
                fputs(row[c], f);
        }
        fputc('\n', f);
    }
    if (shown < all) {
        fprintf(f, "%*s%s(not shown for the terminal's width:", indent, "", color ? DIM : "");
        for (int c = shown; c < all; c++)
            fprintf(f, " %s", t->head[c]);
        fprintf(f, "; --format json has everything)%s\n", color ? OFF : "");
    }
    t->ncols = all;
}

static void table_free(table *t)
{
    for (int i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
}

/* An array of objects as a table: the columns are the keys of the first
 * rows in order of appearance, nested values shown short. */
static void print_rows(FILE *f, const json_t *arr, int indent, bool color)
{
    table t = {0};
    const char *cols[TABLE_COLS];
    size_t i;
    json_t *row;
    json_array_foreach(arr, i, row)
    {
        if (i >= 50) break; /* the column set settles in the first rows */
        const char *k;
        json_t *v;
        json_object_foreach(row, k, v)
        {
            int c = 0;
            while (c < t.ncols && strcmp(cols[c], k))
                c++;
            if (c == t.ncols && t.ncols < TABLE_COLS) cols[t.ncols++] = k;
        }
    }
    size_t n = json_array_size(arr) < TABLE_ROWS ? json_array_size(arr) : TABLE_ROWS;
    t.cells = calloc(n * (size_t)t.ncols + 1, sizeof *t.cells);
    if (!t.cells) return;
    for (int c = 0; c < t.ncols; c++)
        t.head[c] = (char *)cols[c];
    for (size_t r = 0; r < n; r++) {
        const json_t *o = json_array_get(arr, r);
        for (int c = 0; c < t.ncols; c++) {
            char cell[CELL_MAX + 1];
            const json_t *v = json_object_get(o, cols[c]);
            if (v)
                cli_cell(v, cell, CELL_MAX);
            else
                cell[0] = '\0';
            t.cells[r * (size_t)t.ncols + (size_t)c] = strdup(cell);
        }
        t.nrows++;
    }
    table_print(f, &t, indent, color);
    if (json_array_size(arr) > n)
        fprintf(f, "%*s... %zu more rows (--format json shows all)\n", indent, "",
                json_array_size(arr) - n);
    table_free(&t);
}

static void print_object(FILE *f, const json_t *obj, int indent, bool color)
{
    const char *k;
    json_t *v;
    size_t kw = 0;
    json_object_foreach((json_t *)obj, k,
                        v) if ((is_scalar(v) || (json_is_object(v) && all_scalars(v)) ||
                                (json_is_array(v) && all_scalars(v))) &&
                               strlen(k) > kw) kw = strlen(k);
    char cell[FACT_MAX + 1];
    /* 1: the key facts, scalars, in the server's order. */
    json_object_foreach((json_t *)obj, k, v)
    {
        if (!is_scalar(v)) continue;
        cli_cell(v, cell, FACT_MAX);
        fprintf(f, "%*s%s%-*s%s  %s\n", indent, "", color ? BOLD : "", (int)kw + 1, k,
                color ? OFF : "", cell);
    }
    /* 2: lists of scalars and small flat objects, one line each. */
    json_object_foreach((json_t *)obj, k, v)
    {
        if (is_scalar(v) || !all_scalars(v)) continue;
        cli_cell(v, cell, FACT_MAX);
        fprintf(f, "%*s%s%-*s%s  %s\n", indent, "", color ? BOLD : "", (int)kw + 1, k,
                color ? OFF : "",
                json_is_array(v) || json_is_object(v) ? (*cell && strcmp(cell, "{}") ? cell : "-")
                                                      : cell);
    }
    /* 3: lists of records as tables; 4: nested objects, indented. */
    json_object_foreach((json_t *)obj, k, v)
    {
        if (is_scalar(v) || all_scalars(v)) continue;
        if (array_of_objects(v)) {
            fprintf(f, "\n%*s%s%s (%zu)%s\n", indent, "", color ? BOLD : "", k, json_array_size(v),
                    color ? OFF : "");
            print_rows(f, v, indent + 2, color);
        } else if (json_is_object(v)) {
            fprintf(f, "%*s%s%s:%s\n", indent, "", color ? BOLD : "", k, color ? OFF : "");
            print_object(f, v, indent + 2, color);
        } else {
            char *s = json_dumps(v, JSON_COMPACT);
            fprintf(f, "%*s%s%s:%s %s\n", indent, "", color ? BOLD : "", k, color ? OFF : "",
                    s ? s : "");
            free(s);
        }
    }
}

void cli_print_structured(FILE *f, const json_t *v)
{
    bool color = cli_color(f);
    if (json_is_object(v)) {
        print_object(f, v, 0, color);
    } else if (array_of_objects(v)) {
        print_rows(f, v, 0, color);
    } else {
        char *s = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY);
        if (s) fprintf(f, "%s\n", s);
        free(s);
    }
}

void cli_print_text(FILE *f, const char *prefix, const char *text)
{
    fputs(prefix, f);
    const unsigned char *p = (const unsigned char *)(text ? text : "");
    for (; *p; p++) {
        if (p[0] == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F) { /* C1 control in UTF-8 */
            fputc(' ', f);
            p++;
        } else {
            fputc((*p < 0x20 && *p != '\n' && *p != '\t') || *p == 0x7f ? ' ' : *p, f);
        }
    }
    fputc('\n', f);
}

void cli_print_error_text(FILE *f, const char *text)
{
    if (!text) return;
    const char *colon = strchr(text, ':');
    bool code = colon && colon > text && colon - text < 24;
    for (const char *p = text; code && p < colon; p++)
        if ((*p < 'A' || *p > 'Z') && *p != '_') code = false;
    if (code && cli_color(f)) {
        /* The code word is checked to be A-Z and _ only. */
        fprintf(f, RED BOLD "%.*s" OFF, (int)(colon - text + 1), text);
        text = colon + 1;
    }
    cli_print_text(f, "", text);
}

static const char *gate_asks(const char *autonomy)
{
    if (!autonomy) return "unknown: the tool declares no autonomy level, treat it as hitl";
    if (!strcmp(autonomy, "read")) return "nothing: runs at once (audited)";
    if (!strcmp(autonomy, "create"))
        return "no approval; rate-limited per hour and deduplicated (audited)";
    if (!strcmp(autonomy, "hitl"))
        return "a plan and a signed approval: the first call answers with a plan id;\n"
               "             run `mcp-cli approve PLAN`, then repeat the call with "
               "approval_id=ap-...";
    if (!strcmp(autonomy, "canary"))
        return "no approval on canary nodes outside shadow mode; anywhere else a plan\n"
               "             and a signed approval, as for hitl";
    return "unknown autonomy level: treat it as hitl";
}

static void schema_type(const json_t *p, char *out, size_t len)
{
    const json_t *t = json_object_get(p, "type");
    if (json_is_string(t) && !strcmp(json_string_value(t), "array")) {
        const char *it = json_string_value(json_object_get(json_object_get(p, "items"), "type"));
        snprintf(out, len, "%s[]", it ? it : "any");
    } else if (t) {
        cli_cell(t, out, len - 1);
    } else {
        snprintf(out, len, "any");
    }
}

void cli_print_tool(FILE *f, const json_t *tool)
{
    bool color = cli_color(f);
    const json_t *in = json_object_get(tool, "inputSchema");
    const json_t *props = json_object_get(in, "properties");
    const json_t *req = json_object_get(in, "required");
    const char *autonomy =
        json_string_value(json_object_get(json_object_get(tool, "_meta"), "autonomy"));
    const char *title = json_string_value(json_object_get(tool, "title"));
    const char *desc = json_string_value(json_object_get(tool, "description"));
    fprintf(f, "%s%s%s%s%s\n", color ? BOLD : "", json_string_value(json_object_get(tool, "name")),
            color ? OFF : "", title ? ": " : "", title ? title : "");
    if (desc) fprintf(f, "  %s\n", desc);
    fprintf(f, "\n  autonomy:  %s\n  the gate asks for: %s\n\n", autonomy ? autonomy : "(none)",
            gate_asks(autonomy));
    size_t n = json_object_size(props);
    if (!n) {
        fprintf(f, "  no arguments\n");
        return;
    }
    table t = {.ncols = 6, .head = {"name", "type", "required", "enum", "default", "description"}};
    t.cells = calloc(n * 6, sizeof *t.cells);
    if (!t.cells) return;
    const char *k;
    json_t *p;
    json_object_foreach((json_t *)props, k, p)
    {
        char type[32], en[CELL_MAX + 1] = "", def[CELL_MAX + 1] = "", d[81] = "";
        bool required = false;
        size_t i;
        json_t *r;
        json_array_foreach(req, i, r) if (json_is_string(r) && !strcmp(json_string_value(r), k))
            required = true;
        schema_type(p, type, sizeof type);
        const json_t *e = json_object_get(p, "enum");
        if (!e) e = json_object_get(json_object_get(p, "items"), "enum");
        if (e) cli_cell(e, en, CELL_MAX);
        if (json_object_get(p, "default")) cli_cell(json_object_get(p, "default"), def, CELL_MAX);
        const char *pd = json_string_value(json_object_get(p, "description"));
        clip(pd ? pd : "", d, 80);
        char **row = t.cells + (size_t)t.nrows * 6;
        row[0] = strdup(k);
        row[1] = strdup(type);
        row[2] = strdup(required ? "yes" : "");
        row[3] = strdup(en);
        row[4] = strdup(def);
        row[5] = strdup(d);
        t.nrows++;
    }
    table_print(f, &t, 2, color);
    table_free(&t);
}
