/* libFuzzer target: the parsers of node output (src/backends/exec_parse.c)
 * get whatever a compromised or broken node could print.  Every result
 * must serialise (valid UTF-8, bounded lists).  The first input byte picks
 * the parser. */
#include <stdint.h>
#include <stdlib.h>

#include "fleetmcp/fm_exec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const char *t = (const char *)data + 1;
    size_t n = size - 1;
    json_t *j = NULL;
    switch (data[0] % 5) {
    case 0:
        j = fm_parse_nvsmi_q(t, n, t, n / 2);
        break;
    case 1:
        j = fm_parse_kernel_xid(t, n, data[0] % 60);
        break;
    case 2:
        j = fm_parse_dcgmi_health(t, n);
        break;
    case 3:
        j = fm_parse_ibstat(t, n);
        break;
    case 4:
        j = fm_exec_text(t, n, data[0]);
        break;
    }
    char *s = json_dumps(j, JSON_ENCODE_ANY);
    if (!s) abort(); /* a value jansson cannot encode: invalid UTF-8 slipped through */
    free(s);
    json_decref(j);
    return 0;
}
