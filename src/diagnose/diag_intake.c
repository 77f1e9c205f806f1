/* The engine's intake: signal arrays, tables and Prometheus answers as
 * text lines; text signatures scanned over them and turned into hits. */
#include "diag_int.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ---- input -------------------------------------------------------------- */

int need_array(const json_t *v, const char *name, size_t max, fm_err *err)
{
    if (!v) return 0;
    if (!json_is_array(v))
        return fm_err_set(err, FM_ERR_INVALID, "INVALID signals.%s must be an array", name), -1;
    if (json_array_size(v) > max)
        return fm_err_set(
                   err, FM_ERR_TOO_LARGE,
                   "signals.%s has %zu entries, at most %zu allowed; send the most recent ones",
                   name, json_array_size(v), max),
               -1;
    return 0;
}

/* Splits each string of arr into lines of source src. */
/* Tables whose columns are named only in a header line: CSV as
 * nvidia-smi --query-* prints it ("index, power.limit [W],
 * power.default_limit [W]") and pipe tables ("| rank | host | step time
 * (ms) |").  Their rows alone are bare numbers no signature can read; each
 * is added again with its columns named ("power.limit: 450.00 W"). */
#define TAB_MAX 24

typedef struct tabf {
    const char *s[TAB_MAX];
    size_t n[TAB_MAX];
    int k;
    char sep;
} tabf;

/* Splits on sep and trims blanks (a pipe table's outer bars dropped);
 * -1 when there are too many fields. */
static int tab_split(const char *s, size_t len, char sep, tabf *f)
{
    f->k = 0;
    f->sep = sep;
    while (len && isspace((unsigned char)s[len - 1]))
        len--;
    while (len && isspace((unsigned char)*s))
        s++, len--;
    if (sep == '|') {
        if (len && s[0] == '|') s++, len--;
        if (len && s[len - 1] == '|') len--;
    }
    size_t i = 0;
    while (i <= len) {
        if (f->k == TAB_MAX) return -1;
        size_t j = i;
        /* columns aligned with blanks: a run of them is one separator */
        while (j < len && (sep == ' ' ? !isspace((unsigned char)s[j]) : s[j] != sep))
            j++;
        size_t a = i, b = j;
        while (a < b && isspace((unsigned char)s[a]))
            a++;
        while (b > a && isspace((unsigned char)s[b - 1]))
            b--;
        f->s[f->k] = s + a;
        f->n[f->k++] = b - a;
        i = j + 1;
        if (sep == ' ')
            while (i < len && isspace((unsigned char)s[i]))
                i++;
    }
    return f->k;
}

/* A column name: a word, then words, dots, underscores, slashes, '%' and
 * a unit in brackets or parentheses.  Returns the length of the name
 * before its unit, 0 when the field is none; dotted tells a field name
 * ("power.limit", "step_ms") from a plain word. */
static size_t tab_name(const char *s, size_t n, bool *dotted)
{
    if (!n || !isalpha((unsigned char)s[0])) return 0;
    size_t i = 0, name = 0;
    for (; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '[' || c == '(') break;
        if (!isalnum(c) && !strchr(" ._/%-#", c)) return 0;
        *dotted |= c == '.' || c == '_';
        if (c != ' ') name = i + 1;
    }
    if (i < n && s[n - 1] != (s[i] == '[' ? ']' : ')')) return 0;
    return name;
}

/* A header: three or more fields (two aligned with blanks), every one a
 * name; CSV's and aligned ones must have a dotted one (plain words
 * separated by commas or blanks are prose). */
static bool tab_header(const tabf *h)
{
    if (h->k < (h->sep == ' ' ? 2 : 3)) return false;
    bool dotted = false, tight = h->sep == ',';
    for (int i = 0; i < h->k; i++) {
        if (!tab_name(h->s[i], h->n[i], &dotted)) return false;
        /* "timestamp,gpu,xid,count": one-word names with no blank after a
         * comma are a machine's header, not prose */
        tight &= !memchr(h->s[i], ' ', h->n[i]) && (i == 0 || h->s[i][-1] == ',');
    }
    return dotted || tight || h->sep == '|';
}

/* "name: value" for every column of a row under the header; a bare
 * number takes the header's unit ("power.limit: 450.00 W"). */
static char *tab_named(const tabf *h, const tabf *row)
{
    size_t cap = 64;
    for (int i = 0; i < h->k; i++)
        cap += h->n[i] + row->n[i] + 8;
    char *out = malloc(cap), *o = out;
    if (!out) return NULL;
    for (int i = 0; i < h->k; i++) {
        bool d = false;
        size_t nl = tab_name(h->s[i], h->n[i], &d);
        const char *unit = memchr(h->s[i], '[', h->n[i]);
        if (!unit) unit = memchr(h->s[i], '(', h->n[i]);
        bool bare = row->n[i] && strspn(row->s[i], "0123456789.-") == row->n[i];
        int un = unit && bare ? (int)(h->s[i] + h->n[i] - unit - 2) : 0;
        o += sprintf(o, "%s%.*s: %.*s%s%.*s", i ? ", " : "", (int)nl, h->s[i], (int)row->n[i],
                     row->s[i], un > 0 ? " " : "", un > 0 ? un : 0, un > 0 ? unit + 1 : "");
    }
    return out;
}

/* A field that marks a table row: a number, or a PCI bus id. */
static bool row_key(const char *s, size_t n)
{
    if (!n) return false;
    if (strspn(s, "0123456789.-") == n) return true;
    return strspn(s, "0123456789abcdefABCDEF:.") == n && memchr(s, ':', n);
}

/* One line of events or a job log: a header is kept (hdr), a row of as
 * many fields under it is added again with its columns named.  A line of
 * another shape ends the table; the command echoed above it (a "$"
 * prompt), a pipe table's rule ("|---|---|") and, inside a table with
 * bars or commas, any line that is not its row do not. */
static void add_table_line(run *r, int src, const char *s, size_t l, int entry, tabf *hdr)
{
    char sep = memchr(s, '|', l) ? '|' : memchr(s, ',', l) ? ',' : ' ';
    if (s[0] == '$') return;
    if (sep == '|' && strspn(s, "|-:+ ") == l) return;
    tabf f;
    if (tab_split(s, l, sep, &f) < 0) return;
    if (tab_header(&f)) {
        *hdr = f;
        return;
    }
    /* a row carries a number or a PCI bus id (a GPU's row with only yes/no
     * states beside it); a line of words is prose */
    bool num = false;
    for (int i = 0; i < f.k && !num; i++)
        num = row_key(f.s[i], f.n[i]);
    if (hdr->k && f.k == hdr->k && f.sep == hdr->sep && num) {
        char *named = diag_own(r, tab_named(hdr, &f));
        if (named) add_line(r, src, named, strlen(named), entry);
    } else if (hdr->sep == ' ') {
        /* a table with bars or commas outlives interleaved log lines (its
         * rows are told by their shape); one aligned with blanks ends at
         * the first line that is not its row */
        hdr->k = 0;
    }
}

static void query_name(const char *s, size_t upto, char *out, size_t cap);

/* A query's answer printed as rows without a series name ("{hostname=
 * \"gpu-101\", gpu=\"0\"} 0.8", as promtool or a console prints an
 * aggregation): the rows are samples of the series the query line before
 * them names (metric:function), judged as metrics. */
static void add_query_row(run *r, int src, const char *s, size_t l, int entry, char *qname)
{
    size_t b = strspn(s, " \t");
    if (b < l && s[b] == '{' && qname[0] && l < 2048) {
        /* only a row of that shape; any other braces stay text as written */
        char *row = diag_own(r, diag_fmt("%s%.*s", qname, (int)(l - b), s + b));
        json_t *o = row ? prom_sample(row, strlen(row)) : NULL;
        if (o)
            add_line(r, src, row, strlen(row), entry);
        else
            add_line(r, src, s, l, entry);
        json_decref(o);
        return;
    }
    char q[128];
    query_name(s, l, q, sizeof q);
    if (q[0]) snprintf(qname, 128, "%s", q);
}

int take_text(run *r, const json_t *arr, int src, const char *name, fm_err *err)
{
    tabf hdr = {.k = 0};
    char qname[128] = "";
    if (need_array(arr, name, MAX_LINES, err)) return -1;
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (!json_is_string(v))
            return fm_err_set(err, FM_ERR_INVALID, "signals.%s[%zu] must be a string", name, i), -1;
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        if (len > MAX_LINE_LEN)
            return fm_err_set(err, FM_ERR_TOO_LARGE,
                              "signals.%s[%zu] is %zu bytes, at most %d allowed; clip the line",
                              name, i, len, MAX_LINE_LEN),
                   -1;
        while (len) {
            const char *nl = memchr(s, '\n', len);
            size_t l = nl ? (size_t)(nl - s) : len;
            bool rows = l && (src == DS_EVENTS || src == DS_JOB);
            if (rows && s[strspn(s, " \t")] == '{' && qname[0])
                add_query_row(r, src, s, l, (int)i, qname);
            else if (l)
                add_line(r, src, s, l, (int)i);
            if (rows) {
                add_table_line(r, src, s, l, (int)i, &hdr);
                if (memchr(s, '(', l)) add_query_row(r, src, s, l, (int)i, qname);
            }
            if (!nl) break;
            len -= l + 1;
            s = nl + 1;
        }
    }
    return 0;
}

const char *diag_jstr(const json_t *o, const char *k, char *buf, size_t n)
{
    const json_t *v = json_object_get(o, k);
    if (json_is_string(v)) return json_string_value(v);
    if (json_is_integer(v)) {
        snprintf(buf, n, "%lld", (long long)json_integer_value(v));
        return buf;
    }
    if (json_is_real(v)) {
        snprintf(buf, n, "%g", json_real_value(v));
        return buf;
    }
    return "";
}

int take_slurm(run *r, const json_t *sl, fm_err *err)
{
    if (!sl) return 0;
    if (!json_is_object(sl))
        return fm_err_set(err, FM_ERR_INVALID, "signals.slurm must be an object"), -1;
    const json_t *reason = json_object_get(sl, "reason");
    if (json_is_string(reason) && json_string_length(reason) <= MAX_LINE_LEN)
        add_line(r, DS_REASON, json_string_value(reason), json_string_length(reason), 0);
    const json_t *st = json_object_get(sl, "node_state");
    json_t *one = json_is_string(st) ? json_pack("[O]", st) : NULL; /* "IDLE+DRAIN" */
    if (one) st = one;
    if (need_array(st, "slurm.node_state", 32, err)) {
        json_decref(one);
        return -1;
    }
    size_t i;
    json_t *v;
    json_array_foreach(st, i, v)
    {
        if (!json_is_string(v) || json_string_length(v) > 256) continue;
        /* "DOWN+DRAIN" or "MIXED,DRAIN" count as separate words */
        char *dup = diag_own(r, strdup(json_string_value(v)));
        for (char *save = NULL, *tok = dup ? strtok_r(dup, "+, ", &save) : NULL; tok;
             tok = strtok_r(NULL, "+, ", &save)) {
            /* sinfo prints states in lower case, scontrol in upper: one word */
            for (char *c = tok; *c; c++)
                *c = (char)toupper((unsigned char)*c);
            add_line(r, DS_STATE, tok, strlen(tok), 0);
        }
    }
    json_decref(one);
    const json_t *jobs = json_object_get(sl, "jobs");
    if (need_array(jobs, "slurm.jobs", MAX_JOBS, err)) return -1;
    json_array_foreach(jobs, i, v)
    {
        if (!json_is_object(v)) continue;
        char b1[32], b2[32], b3[32];
        char b4[32], b5[32], b6[32], b7[32];
        char *s = diag_own(
            r,
            diag_fmt("state=%.40s reason=%.80s exit=%.16s name=%.80s nodes=%.200s job=%.20s "
                     "partition=%.40s",
                     diag_jstr(v, "state", b1, sizeof b1), diag_jstr(v, "reason", b2, sizeof b2),
                     diag_jstr(v, "exit_code", b3, sizeof b3), diag_jstr(v, "name", b4, sizeof b4),
                     diag_jstr(v, "nodes", b5, sizeof b5), diag_jstr(v, "job_id", b6, sizeof b6),
                     diag_jstr(v, "partition", b7, sizeof b7)));
        if (s) add_line(r, DS_JOBS, s, strlen(s), (int)i);
    }
    return 0;
}

/* An attempt's other fields (its batch size, its state, a note), as
 * " key=value" pairs: what the facts compare across attempts.  Strings are
 * clipped; nested values are left out. */
static void history_fields(const json_t *v, char *out, size_t cap)
{
    static const char *const own[] = {"step", "node", "error"};
    size_t o = 0;
    out[0] = 0;
    const char *k;
    const json_t *x;
    json_object_foreach((json_t *)v, k, x)
    {
        bool skip = false;
        for (size_t i = 0; i < sizeof own / sizeof *own; i++)
            skip |= strcmp(k, own[i]) == 0;
        char b[64];
        const char *val = json_is_string(x) ? json_string_value(x)
                          : json_is_integer(x)
                              ? (snprintf(b, sizeof b, "%lld", (long long)json_integer_value(x)), b)
                          : json_is_real(x) ? (snprintf(b, sizeof b, "%g", json_real_value(x)), b)
                                            : NULL;
        if (skip || !val || o + 8 >= cap) continue;
        int n = snprintf(out + o, cap - o, " %.40s=%.120s", k, val);
        if (n < 0 || (size_t)n >= cap - o) break;
        o += (size_t)n;
    }
}

int take_history(run *r, const json_t *h, fm_err *err)
{
    if (need_array(h, "history", MAX_HISTORY, err)) return -1;
    size_t i;
    json_t *v;
    json_array_foreach(h, i, v)
    {
        if (!json_is_object(v)) continue;
        char b1[32], b2[32];
        const char *e = json_string_value(json_object_get(v, "error"));
        char extra[512];
        history_fields(v, extra, sizeof extra);
        /* an attempt without an error has no "error=" field: the word alone
         * is no failure */
        char *s = diag_own(r, diag_fmt("step=%s node=%.200s%s%s%.4000s",
                                       diag_jstr(v, "step", b1, sizeof b1),
                                       diag_jstr(v, "node", b2, sizeof b2), extra,
                                       e && *e ? " error=" : "", e ? e : ""));
        if (s) add_line(r, DS_HISTORY, s, strlen(s), (int)i);
    }
    return 0;
}

/* ---- text matching -------------------------------------------------------- */

void cap_copy(const char *line, const PCRE2_SIZE *ov, uint32_t n, char *dst, size_t dl)
{
    dst[0] = '\0';
    if (!n || ov[2 * n] == PCRE2_UNSET) return;
    size_t l = ov[2 * n + 1] - ov[2 * n];
    if (l >= dl) l = dl - 1;
    memcpy(dst, line + ov[2 * n], l);
    dst[l] = '\0';
}

typedef struct scanud {
    run *r;
    int line;
} scanud;

/* The MCA bank status word of a kernel machine-check record (Linux x86
 * MCE, Intel SDM / AMD APM): bit 63 VAL, 61 UC, 57 PCC.  Uncorrected means
 * valid and either not corrected or the processor context corrupt; a
 * word that is not valid says nothing, so it is neither. */
static int mca_kind(const char *hex)
{
    char *end;
    errno = 0;
    unsigned long long st = strtoull(hex, &end, 16);
    if (errno || end == hex || *end || !(st >> 63 & 1)) return 0;
    return (st >> 61 & 1) || (st >> 57 & 1) ? 1 : 2;
}

/* A counter named and read 0 right after it ("PCIE_REPLAY 0", "ECC: 0",
 * "reasons = 0x0"): the match ends at the name and the value that follows
 * is zero.  The name of a class's counter read 0 is absence of evidence. */
static bool named_zero(const char *s, size_t len, size_t end)
{
    /* the match's last word names a counter, not a state ("Pending  0" in a
     * table is a restart count beside a pod's state) */
    static const char *const counter[] = {"replay", "crc", "ecc",  "error", "count",  "reason",
                                          "sbe",    "dbe", "flit", "remap", "retire", "total"};
    size_t w = end;
    while (w > 0 && (isalnum((unsigned char)s[w - 1]) || s[w - 1] == '_'))
        w--;
    tline word = {.s = s + w, .len = end - w};
    if (!facts_any(&word, counter, sizeof counter / sizeof *counter)) return false;
    size_t j = end, k = 0;
    while (j < len && k < 4 && strchr(" \t:=\x22\x27", s[j]))
        j++, k++;
    if (j >= len || s[j] != '0' || j == end) return false;
    j++;
    if (j < len && (s[j] == 'x' || s[j] == 'X'))
        for (j++; j < len && s[j] == '0';)
            j++;
    return j == len || !(isalnum((unsigned char)s[j]) || s[j] == '.' || s[j] == '/');
}

static void on_hit(void *ud, int sig, const char *s, size_t len, const PCRE2_SIZE *ov)
{
    scanud *u = ud;
    run *r = u->r;
    const diag_sig *g = &r->db->sigs[sig];
    if (g->ncls > 0 && !g->xid && !g->boot && named_zero(s, len, ov[1])) return;
    if (g->mca) {
        char st[24];
        cap_copy(s, ov, g->cap_mca, st, sizeof st);
        if (mca_kind(st) != g->mca) return;
    }
    r->raws = diag_grow(r->raws, &r->capraws, r->nraws + 1, sizeof *r->raws, &r->oom);
    if (r->nraws >= r->capraws) return;
    rawm *m = &r->raws[r->nraws++];
    memset(m, 0, sizeof *m);
    m->sig = sig;
    m->line = u->line;
    char x[8];
    cap_copy(s, ov, g->cap_xid, x, sizeof x);
    m->xid = x[0] ? atoi(x) : -1;
    cap_copy(s, ov, g->cap_pid, m->pid, sizeof m->pid);
    cap_copy(s, ov, g->cap_key, m->key, sizeof m->key);
    cap_copy(s, ov, g->cap_val, m->val, sizeof m->val);
    cap_copy(s, ov, g->cap_host, m->host, sizeof m->host);
}

void scan_all(run *r)
{
    uint32_t *stamp = calloc((size_t)r->db->nsigs + 1, sizeof *stamp);
    if (!stamp) {
        r->oom = true;
        return;
    }
    for (int i = 0; i < r->nlines; i++) {
        scanud u = {r, i};
        diag_scan_line(r->db, 1u << r->lines[i].src, r->lines[i].s, r->lines[i].len, r->md, stamp,
                       (uint32_t)i + 1, on_hit, &u);
    }
    free(stamp);
}

/* Quoted or hypothetical text (a ticket quoting a runbook or an old log,
 * "if dmesg shows ...", a line prefixed "> ") names alarms nobody saw now:
 * it is no evidence.  Its lines are taken out and the rest scanned again,
 * so no signature, rule or context reads them.  Kernel lines are never
 * quotes; the quote signatures read events and job logs only. */
/* A line DCGM wrote or a tool of it printed. */
static bool dcgm_line(const tline *l)
{
    static const char *const w[] = {"dcgm", "DCGM", "Dcgm", "Health Monitor"};
    for (size_t k = 0; k < sizeof w / sizeof *w; k++)
        if (memmem(l->s, l->len, w[k], strlen(w[k]))) return true;
    return false;
}

/* A line whose last visible character is a colon. */
static bool ends_colon(const tline *l)
{
    size_t n = l->len;
    while (n > 0 && isspace((unsigned char)l->s[n - 1]))
        n--;
    return n > 0 && l->s[n - 1] == ':';
}

/* A line of a chat that is not talk: a reading (an Xid pasted with the
 * driver's own detail, a measurement someone reports) or a tool's line.
 * What counts is one list, in signatures.yaml: the exclude of the
 * quoted-chat-line signature, which keeps such a line of a chat in; a
 * chat export's entry taken out as conversation keeps the same lines. */
static bool chat_reading(run *r, const tline *l)
{
    for (int k = 0; k < r->db->nsigs; k++)
        if (strcmp(r->db->sigs[k].id, "quoted-chat-line") == 0)
            return diag_re_match(&r->db->sigs[k].exclude, l->s, l->len, r->md);
    return false;
}

void drop_quoted(run *r)
{
    unsigned char *q = NULL;
    for (int k = 0; k < r->nraws; k++) {
        const rawm *m = &r->raws[k];
        int qt = r->db->sigs[m->sig].quote;
        if (!qt) continue;
        if (!q && !(q = calloc((size_t)r->nlines + 1, 1))) {
            r->oom = true;
            return;
        }
        const tline *l = &r->lines[m->line];
        if (qt == 3 && r->nflat < 16 && !q[m->line]) r->flat[r->nflat++] = *l;
        /* a test that injects errors (dcgmi test --inject, a chaos run):
         * everything its log or events report is the test's, and so is
         * what DCGM reports in the window, wherever it is pasted */
        if (qt == 4) r->injected = true;
        bool whole = qt == 4 && (l->src == DS_EVENTS || l->src == DS_JOB);
        /* a note that ends on a colon introduces what it quotes: the next
         * entry of its source is that quote */
        int upto = l->entry + (qt == 2 && ends_colon(l));
        bool chat = strcmp(r->db->sigs[m->sig].id, "quoted-chat-entry") == 0;
        for (int i = 0; i < r->nlines; i++)
            if (i == m->line ||
                (qt == 2 && r->lines[i].src == l->src && r->lines[i].entry >= l->entry &&
                 r->lines[i].entry <= upto && !(chat && chat_reading(r, &r->lines[i]))) ||
                (whole && r->lines[i].src == l->src) ||
                (qt == 4 && r->lines[i].src != DS_KERNEL && dcgm_line(&r->lines[i])))
                q[i] = 1;
    }
    if (!q && !(q = calloc((size_t)r->nlines + 1, 1))) {
        r->oom = true;
        return;
    }
    bool any = history_lines(r, q) > 0;
    for (int i = 0; i < r->nlines && !any; i++)
        any = q[i];
    if (!any) {
        free(q);
        return;
    }
    int n = 0;
    for (int i = 0; i < r->nlines; i++) {
        if (q[i])
            r->nsrc[r->lines[i].src]--;
        else
            r->lines[n++] = r->lines[i];
    }
    r->nlines = n;
    r->nraws = 0;
    free(q);
    scan_all(r);
}

bool any_line_matches(run *r, const diag_re *re, unsigned mask)
{
    for (int i = 0; i < r->nlines; i++)
        if ((mask & (1u << r->lines[i].src)) &&
            diag_re_match(re, r->lines[i].s, r->lines[i].len, r->md))
            return true;
    return false;
}

/* Another source must agree (requires) and none may explain it away
 * (unless): both read every text source. */
bool cross_source_ok(run *r, const diag_sig *g)
{
    const unsigned text = ~(1u << DS_METRICS);
    /* the Xid a fresh last-Xid gauge holds agrees like a log line of it */
    return (!g->requires.code || any_line_matches(r, &g->requires, text) ||
            (r->gauge_xids[0] &&
             diag_re_match(&g->requires, r->gauge_xids, strlen(r->gauge_xids), r->md))) &&
           (!g->unless.code || !any_line_matches(r, &g->unless, text));
}

#define CTX_AFTER_EVENTS 3 /* lines of a pasted message after its error */

/* Looks back from line li (same source) for the context pattern, and in
 * events a few lines on. */
bool context_ok(run *r, const diag_sig *g, int li)
{
    bool found = false;
    int src = r->lines[li].src, seen = 0;
    for (int i = li; i >= 0 && seen <= g->ctx_before; i--) {
        if (r->lines[i].src != src) continue;
        seen++;
        if (diag_re_match(&g->ctx, r->lines[i].s, r->lines[i].len, r->md)) {
            found = true;
            break;
        }
        if (i != li && g->ctx_stop.code &&
            diag_re_match(&g->ctx_stop, r->lines[i].s, r->lines[i].len, r->md))
            break;
    }
    /* a person pasting an error tells its setting in any order ("it dies
     * in loss.backward()" after the traceback, the next chat message):
     * the next lines of the events count too */
    for (int i = li + 1, n = 0; !found && src == DS_EVENTS && i < r->nlines && n < CTX_AFTER_EVENTS;
         i++) {
        if (r->lines[i].src != src) continue;
        n++;
        found = diag_re_match(&g->ctx, r->lines[i].s, r->lines[i].len, r->md);
    }
    return g->ctx_negate ? !found : found;
}

char *line_evidence(run *r, int li, const char *extra)
{
    const tline *l = &r->lines[li];
    char pre[560];
    snprintf(pre, sizeof pre, "%s: %.500s", SRC_LABEL[l->src], extra ? extra : "");
    return diag_evidence(pre, l->s, l->len);
}

static char *xid_line_ev(run *r, int line, const char *extra, const void *unused)
{
    (void)unused;
    return line_evidence(r, line, extra);
}

/* A line some class signature or a catalogued Xid of a class reads: what
 * it says is explained by that class, not unexplained failure words. */
static bool line_classed(const run *r, int li)
{
    for (int k = 0; k < r->nraws; k++) {
        const rawm *m = &r->raws[k];
        if (m->line != li) continue;
        const diag_sig *g = &r->db->sigs[m->sig];
        if (g->anomaly || g->quote || g->boot || g->marker || g->recovery) continue;
        if (g->xid) {
            const diag_xid *x = diag_xid_find(r->db, m->xid);
            if (x && x->cls >= 0) return true;
        } else if (g->ncls > 0) {
            return true;
        }
    }
    return false;
}

bool group_marked(const run *r, const char *group)
{
    for (int i = 0; i < r->nmarks; i++)
        if (strcmp(r->marks[i], group) == 0) return true;
    return false;
}

bool anomaly_seen(const run *r, const char *group)
{
    for (int i = 0; i < r->nanoms; i++)
        if (strcmp(r->anoms[i].group, group) == 0) return true;
    return false;
}

/* Turns raw matches of text signatures into hits.  What a source logged
 * before its last reboot is history: weak at most, never enough to act. */
/* A drain reason outlived by what was collected now: fresher sources
 * (kernel log, events, metrics) were given, and either the node was
 * resumed (no drain, down or fail flag left in its state) or the reason
 * itself records the repair.  Its fault words are then history. */
static bool reason_stale(const run *r)
{
    if (r->nsrc[DS_KERNEL] + r->nsrc[DS_EVENTS] + r->nsrc[DS_METRICS] == 0) return false;
    static const char *const held[] = {"DRAIN",          "DOWN",       "FAIL",
                                       "NOT_RESPONDING", "NO_RESPOND", "INVAL"};
    static const char *const repaired[] = {"rma",     "replac",  "repair", "swap",
                                           "fixed",   "resolv",  "done",   "closed",
                                           "complet", "cleared", "reseat", "new board"};
    bool states = false, resumed = true, fixed = false;
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        if (l->src != DS_STATE && l->src != DS_REASON) continue;
        char buf[1024]; /* the words looked for come early in a reason */
        size_t n = l->len < sizeof buf - 1 ? l->len : sizeof buf - 1;
        memcpy(buf, l->s, n);
        buf[n] = 0;
        if (l->src == DS_STATE) {
            states = true;
            for (size_t k = 0; k < sizeof held / sizeof *held; k++)
                if (strcasestr(buf, held[k])) resumed = false;
        } else if (l->src == DS_REASON) {
            if (r->oldl && r->oldl[i]) fixed = true; /* dated before a repair on record */
            for (size_t k = 0; k < sizeof repaired / sizeof *repaired; k++)
                if (strcasestr(buf, repaired[k])) fixed = true;
        }
    }
    return fixed || (states && resumed);
}

/* A tool's display of Slurm's reason (sinfo -R, scontrol's Reason=) pasted
 * into events or a job log: the operator's words of some time ago, like
 * slurm.reason.  With the kernel log or metrics collected now, those
 * decide a destructive class and the record is history. */
static bool reason_record(const run *r, int li)
{
    const tline *l = &r->lines[li];
    if ((l->src != DS_EVENTS && l->src != DS_JOB) || r->nsrc[DS_KERNEL] + r->nsrc[DS_METRICS] == 0)
        return false;
    size_t n = l->len < 1023 ? l->len : 1023;
    char buf[1024];
    memcpy(buf, l->s, n);
    buf[n] = 0;
    return strstr(buf, "sinfo -R") || strstr(buf, "REASON:") || strstr(buf, "Reason=");
}

/* How many distinct hosts the matches of signature si name (up to the
 * first dot, in any case): one node's ranks are one host. */
static int hosts_named(const run *r, int si)
{
    const char *seen[16];
    int n = 0;
    for (int k = 0; k < r->nraws && n < 16; k++) {
        const char *h = r->raws[k].host;
        if (r->raws[k].sig != si || !h[0]) continue;
        size_t hl = strcspn(h, ".");
        bool dup = false;
        for (int i = 0; i < n && !dup; i++)
            dup = strcspn(seen[i], ".") == hl && strncasecmp(seen[i], h, hl) == 0;
        if (!dup) seen[n++] = h;
    }
    return n;
}

/* Whether the kernel loaded the driver after line li (a later line of
 * the same source, or one stamped after it): the module reloaded since,
 * a version mismatch the tools saw before is over. */
static bool driver_loaded_after(const run *r, int li)
{
    int year = 1970 + (int)(time(NULL) / 31556952);
    const tline *l = &r->lines[li];
    double t = line_stamp(l->s, l->len, year);
    for (int i = 0; i < r->nlines; i++) {
        const tline *k = &r->lines[i];
        if (i == li || !memmem(k->s, k->len, "NVRM: loading NVIDIA", 20)) continue;
        if (k->src == l->src ? i > li : (!isnan(t) && line_stamp(k->s, k->len, year) > t))
            return true;
    }
    return false;
}

/* Whether a signature of group grp matched line li. */
static bool line_of_group(const run *r, int li, const char *grp)
{
    for (int k = 0; k < r->nraws; k++)
        if (r->raws[k].line == li && strcmp(r->db->sigs[r->raws[k].sig].group, grp) == 0)
            return true;
    return false;
}

/* Whether some Xid signature matched line li. */
static bool xid_matched(const run *r, int li)
{
    for (int k = 0; k < r->nraws; k++)
        if (r->raws[k].line == li && r->db->sigs[r->raws[k].sig].xid) return true;
    return false;
}

/* An Xid named by the catalog's mnemonic instead of its number
 * ("NVLINK_RLW_ERROR", "ROBUST_CHANNEL_..."): a monitor's or a table's
 * name for the same event, read as that code (strong at most). */
static void mnemonic_xids(run *r)
{
    for (int li = 0; li < r->nlines; li++) {
        const tline *l = &r->lines[li];
        if (l->src == DS_STATE || l->src == DS_JOBS || xid_matched(r, li)) continue;
        for (size_t i = 0; i < l->len; i++) {
            if (!isupper((unsigned char)l->s[i]) ||
                (i && (isalnum((unsigned char)l->s[i - 1]) || l->s[i - 1] == '_')))
                continue;
            size_t e = i;
            bool us = false;
            while (e < l->len && (isupper((unsigned char)l->s[e]) ||
                                  isdigit((unsigned char)l->s[e]) || l->s[e] == '_'))
                us |= l->s[e++] == '_';
            if (e - i >= 8 && us && (e == l->len || !isalnum((unsigned char)l->s[e])))
                for (int x = 0; x < r->db->nxids; x++) {
                    const char *mn = r->db->xids[x].mnemonic;
                    if (strlen(mn) != e - i || strncmp(mn, l->s + i, e - i) != 0) continue;
                    xid_seen(r, r->db->xids[x].code, KIND_OF[l->src],
                             before_boot(r, li) ? ST_WEAK : ST_STRONG, "xid-line", li, xid_line_ev,
                             NULL);
                    i = l->len; /* one Xid a line */
                    break;
                }
            if (i < e) i = e;
        }
    }
}

/* A line that titles an Xid list ("Xid table for gb200-n01:", "Xids
 * seen (last 24h):"): the rows under it in its entry give codes alone. */
static bool xid_title(const tline *l)
{
    size_t n = l->len;
    while (n && isspace((unsigned char)l->s[n - 1]))
        n--;
    return n && l->s[n - 1] == ':' && memmem(l->s, l->len, "id", 2) &&
           (memmem(l->s, l->len, "Xid", 3) || memmem(l->s, l->len, "XID", 3) ||
            memmem(l->s, l->len, "xid", 3));
}

/* The first whole number of a row under an Xid title that the catalog
 * knows, past a GPU's index ("GPU 2   145   NVLink5 RLW error"); 0 none. */
static int row_code(const run *r, const tline *l)
{
    for (size_t i = 0; i < l->len; i++) {
        if (!isdigit((unsigned char)l->s[i]) || (i && !strchr(" \t|,", l->s[i - 1]))) continue;
        size_t e = i;
        while (e < l->len && isdigit((unsigned char)l->s[e]))
            e++;
        bool whole = e == l->len || strchr(" \t|,", l->s[e]);
        size_t b = i;
        while (b && strchr(" \t", l->s[b - 1]))
            b--;
        bool index = b >= 3 && strncasecmp(l->s + b - 3, "gpu", 3) == 0;
        /* a code is a column of its own: after the row's start, a bar, a
         * comma or another number, never a word's value ("temp 63") */
        bool column = b == 0 || strchr("|,", l->s[b - 1]) || isdigit((unsigned char)l->s[b - 1]);
        int code = atoi(l->s + i);
        if (whole && column && !index && e - i <= 3 && diag_xid_find(r->db, code)) return code;
        i = e;
    }
    return 0;
}

static void titled_xids(run *r)
{
    int title = -1;
    for (int li = 0; li < r->nlines; li++) {
        const tline *l = &r->lines[li];
        if (l->src == DS_STATE || l->src == DS_JOBS) continue;
        if (xid_title(l)) {
            title = li;
            continue;
        }
        if (title < 0 || r->lines[title].src != l->src || li - title > 32 || xid_matched(r, li))
            continue;
        /* the rows run on (one entry or one a row) until a line gives none */
        int code = row_code(r, l);
        if (!code) {
            title = -1;
            continue;
        }
        xid_seen(r, code, KIND_OF[l->src], before_boot(r, li) ? ST_WEAK : ST_STRONG, "xid-line", li,
                 xid_line_ev, NULL);
    }
}

void text_hits(run *r)
{
    const struct fm_diag_db *db = r->db;
    find_boots(r);
    bool stale_reason = reason_stale(r);
    for (int si = 0; si < db->nsigs; si++) {
        const diag_sig *g = &db->sigs[si];
        if (g->is_metric || (g->ncls == 0 && !g->xid && !g->anomaly && !g->recovery && !g->marker))
            continue;
        int count = 0;
        for (int k = 0; k < r->nraws; k++)
            if (r->raws[k].sig == si && (!g->ctx.code || context_ok(r, g, r->raws[k].line)))
                count++;
        if (count < g->min_count || count == 0) continue;
        if (g->min_hosts > 1 && hosts_named(r, si) < g->min_hosts) continue;
        if (g->also.code && !any_line_matches(r, &g->also, g->srcmask)) continue;
        if (!cross_source_ok(r, g)) continue;
        int emitted = 0;
        for (int k = 0; k < r->nraws && emitted < 50; k++) {
            const rawm *m = &r->raws[k];
            if (m->sig != si || (g->ctx.code && !context_ok(r, g, m->line))) continue;
            int kind = KIND_OF[r->lines[m->line].src];
            /* another host's line is no record of this node, except where
             * the spread over hosts is the evidence */
            bool old = before_boot(r, m->line) && !(g->min_hosts > 1 && r->oldl[m->line] == 2);
            r->cur_old = old;
            r->cur_reason =
                (r->lines[m->line].src == DS_REASON && stale_reason) || reason_record(r, m->line);
            int str = old ? ST_WEAK : g->strength;
            const char *oldnote = old ? OLD_NOTE[r->oldl[m->line]] : NULL;
            if (g->marker) {
                if (!old && r->nmarks < 32 && !group_marked(r, g->group))
                    r->marks[r->nmarks++] = g->group;
            } else if (g->recovery) {
                if (old) continue;
                const diag_xrec *x = diag_xrec_find(db, m->key, m->val);
                if (x && (!r->rec || action_rank(x->action) > action_rank(r->rec->action))) {
                    r->rec = x;
                    r->rec_line = m->line;
                }
                if (!x)
                    add_anomaly(r, ST_STRONG, 1, g->group,
                                line_evidence(r, m->line,
                                              "[Xid 154 with a recovery action the "
                                              "catalog does not know] "));
            } else if (g->anomaly) {
                /* the fault a stale reason names is history, not unexplained */
                if (r->cur_reason) continue;
                /* history a known class reads is that class's, weak and old */
                if (old && line_classed(r, m->line)) continue;
                /* and with a repair on record (a part swapped, an RMA), the
                 * past's unexplained lines are of what was repaired */
                if (old && r->repaired) continue;
                /* a failed job the node's later jobs ran clean after */
                if (old && r->oldl[m->line] == OLD_JOB_BEFORE_CLEAN) continue;
                /* the driver's state as its tools saw it (a user/kernel
                 * version mismatch mid-upgrade, no devices found) is what
                 * a reboot resets: before one it is history; in the newest
                 * boot it is read again */
                if ((old || driver_loaded_after(r, m->line)) &&
                    line_of_group(r, m->line, "anomaly-gpu-tool"))
                    continue;
                add_anomaly(r, str, g->level >= 0 ? g->level : SRC_LEVEL[r->lines[m->line].src],
                            g->group, line_evidence(r, m->line, old ? oldnote : "[unexplained] "));
            } else if (g->xid) {
                xid_seen(r, m->xid, kind, old ? ST_WEAK : g->xid_cap, g->group, m->line,
                         xid_line_ev, NULL);
            } else {
                for (int c = 0; c < g->ncls; c++)
                    add_hit(r, g->cls[c], kind, str, g->group, line_evidence(r, m->line, oldnote));
            }
            emitted++;
        }
    }
    r->cur_old = false;
    r->cur_reason = false;
    mnemonic_xids(r);
    titled_xids(r);
}

/* Distinct evidence groups of class c among hits that are not history. */
int fresh_groups(const run *r, int c)
{
    int n = 0;
    for (int i = 0; i < r->nhits; i++) {
        const hit *h = &r->hits[i];
        if (h->cls != c || h->old) continue;
        bool seen = false;
        for (int j = 0; j < i && !seen; j++)
            seen =
                r->hits[j].cls == c && !r->hits[j].old && strcmp(r->hits[j].group, h->group) == 0;
        n += !seen;
    }
    return n;
}

/* A Prometheus HTTP API answer pasted into events or a job log (curl of
 * /api/v1/query or query_range: {"data":{"resultType":"vector"|"matrix",
 * "result":[{"metric":{...},"value"|"values":...}]}}, or its result list
 * alone) is metrics: each sample becomes {name, labels, value}, appended
 * to signals.metrics in a new array (NULL: none found).  Series without
 * __name__ (an aggregation) keep the query's text out: they are skipped. */
/* The series name of a query's answer that drops __name__: an aggregation
 * over time or over series that keeps the unit (avg/min/max/last/quantile
 * _over_time, avg/min/max [by (...)]) of one plain selector, found in the
 * text before the answer, named as a recording rule would be
 * (metric:function): no instantaneous reading, a summary of several.  ""
 * when there is none (a rate, a sum). */
static void query_name(const char *s, size_t upto, char *out, size_t cap)
{
    /* after the summaries, the changes of a counter: named as written,
     * increase(NAME), which the counter rules read as its movement */
    static const char *const fns[] = {
        "avg_over_time", "max_over_time", "min_over_time", "last_over_time", "quantile_over_time",
        "avg",           "max",           "min",           "increase",       "rate",
        "irate",         "delta",         "idelta",        "deriv"};
    enum { FIRST_CHANGE = 8 };
    out[0] = 0;
    for (size_t f = 0; f < sizeof fns / sizeof *fns && !out[0]; f++) {
        size_t fl = strlen(fns[f]);
        for (const char *p = s; p && p + fl < s + upto; p = strstr(p + 1, fns[f])) {
            p = strstr(p, fns[f]);
            if (!p || p + fl >= s + upto) break;
            if (p > s && (isalnum((unsigned char)p[-1]) || p[-1] == '_')) continue;
            /* a change nested in another function (a summary of a rate)
             * has neither unit: only the outermost one names the answer */
            if (f >= FIRST_CHANGE) {
                const char *b = p;
                while (b > s && b[-1] == ' ')
                    b--;
                if (b > s && b[-1] == '(') continue;
            }
            const char *q = p + fl;
            while (*q == ' ')
                q++;
            if (strncmp(q, "by", 2) == 0 || strncmp(q, "without", 7) == 0) {
                q = strchr(q, ')');
                if (!q) break;
                q++;
                while (*q == ' ')
                    q++;
            }
            if (*q != '(') continue;
            q++;
            while (*q == ' ')
                q++;
            if (f == 4) { /* quantile_over_time(0.9, x[1h]) */
                while (*q && *q != ',' && *q != ')')
                    q++;
                if (*q != ',') continue;
                q++;
                while (*q == ' ')
                    q++;
            }
            size_t n = 0;
            while ((isalnum((unsigned char)q[n]) || q[n] == '_' || q[n] == ':') && n + 1 < cap)
                n++;
            if (!n || isdigit((unsigned char)q[0]) || !strchr("{[) ", q[n]) || !q[n]) continue;
            if (f >= FIRST_CHANGE)
                snprintf(out, cap, "%s(%.*s)", fns[f], (int)n, q);
            else
                snprintf(out, cap, "%.*s:%s", (int)n, q, fns[f]);
            break;
        }
    }
}

static void prom_series(json_t *out, const json_t *item, const char *qname)
{
    const json_t *metric = json_object_get(item, "metric");
    const char *name = json_string_value(json_object_get(metric, "__name__"));
    if (!name && qname && *qname) name = qname;
    if (!json_is_object(metric) || !name) return;
    json_t *labels = json_deep_copy(metric);
    if (!labels) return;
    json_object_del(labels, "__name__");
    const json_t *one = json_object_get(item, "value");
    const json_t *many = json_object_get(item, "values");
    size_t n = json_is_array(many) ? json_array_size(many) : 1;
    for (size_t i = 0; i < n && json_array_size(out) < MAX_METRICS; i++) {
        const json_t *pt = json_is_array(many) ? json_array_get(many, i) : one;
        const char *v = json_string_value(json_array_get(pt, 1));
        char *end;
        double d = v ? strtod(v, &end) : 0;
        if (!v || end == v || *end || !isfinite(d)) continue;
        /* a range answer's sample keeps its time: a series over hours is
         * read as one (how long it held), not as unordered readings */
        const json_t *at = json_array_get(pt, 0);
        json_t *o = json_pack("{s:s, s:O, s:f}", "name", name, "labels", labels, "value", d);
        if (o && json_is_array(many) && json_is_number(at))
            json_object_set_new(o, "ts", json_real(json_number_value(at)));
        json_array_append_new(out, o);
    }
    json_decref(labels);
}

json_t *prom_metrics(const json_t *signals)
{
    static const char *const srcs[] = {"events", "job_log"};
    json_t *out = NULL;
    for (size_t k = 0; k < 2; k++) {
        const json_t *arr = json_object_get(signals, srcs[k]);
        size_t i;
        const json_t *v;
        json_array_foreach(arr, i, v)
        {
            const char *s = json_string_value(v);
            if (!s || !strstr(s, "\"metric\"")) continue;
            /* the JSON may follow a command line with braces of its own
             * (a PromQL selector): try the first few openings */
            json_t *doc = NULL;
            const json_t *res = NULL;
            const char *b = s;
            for (int tries = 0; tries < 16 && !res && (b = strpbrk(b, "{[")); tries++, b++) {
                json_error_t je;
                json_decref(doc);
                doc = json_loads(b, JSON_DISABLE_EOF_CHECK, &je);
                res = json_object_get(json_object_get(doc, "data"), "result");
                if (!res) res = json_object_get(doc, "result");
                if (!res && json_is_array(doc)) res = doc;
            }
            if (json_is_array(res) && !out) {
                const json_t *mv = json_object_get(signals, "metrics");
                out = json_is_array(mv) ? json_copy((json_t *)mv) : json_array();
            }
            size_t j;
            const json_t *item;
            char qname[128] = "";
            if (out && json_is_array(res) && b) query_name(s, (size_t)(b - s), qname, sizeof qname);
            /* the query echoed inside the answer (a tool's {"query": ...}) */
            const char *qf = json_string_value(json_object_get(doc, "query"));
            if (!qf) qf = json_string_value(json_object_get(json_object_get(doc, "data"), "query"));
            if (out && json_is_array(res) && !qname[0] && qf)
                query_name(qf, strlen(qf), qname, sizeof qname);
            /* the query on one of the few lines before its answer */
            for (size_t back = 1; back <= 3 && back <= i && out && json_is_array(res) && !qname[0];
                 back++) {
                const char *prev = json_string_value(json_array_get(arr, i - back));
                if (prev) query_name(prev, strlen(prev), qname, sizeof qname);
            }
            if (out && json_is_array(res))
                json_array_foreach(res, j, item) prom_series(out, item, qname);
            json_decref(doc);
        }
    }
    return out;
}
