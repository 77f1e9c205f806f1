/* Ranks of one job at a collective with different sizes, told in any
 * layout: lines naming ranks and a size (input sizes, shape, numel,
 * elements, count) whose values differ between rank groups.  The flight
 * recorder's verdict worded by a person, two ranks' rows one under the
 * other, one line with both groups: the ranks diverged (the job's). */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "diag_int.h"

/* The value after the first size word of a line from `from`: a bracketed
 * shape ("[[8192, 4096]]") or a number, copied into out, its start in
 * *at; the position after it, 0 when none. */
static size_t size_value(const tline *l, size_t from, char *out, size_t cap, size_t *at)
{
    static const char *const w[] = {"size", "shape", "numel", "elements", "nelems"};
    for (size_t i = from; i < l->len; i++) {
        size_t n = 0;
        for (size_t k = 0; k < NOF(w) && !n; k++)
            if (strncasecmp(l->s + i, w[k], strlen(w[k])) == 0) n = strlen(w[k]);
        if (!n) continue;
        size_t j = i + n, e = j + 16 < l->len ? j + 16 : l->len;
        while (j < e && l->s[j] != '[' && !isdigit((unsigned char)l->s[j]))
            j++;
        if (j >= e) continue;
        size_t a = j, depth = 0;
        if (l->s[j] == '[') {
            do {
                depth += l->s[j] == '[';
                depth -= l->s[j] == ']';
                j++;
            } while (j < l->len && depth &&
                     (isdigit((unsigned char)l->s[j]) || strchr("[], ", l->s[j])));
            if (depth) continue;
        } else {
            while (j < l->len && isdigit((unsigned char)l->s[j]))
                j++;
        }
        size_t m = j - a < cap - 1 ? j - a : cap - 1;
        size_t o = 0;
        for (size_t q = 0; q < m; q++) /* spaces do not make values differ */
            if (l->s[a + q] != ' ') out[o++] = l->s[a + q];
        out[o] = 0;
        *at = a;
        return j;
    }
    return 0;
}

/* What a line says apart from which ranks and what size: its letters and
 * numbers with the rank ids after "rank(s)" and the size's value [vs, ve)
 * left out, so two rows of one collective (same group, op, step) match and
 * rows of two process groups do not. */
static void coll_key(const tline *l, size_t vs, size_t ve, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < l->len && o + 1 < cap; i++) {
        if (i >= vs && i < ve) continue;
        if (strncasecmp(l->s + i, "rank", 4) == 0) {
            i += 4 + (i + 4 < l->len && (l->s[i + 4] == 's' || l->s[i + 4] == 'S'));
            while (i < l->len && (isdigit((unsigned char)l->s[i]) || strchr(" -,:=[]", l->s[i])))
                i++;
            i--;
            continue;
        }
        if (isalnum((unsigned char)l->s[i])) out[o++] = (char)tolower((unsigned char)l->s[i]);
    }
    out[o] = 0;
}

/* A line of ranks; a world, batch or bucket size is the
 * job's setup, not a collective's payload. */
static bool ranks_line(const tline *l)
{
    static const char *const setup[] = {"world_size", "world size", "batch", "bucket"};
    return l->src != DS_KERNEL && l->src != DS_STATE && l->src != DS_JOBS &&
           facts_has_ci(l, "rank") && !facts_any(l, setup, NOF(setup));
}

void size_divergence_rule(run *r)
{
    int c = diag_class_index(r->db, "nccl_rank_divergence");
    if (c < 0 || facts_class_hit(r, c)) return;
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        char a[64], b[64];
        size_t p, at, bt;
        if (!ranks_line(l) || !(p = size_value(l, 0, a, sizeof a, &at))) continue;
        /* a second group on the same line, or on a nearby line of ranks
         * telling the same collective */
        size_t q = size_value(l, p, b, sizeof b, &bt);
        tline between = {.s = l->s + p, .len = q ? bt - p : 0};
        /* another group's value: a rank named between the two (NumelIn and
         * NumelOut of one all_gather differ by design) */
        bool differ = q && strcmp(a, b) != 0 && facts_has_ci(&between, "rank");
        char ka[256], kb[256];
        coll_key(l, at, p, ka, sizeof ka);
        for (int j = i + 1; j < r->nlines && j <= i + 4 && !differ; j++) {
            const tline *m = &r->lines[j];
            if (m->src != l->src || !ranks_line(m) || !(q = size_value(m, 0, b, sizeof b, &bt)) ||
                strcmp(a, b) == 0)
                continue;
            coll_key(m, bt, q, kb, sizeof kb);
            differ = strcmp(ka, kb) == 0;
        }
        if (!differ) continue;
        add_hit(r, c, DK_CORR, ST_STRONG, "facts-rank-sizes-differ",
                line_evidence(r, i,
                              "[ranks at the collective with different sizes: they "
                              "diverged] "));
        return;
    }
}
