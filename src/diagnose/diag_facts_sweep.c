/* A batch-size sweep told as rows of any layout (a table, sacct's or a
 * scheduler's history, notes): each row a batch size and how its run
 * ended.  When the runs that ran out of memory are exactly the largest
 * batch sizes and smaller ones fit, the batch is too large for the GPU:
 * oom_batch_size (the job's), whatever the OOM's own words say. */
#include "diag_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_ROWS 64

/* "bs" at i starts a word, or follows the m / g of "mbs" / "gbs" (micro
 * and global batch sizes). */
static bool bs_starts(const char *s, size_t i)
{
    if (i == 0 || !isalpha((unsigned char)s[i - 1])) return true;
    bool mg = s[i - 1] == 'm' || s[i - 1] == 'g' || s[i - 1] == 'M' || s[i - 1] == 'G';
    return mg && (i == 1 || !isalpha((unsigned char)s[i - 2]));
}

/* The batch size a line names ("batch_size=64", "--batch 64", "micro-batch
 * size: 16", "bs64", a column "batch_size: 64"); -1 none. */
static long batch_of(const tline *l)
{
    for (size_t i = 0; i + 2 < l->len; i++) {
        size_t k = 0;
        if (strncasecmp(l->s + i, "batch", 5) == 0 && i + 5 <= l->len)
            k = i + 5;
        else if (strncasecmp(l->s + i, "bs", 2) == 0 && bs_starts(l->s, i) &&
                 (isdigit((unsigned char)l->s[i + 2]) || l->s[i + 2] == '=' || l->s[i + 2] == ':'))
            k = i + 2;
        if (!k) continue;
        /* "_size", "-size", " size", then separators */
        size_t j = k;
        if (j + 5 <= l->len && strncasecmp(l->s + j + 1, "size", 4) == 0 && strchr("_- ", l->s[j]))
            j += 5;
        else if (j + 4 <= l->len && strncasecmp(l->s + j, "size", 4) == 0)
            j += 4;
        size_t lim = j + 4;
        while (j < l->len && j < lim && strchr(" =:\t\"'", l->s[j]))
            j++;
        if (j < l->len && isdigit((unsigned char)l->s[j])) {
            long v = strtol(l->s + j, NULL, 10);
            size_t e = j;
            while (e < l->len && isdigit((unsigned char)l->s[e]))
                e++;
            /* a size, not a date or a memory figure ("64 GiB") */
            if (v > 0 && v < 1000000 && (e >= l->len || !isalpha((unsigned char)l->s[e]))) return v;
        }
    }
    return -1;
}

/* How the row's run ended: 1 out of memory, 0 it fit, -1 not told. */
static int oom_of(const tline *l)
{
    static const char *const oom[] = {"OUT_OF_MEMORY", "out of memory", "OutOfMemory", " OOM",
                                      "OOM ",          "oom-kill",      "OOMKilled"};
    static const char *const fit[] = {"COMPLETED", "completed", " ok",    "OK",       "fits",
                                      " fit ",     "success",   "passed", "finished", "RUNNING"};
    if (facts_any(l, oom, sizeof oom / sizeof *oom)) return 1;
    if (facts_any(l, fit, sizeof fit / sizeof *fit)) return 0;
    return -1;
}

void batch_sweep_rule(run *r)
{
    int c = diag_class_index(r->db, "oom_batch_size");
    if (c < 0) return;
    long fit_max = -1, oom_min = -1, oom_max = -1;
    int nfit = 0, noom = 0, line = -1;
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        if (l->src == DS_KERNEL || l->src == DS_METRICS) continue;
        long b = batch_of(l);
        int o = b > 0 ? oom_of(l) : -1;
        if (o < 0) continue;
        if (o) {
            if (oom_min < 0 || b < oom_min) oom_min = b;
            if (b > oom_max) oom_max = b, line = i;
            noom++;
        } else {
            if (b > fit_max) fit_max = b;
            nfit++;
        }
    }
    /* smaller batches fit, every larger one ran out of memory */
    if (!nfit || !noom || oom_min <= fit_max) return;
    char extra[160];
    snprintf(extra, sizeof extra,
             "[batch sizes up to %ld fit (%d runs), %ld and above ran out of memory (%d runs): "
             "the batch is too large] ",
             fit_max, nfit, oom_min, noom);
    add_hit(r, c, DK_CORR, ST_STRONG, "fact-batch-sweep", line_evidence(r, line, extra));
}
