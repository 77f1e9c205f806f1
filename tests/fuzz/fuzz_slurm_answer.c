/* libFuzzer target: untrusted Slurm output through the field-picking
 * reader, the streaming reader (fed in pieces, as libcurl and the sinfo
 * pipe feed it), the normalizer (nodes and jobs, hostlists included) and
 * the scontrol text parser.  Built like tests/fuzz/run.sh builds fuzz_message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fleetmcp/fm_slurm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int count(void *ud, const json_t *node, fm_err *err)
{
    (void)node, (void)err;
    ++*(size_t *)ud;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fm_slurm_domains *dom;
    if (!dom) dom = fm_slurm_domains_new(NULL, NULL, NULL);
    fm_err err = {0};
    for (int jobs = 0; jobs < 2; jobs++) {
        json_t *a = fm_slurm_parse_answer((const char *)data, size, jobs, &err);
        json_t *n =
            jobs ? fm_slurm_norm_jobs(a, NULL, &err) : fm_slurm_norm_nodes(a, dom, NULL, &err);
        json_decref(n);
        json_decref(a);
    }
    size_t seen = 0;
    json_t *errors = NULL;
    fm_slurm_nodes_feed *fd = fm_slurm_nodes_feed_open(dom, NULL, count, &seen, &err);
    for (size_t at = 0; fd && at < size; at += 3)
        fm_slurm_nodes_feed_push(fd, (const char *)data + at, size - at < 3 ? size - at : 3);
    if (fd) fm_slurm_nodes_feed_close(fd, &errors);
    json_decref(errors);
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    json_decref(fm_slurm_norm_scontrol_node(text, dom, &err));
    json_decref(fm_slurm_hostlist_expand(text, 4096, &err));
    free(text);
    return 0;
}
