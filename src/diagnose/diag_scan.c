/* Line scanning: a 3-byte-prefix bloom filter over every signature's
 * literals finds the few lines worth a regex; PCRE2 (JIT) runs only on
 * those, once per (line, signature).  The same path serves diagnose's
 * small inputs and the bulk scanner used on gigabyte logs. */
#include "diag_int.h"

#include <stdlib.h>
#include <string.h>

static inline uint32_t hash3(const unsigned char *p)
{
    uint32_t k = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
    return (k * 2654435761u) >> 16;
}

static void try_sig(const struct fm_diag_db *db, int si, unsigned srcbit, const char *line,
                    size_t len, pcre2_match_data *md, uint32_t *stamp, uint32_t line_no,
                    diag_hit_fn fn, void *ud)
{
    const diag_sig *g = &db->sigs[si];
    if (!(g->srcmask & srcbit) || stamp[si] == line_no) return;
    stamp[si] = line_no;
    if (pcre2_match(g->re.code, (PCRE2_SPTR)line, len, 0, 0, md, NULL) < 0) return;
    if (g->exclude.code && diag_re_match(&g->exclude, line, len, md)) return;
    /* exclude reused md: match again for the caller's captures */
    if (g->exclude.code && pcre2_match(g->re.code, (PCRE2_SPTR)line, len, 0, 0, md, NULL) < 0)
        return;
    fn(ud, si, line, len, pcre2_get_ovector_pointer(md));
    /* several records on one line: the next ones after the first match */
    for (int more = 0; g->multi && !g->exclude.code && more < 32; more++) {
        PCRE2_SIZE at = pcre2_get_ovector_pointer(md)[1];
        if (at >= len || pcre2_match(g->re.code, (PCRE2_SPTR)line, len, at, 0, md, NULL) < 0 ||
            pcre2_get_ovector_pointer(md)[1] == at)
            return;
        fn(ud, si, line, len, pcre2_get_ovector_pointer(md));
    }
}

void diag_scan_line(const struct fm_diag_db *db, unsigned srcbit, const char *line, size_t len,
                    pcre2_match_data *md, uint32_t *stamp, uint32_t line_no, diag_hit_fn fn,
                    void *ud)
{
    const unsigned char *p = (const unsigned char *)line;
    for (size_t i = 0; i + 3 <= len; i++) {
        uint32_t h = hash3(p + i);
        if (!(db->bloom[h >> 3] & (1u << (h & 7)))) continue;
        for (int li = db->bucket[h]; li >= 0; li = db->lits[li].next) {
            const diag_lit *l = &db->lits[li];
            if (l->len > len - i || memcmp(p + i, l->text, l->len) != 0) continue;
            for (int k = 0; k < l->nsigs; k++)
                try_sig(db, l->sigs[k], srcbit, line, len, md, stamp, line_no, fn, ud);
        }
    }
    for (int k = 0; k < db->nalways; k++)
        try_sig(db, db->always[k], srcbit, line, len, md, stamp, line_no, fn, ud);
}

typedef struct bulk {
    const int *pub; /* sig index -> public index, -1 */
    uint64_t *hits;
    uint32_t last_line;
    uint32_t line_hit;
    uint64_t lines;
} bulk;

static void bulk_hit(void *ud, int sig, const char *line, size_t len, const PCRE2_SIZE *ov)
{
    (void)line;
    (void)len;
    (void)ov;
    bulk *b = ud;
    if (b->pub[sig] >= 0) b->hits[b->pub[sig]]++;
    b->line_hit = 1;
}

uint64_t fm_diag_scan(const struct fm_diag_db *db, const char *buf, size_t len, uint64_t *hits)
{
    int *pub = malloc((size_t)db->nsigs * sizeof *pub);
    uint32_t *stamp = calloc((size_t)db->nsigs, sizeof *stamp);
    pcre2_match_data *md = pcre2_match_data_create(db->max_caps + 1, NULL);
    if (!pub || !stamp || !md) {
        free(pub);
        free(stamp);
        pcre2_match_data_free(md);
        return 0;
    }
    for (int i = 0; i < db->nsigs; i++)
        pub[i] = -1;
    for (int i = 0; i < db->ntext_public; i++)
        pub[db->text_order[i]] = i;
    /* Literal-free signatures are Slurm-field matchers: log lines never
     * need them, so the bulk path only follows literals. */
    bulk b = {pub, hits, 0, 0, 0};
    const unsigned char *p = (const unsigned char *)buf;
    const unsigned bits = ~0u & ~(1u << DS_METRICS); /* any text source */
    size_t line_start = 0, line_end = 0;             /* current candidate line [start, end) */
    uint32_t line_no = 0;
    for (size_t i = 0; i + 3 <= len; i++) {
        uint32_t h = hash3(p + i);
        if (!(db->bloom[h >> 3] & (1u << (h & 7)))) continue;
        for (int li = db->bucket[h]; li >= 0; li = db->lits[li].next) {
            const diag_lit *l = &db->lits[li];
            if (l->len > len - i || memcmp(p + i, l->text, l->len) != 0) continue;
            if (i >= line_end) { /* first candidate of a new line */
                const unsigned char *s =
                    i > line_end ? memrchr(p + line_end, '\n', i - line_end) : NULL;
                line_start = s ? (size_t)(s - p) + 1 : line_end;
                const unsigned char *e = memchr(p + i, '\n', len - i);
                line_end = e ? (size_t)(e - p) + 1 : len;
                if (b.line_hit) b.lines++;
                b.line_hit = 0;
                line_no++;
            }
            size_t ll = line_end - line_start;
            if (ll && p[line_end - 1] == '\n') ll--;
            for (int k = 0; k < l->nsigs; k++)
                try_sig(db, l->sigs[k], bits, buf + line_start, ll, md, stamp, line_no, bulk_hit,
                        &b);
        }
    }
    if (b.line_hit) b.lines++;
    free(pub);
    free(stamp);
    pcre2_match_data_free(md);
    return b.lines;
}
