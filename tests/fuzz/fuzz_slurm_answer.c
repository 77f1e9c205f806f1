/* libFuzzer target: untrusted Slurm output through the field-picking
 * reader, the normalizer (nodes and jobs, hostlists included) and the
 * scontrol text parser.  Built like tests/fuzz/run.sh builds fuzz_message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fleetmcp/fm_slurm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    json_decref(fm_slurm_norm_scontrol_node(text, dom, &err));
    json_decref(fm_slurm_hostlist_expand(text, 4096, &err));
    free(text);
    return 0;
}
