/* A rank slower because it does more: rank 0 (or any one rank) that also
 * evaluates, logs, writes the checkpoint or coordinates the others takes
 * longer per step by that work, not because its node is slow.  A
 * straggler is a node slower at the same work: when the outlier measured
 * is the rank told doing extra work, and nothing of the hardware is told,
 * straggler_node is dropped. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "diag_int.h"

/* The number after each "rank" of s[0..n) ("rank 0", "rank: 0", "rank=0",
 * "rank0"), as a bit set of ranks 0-63; ranks past 63 set bit 63. */
static uint64_t ranks_named(const char *s, size_t n)
{
    uint64_t set = 0;
    for (size_t i = 0; i + 4 < n; i++) {
        if (strncasecmp(s + i, "rank", 4) != 0 || (i && isalpha((unsigned char)s[i - 1]))) continue;
        size_t k = i + 4;
        while (k < n && k < i + 7 && (s[k] == ' ' || s[k] == ':' || s[k] == '=' || s[k] == '"'))
            k++;
        if (k >= n || !isdigit((unsigned char)s[k])) continue;
        long v = strtol(s + k, NULL, 10);
        set |= (uint64_t)1 << (v > 63 ? 63 : v);
    }
    return set;
}

/* The ranks a line tells doing work the others do not. */
static uint64_t extra_work_ranks(const tline *l)
{
    static const char *const work[] = {"eval",        "validation", "logging",   "wandb",
                                       "tensorboard", "checkpoint", "coordinat", "extra work",
                                       "profil",      "writes the", "saves the"};
    if (l->src == DS_KERNEL || !facts_any(l, work, NOF(work))) return 0;
    return ranks_named(l->s, l->len);
}

void extra_work_rule(run *r)
{
    int c = diag_class_index(r->db, "straggler_node");
    if (c < 0 || !facts_class_hit(r, c) || facts_other_node_fault(r, c)) return;
    uint64_t extra = 0;
    for (int i = 0; i < r->nlines; i++)
        extra |= extra_work_ranks(&r->lines[i]);
    if (!extra) return;
    for (int i = 0; i < r->nhits; i++) {
        if (r->hits[i].cls != c || r->hits[i].old) continue;
        const char *t = r->hits[i].text ? r->hits[i].text : "";
        uint64_t named = ranks_named(t, strlen(t));
        /* the outlier measured is a rank told doing more, and only such */
        if (!named || (named & ~extra)) return;
    }
    facts_drop_class(r, c);
}
