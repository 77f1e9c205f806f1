/* Facts that make a reading history rather than a current fault, read
 * from any text layout: a cumulative counter read several times at the
 * same value ("key: value" lines, table rows under a header, which
 * take_text names column by column), and a port going down and up while
 * the kernel and its drivers come up after a boot.  A counter read rising
 * over time is the opposite fact: evidence of its class. */
#include "diag_int.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_READINGS 512
#define KEY_LEN 96
#define BOOT_WINDOW_S 180.0 /* drivers and interfaces come up in the first minutes */

typedef struct reading {
    char key[KEY_LEN]; /* counter name and the row's identity (gpu, host, port) */
    double v;
    double t; /* the reading's own time, NAN without one */
    int line;
} reading;

/* Words naming a cumulative error counter (lower case). */
static const char *const COUNTER_WORDS[] = {
    "replay", "crc",    "flit",      "ecc",     "sbe",    "dbe",      "correct",
    "symbol", "downed", "link_down", "rcv_err", "rcverr", "recovery", "err_count"};
/* Keys naming which series a row belongs to. */
static const char *const IDENT_KEYS[] = {"gpu",  "index", "device", "dev",  "host", "hostname",
                                         "node", "port",  "lane",   "link", "hca",  "uuid",
                                         "bus",  "pci",   "minor",  "ca",   "nic",  "iface"};
/* A key naming when a row was read ("time (UTC)", "date", "ts"). */
static bool time_key(const char *key)
{
    static const char *const w[] = {"ts", "at", "when", "utc"};
    for (size_t i = 0; i < sizeof w / sizeof *w; i++)
        if (strcmp(key, w[i]) == 0) return true;
    return strncmp(key, "time", 4) == 0 || strncmp(key, "date", 4) == 0;
}

static bool word_in(const char *key, const char *const *w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strstr(key, w[i])) return true;
    return false;
}

static bool key_is(const char *key, const char *const *w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(key, w[i]) == 0) return true;
    return false;
}

/* A leading stamp ("2026-12-06 08:00", "[  12.3]", "Dec 07 00:01:12")
 * is when, not what: skipped so two reads of one counter share a key. */
static size_t skip_stamp(const char *s, size_t n)
{
    static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    size_t i = 0;
    for (size_t m = 0; m < 12 && n > 4; m++)
        if (strncmp(s, mon[m], 3) == 0 && s[3] == ' ') i = 4;
    while (i < n && strchr("0123456789-:T.Z[] /", s[i]))
        i++;
    if (i + 4 <= n && strncmp(s + i, "UTC ", 4) == 0) i += 4;
    return i;
}

/* Lower-cased words of s[a, b), single-spaced: the normalised key. */
static void norm_key(const char *s, size_t a, size_t b, char *out, size_t cap)
{
    size_t o = 0;
    bool sp = false;
    for (size_t i = a; i < b && o + 2 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isalnum(c) || c == '_') {
            if (sp && o) out[o++] = ' ';
            sp = false;
            out[o++] = (char)tolower(c);
        } else {
            sp = true;
        }
    }
    out[o] = 0;
}

/* A number at s[i] ("18233", "61,204", "3.5"), ended by a blank, a
 * separator or the line's end (not a time "08:00" nor a unit "3ms"); its
 * length, 0 when none. */
static size_t read_number(const char *s, size_t n, size_t i, double *v)
{
    char buf[40];
    size_t o = 0, j = i;
    while (j < n && o + 1 < sizeof buf) {
        if (isdigit((unsigned char)s[j]) || s[j] == '.') {
            buf[o++] = s[j++];
        } else if (s[j] == ',' && j + 3 < n && isdigit((unsigned char)s[j + 1]) &&
                   isdigit((unsigned char)s[j + 2]) && isdigit((unsigned char)s[j + 3]) &&
                   (j + 4 == n || !isdigit((unsigned char)s[j + 4]))) {
            j++; /* a thousands separator */
        } else {
            break;
        }
    }
    if (!o || (j < n && !strchr(" \t,;|)}\"", s[j]))) return 0;
    buf[o] = 0;
    *v = strtod(buf, NULL);
    return j - i;
}

/* "key: value" / "key = value" pairs of one line, keys bounded by the
 * previous separator (',', ';', '|', '{') or the line's start. */
int facts_pairs(const tline *l, facts_pair *p, int cap)
{
    const char *s = l->s;
    size_t n = l->len, start = skip_stamp(s, n);
    int k = 0;
    for (size_t i = start; i < n && k < cap; i++) {
        if (s[i] != ':' && s[i] != '=') continue;
        if (i + 1 < n && isdigit((unsigned char)s[i + 1]) && i && isdigit((unsigned char)s[i - 1]))
            continue; /* a time's colon */
        size_t a = i;
        /* "key=value" logs separate their pairs with blanks: an '=' key is
         * one token; a ':' key may be words ("Replays Number Since Reset") */
        while (a > start && !strchr(",;|{\"", s[a - 1]) &&
               !(s[i] == '=' && isspace((unsigned char)s[a - 1])))
            a--;
        size_t v = i + 1;
        /* blanks, and the dot leaders perfquery prints ("Counter:....12") */
        while (v < n &&
               (s[v] == ' ' || s[v] == '\t' || (s[v] == '.' && v + 1 < n && s[v + 1] == '.')))
            v++;
        if (v < n && s[v] == '.' && v > i + 1 && s[v - 1] == '.') v++;
        size_t e = v;
        while (e < n && !strchr(",;|}", s[e]))
            e++;
        while (e > v && isspace((unsigned char)s[e - 1]))
            e--;
        norm_key(s, a, i, p[k].key, sizeof p[k].key);
        if (!p[k].key[0]) continue;
        p[k].val = v;
        p[k].vlen = e - v;
        k++;
        /* a label whose value is words ("Aggregate: SRAM Correctable :
         * 4410") stays part of the next key */
        if (v < n && (isdigit((unsigned char)s[v]) || s[v] == '"')) start = i + 1;
    }
    return k;
}

/* Readings of counters on line li; *other: the line carries a number
 * that is neither a counter, nor a row's identity, nor its time (a
 * temperature beside the counters keeps the line as evidence). */
static int line_readings(const run *r, int li, reading *out, int cap, bool *other)
{
    const tline *l = &r->lines[li];
    facts_pair p[24];
    int np = facts_pairs(l, p, 24), k = 0;
    char ident[KEY_LEN] = "";
    double t = line_stamp(l->s, l->len, 2026);
    for (int i = 0; i < np; i++) {
        const char *vs = l->s + p[i].val;
        if (key_is(p[i].key, IDENT_KEYS, sizeof IDENT_KEYS / sizeof *IDENT_KEYS)) {
            size_t o = strlen(ident);
            snprintf(ident + o, sizeof ident - o, " %.16s=%.*s", p[i].key,
                     (int)(p[i].vlen < 24 ? p[i].vlen : 24), vs);
        } else if (time_key(p[i].key) && isnan(t)) {
            t = line_stamp(vs, p[i].vlen, 2026);
        }
    }
    for (int i = 0; i < np; i++) {
        double v;
        size_t nl = read_number(l->s, p[i].val + p[i].vlen, p[i].val, &v);
        if (!nl || nl != p[i].vlen) continue;
        if (key_is(p[i].key, IDENT_KEYS, sizeof IDENT_KEYS / sizeof *IDENT_KEYS) ||
            time_key(p[i].key))
            continue;
        if (!word_in(p[i].key, COUNTER_WORDS, sizeof COUNTER_WORDS / sizeof *COUNTER_WORDS)) {
            *other = true;
            continue;
        }
        if (k == cap) break;
        snprintf(out[k].key, sizeof out[k].key, "%.60s%.34s", p[i].key, ident);
        out[k].v = v;
        out[k].t = t;
        out[k].line = li;
        k++;
    }
    return k;
}

/* Every counter reading of the text sources the quotes read (events, job
 * logs, history), in line order; other[li]: the line has other numbers. */
static int all_readings(const run *r, reading *rd, int cap, unsigned char *other)
{
    int n = 0;
    for (int i = 0; i < r->nlines && n < cap; i++) {
        int s = r->lines[i].src;
        if (s != DS_EVENTS && s != DS_JOB && s != DS_HISTORY) continue;
        bool o = false;
        n += line_readings(r, i, rd + n, cap - n, &o);
        if (other) other[i] = o;
    }
    return n;
}

/* The first reading of rd[i]'s key: its trend is judged from there. */
static int key_first(const reading *rd, int i)
{
    for (int j = 0; j < i; j++)
        if (strcmp(rd[j].key, rd[i].key) == 0) return j;
    return i;
}

/* How many readings of rd[i]'s key hold value v. */
static int value_count(const reading *rd, int n, int i, double v)
{
    int c = 0;
    for (int j = i; j < n; j++)
        c += strcmp(rd[j].key, rd[i].key) == 0 && rd[j].v == v;
    return c;
}

/* How the readings of rd[i]'s key (i its first) move: 1 flat (every value
 * read again later or earlier, one not zero: one dump taken twice, where
 * a section's volatile and aggregate counts share a name), 2 rising (each
 * at least the one before, the last above the first, read at two or more
 * times or three or more reads), 0 neither. */
static int key_trend(const reading *rd, int n, int i)
{
    int cnt = 0, timed = 0;
    bool again = true, up = true, nonzero = false;
    double first = rd[i].v, prev = rd[i].v;
    for (int j = i; j < n; j++) {
        if (strcmp(rd[j].key, rd[i].key) != 0) continue;
        cnt++;
        timed += !isnan(rd[j].t);
        again &= value_count(rd, n, i, rd[j].v) >= 2;
        nonzero |= rd[j].v != 0;
        up &= rd[j].v >= prev;
        prev = rd[j].v;
    }
    if (cnt < 2) return 0;
    if (again) return nonzero ? 1 : 0;
    return up && prev > first && (timed >= 2 || cnt >= 3) ? 2 : 0;
}

/* A line that says a counter did not move (counter-flat-line) names a
 * counter word of key. */
static bool told_flat(const run *r, const char *key)
{
    for (size_t w = 0; w < sizeof COUNTER_WORDS / sizeof *COUNTER_WORDS; w++) {
        if (!strstr(key, COUNTER_WORDS[w])) continue;
        for (int k = 0; k < r->nflat; k++)
            if (facts_has_ci(&r->flat[k], COUNTER_WORDS[w])) return true;
    }
    return false;
}

/* A counter read flat over the window is its lifetime, not a current
 * error: its lines are taken out (q), unless a line also carries another
 * number or a reading of a counter that moved.  Returns how many. */
static int flat_counter_lines(run *r, unsigned char *q)
{
    reading *rd = malloc(MAX_READINGS * sizeof *rd);
    unsigned char *other = calloc((size_t)r->nlines + 1, 1);
    unsigned char *moved = calloc((size_t)r->nlines + 1, 1);
    int marked = 0;
    if (!rd || !other || !moved) {
        r->oom = true;
        goto out;
    }
    int n = all_readings(r, rd, MAX_READINGS, other);
    unsigned char *flat = other; /* reused below: 2 marks a flat reading's line */
    for (int i = 0; i < n; i++) {
        int tr = key_trend(rd, n, key_first(rd, i));
        /* read once, but said in words not to move ("the replay count is
         * unchanged since Monday"): the same counter word in that line */
        if (tr == 0 && told_flat(r, rd[i].key)) tr = 1;
        if (tr == 1 && !flat[rd[i].line]) flat[rd[i].line] = 2;
        if (tr != 1) moved[rd[i].line] = 1;
    }
    for (int i = 0; i < r->nlines; i++)
        if (flat[i] == 2 && !moved[i] && !q[i]) {
            q[i] = 1;
            marked++;
        }
out:
    free(rd);
    free(other);
    free(moved);
    return marked;
}

/* ---- a boot's link noise ------------------------------------------------- */

/* dmesg's seconds since boot ("[   25.602119] ..."), -1 without them. */
static double uptime_stamp(const tline *l)
{
    size_t i = 0;
    if (!l->len || l->s[0] != '[') return -1;
    i = 1;
    while (i < l->len && l->s[i] == ' ')
        i++;
    if (i >= l->len || !isdigit((unsigned char)l->s[i])) return -1;
    char *end;
    char buf[32];
    size_t n = l->len - i < sizeof buf - 1 ? l->len - i : sizeof buf - 1;
    memcpy(buf, l->s + i, n);
    buf[n] = 0;
    double v = strtod(buf, &end);
    return *end == ']' ? v : -1;
}

static bool boot_line(const tline *l)
{
    return facts_has(l, "Linux version ") || facts_has(l, "Booting Linux") ||
           facts_has(l, "Command line: BOOT_IMAGE");
}

/* A port's state change: down or up as the link facts read them, or an
 * interface coming up (not ready, ready, a cable or module event). */
static bool link_line(const tline *l)
{
    static const char *const w[] = {"link is not ready", "link becomes ready", "cable unplugged",
                                    "port module event"};
    return facts_link_down(l) || facts_link_up(l) || facts_any(l, w, sizeof w / sizeof *w);
}

/* Links that go down and up within minutes of the kernel starting are
 * drivers and interfaces coming up, not a flapping port: taken out (q).
 * The time since boot is dmesg's own stamp, or a wall stamp against the
 * boot line of the same source. */
static int boot_link_lines(run *r, unsigned char *q)
{
    int marked = 0;
    for (int src = 0; src < DS_N; src++) {
        double boot_t = NAN;
        bool after_boot = false;
        for (int i = 0; i < r->nlines; i++) {
            const tline *l = &r->lines[i];
            if (l->src != src) continue;
            if (boot_line(l)) {
                boot_t = line_stamp(l->s, l->len, 2026);
                after_boot = true;
                continue;
            }
            if (!link_line(l) || q[i]) continue;
            double up = uptime_stamp(l);
            double t = line_stamp(l->s, l->len, 2026);
            bool in =
                (up >= 0 && up <= BOOT_WINDOW_S) || (after_boot && !isnan(boot_t) && !isnan(t) &&
                                                     t >= boot_t && t - boot_t <= BOOT_WINDOW_S);
            if (in) {
                q[i] = 1;
                marked++;
            }
        }
    }
    return marked;
}

/* ---- an alert that fired and later resolved ------------------------------ */

/* An identifier of the alert a line tells: the value of its alertname, an
 * incident number ("#48121", "INC-5512") or a CamelCase alert name
 * ("GPUThermalSlowdown"); its length, 0 none. */
static size_t alert_id(const tline *l, const char **at)
{
    const char *s = l->s;
    size_t n = l->len;
    for (size_t i = 0; i + 9 < n; i++)
        if (strncmp(s + i, "alertname", 9) == 0) {
            size_t v = i + 9;
            while (v < n && strchr("\"': =", s[v]))
                v++;
            size_t e = v;
            while (e < n && (isalnum((unsigned char)s[e]) || s[e] == '_'))
                e++;
            if (e - v >= 4) return *at = s + v, e - v;
        }
    for (size_t i = 0; i < n; i++) {
        if (i && (isalnum((unsigned char)s[i - 1]) || s[i - 1] == '_')) continue;
        size_t e = i;
        bool lower = false, camel = false;
        while (e < n &&
               (isalnum((unsigned char)s[e]) || s[e] == '_' || s[e] == '-' || s[e] == '#')) {
            if (lower && isupper((unsigned char)s[e])) camel = true;
            lower = islower((unsigned char)s[e]);
            e++;
        }
        size_t len = e - i, digits = 0;
        for (size_t k = i; k < e; k++)
            digits += isdigit((unsigned char)s[k]) != 0;
        bool incident = (s[i] == '#' && digits >= 3 && digits + 1 == len) ||
                        (isupper((unsigned char)s[i]) && memchr(s + i, '-', len) && digits >= 3 &&
                         !lower && !memchr(s + i, '#', len));
        if ((camel && len >= 6 && !memchr(s + i, '-', len)) || incident) return *at = s + i, len;
        if (e > i) i = e;
    }
    return 0;
}

/* The entries before a resolved alert that tell it firing (the same
 * alertname, incident number or alert name) are its history too: the
 * sources read now decide; the same alert firing after it stays. */
static int resolved_alert_lines(run *r, unsigned char *q)
{
    int marked = 0;
    for (int k = 0; k < r->nraws; k++) {
        if (strcmp(r->db->sigs[r->raws[k].sig].id, "alert-resolved") != 0) continue;
        int li = r->raws[k].line;
        const char *id;
        size_t n = alert_id(&r->lines[li], &id);
        if (!n) continue;
        for (int i = 0; i < li; i++) {
            const tline *l = &r->lines[i];
            if (q[i] || l->src != r->lines[li].src || l->entry == r->lines[li].entry ||
                !memmem(l->s, l->len, id, n))
                continue;
            q[i] = 1;
            marked++;
        }
    }
    return marked;
}

int history_lines(run *r, unsigned char *q)
{
    return flat_counter_lines(r, q) + boot_link_lines(r, q) + resolved_alert_lines(r, q) +
           disk_cleaned_lines(r, q) + user_stop_lines(r, q) + sensor_recovered_lines(r, q);
}

/* ---- a counter rising over time ------------------------------------------ */

/* The class a counter's name points at; -1 none (ECC totals and the like
 * are told by their own signatures, with their destructive weight). */
static int counter_class(const run *r, const char *key)
{
    if (strstr(key, "nvlink") || strstr(key, "crc") || strstr(key, "flit"))
        return diag_class_index(r->db, "gpu_nvlink_error");
    if (strstr(key, "pcie") || strstr(key, "replay"))
        return diag_class_index(r->db, "gpu_pcie_error");
    if (strstr(key, "sram")) return diag_class_index(r->db, "gpu_sram_ecc_rate");
    if (strstr(key, "downed") || strstr(key, "link_down") || strstr(key, "error_recovery"))
        return facts_downed_class(r, 0);
    return -1;
}

void counter_rising_rule(run *r)
{
    reading *rd = malloc(MAX_READINGS * sizeof *rd);
    if (!rd) {
        r->oom = true;
        return;
    }
    int n = all_readings(r, rd, MAX_READINGS, NULL);
    for (int i = 0; i < n; i++) {
        if (key_first(rd, i) != i || key_trend(rd, n, i) != 2) continue;
        int c = counter_class(r, rd[i].key);
        if (c < 0) continue;
        double last = rd[i].v;
        for (int j = i; j < n; j++)
            if (strcmp(rd[j].key, rd[i].key) == 0) last = rd[j].v;
        add_hit(r, c, KIND_OF[r->lines[rd[i].line].src], ST_STRONG, "fact-counter-rising",
                diag_fmt("counter %s rose from %g to %g over the readings given", rd[i].key,
                         rd[i].v, last));
    }
    free(rd);
}

/* ---- the Xid window read and found empty --------------------------------- */

/* The number a count line ends with ("... | grep -c Xid  0", "=> 0"), or
 * the next line of its source when that is a number alone; -1 none. */
long facts_count_answer(const run *r, int li)
{
    const tline *l = &r->lines[li];
    size_t e = l->len;
    while (e && isspace((unsigned char)l->s[e - 1]))
        e--;
    size_t b = e;
    while (b && isdigit((unsigned char)l->s[b - 1]))
        b--;
    if (b < e && b && strchr(" \t:=>", l->s[b - 1]) && e - b < 9) return strtol(l->s + b, NULL, 10);
    /* "-> 1 (Dec 06 16:40 Xid 94 above)": the count, then the line it
     * counted, which is the event already known; nothing new since */
    const char *ar = memmem(l->s, l->len, "-> ", 3);
    if (ar && ar[3] == '1' && ar + 5 < l->s + l->len && ar[4] == ' ' && ar[5] == '(' &&
        memmem(ar, (size_t)(l->s + l->len - ar), "Xid", 3))
        return 0;
    if (li + 1 >= r->nlines || r->lines[li + 1].src != l->src) return -1;
    const tline *n = &r->lines[li + 1];
    size_t a = 0, z = n->len;
    while (a < z && isspace((unsigned char)n->s[a]))
        a++;
    while (z > a && isspace((unsigned char)n->s[z - 1]))
        z--;
    if (a == z || z - a > 8 || strspn(n->s + a, "0123456789") < z - a) return -1;
    return strtol(n->s + a, NULL, 10);
}

/* Someone counted the node's Xid lines over a window and found none: a
 * grep -c / wc -l of NVRM Xid answering 0, or "0 Xid" / "zero Xid" in
 * words.  Like a kernel log of the window without an Xid, it makes the
 * value DCGM's last-Xid gauge still holds history. */
bool xid_count_zero(const run *r)
{
    static const char *const counted[] = {"grep -c", "grep -ic", "grep --count", "wc -l", "count("};
    static const char *const zero[] = {
        " 0 xid",       " 0 nvrm",     "zero xid", "0 matches for xid",
        "xid count: 0", "xid count 0", "xids: 0"};
    static const char *const none[] = {"no xid", "no new xid", "no nvrm", "no further xid"};
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        if (l->src == DS_KERNEL) continue;
        if (facts_any(l, zero, sizeof zero / sizeof *zero)) return true;
        /* "no Xid in the kernel log since 2026-11-28" */
        if (facts_any(l, none, sizeof none / sizeof *none) && facts_has_ci(l, "since")) return true;
        if (!(facts_has_ci(l, "xid") || facts_has(l, "NVRM"))) continue;
        /* a search of the log for them that printed nothing */
        if (facts_has(l, "grep") && !facts_any(l, counted, sizeof counted / sizeof *counted) &&
            facts_no_answer(r, i))
            return true;
        if (!facts_any(l, counted, sizeof counted / sizeof *counted)) continue;
        if (facts_count_answer(r, i) == 0) return true;
    }
    return false;
}
