/* slurm.backend picks the implementation; the failure-domain patterns
 * are compiled once here for either. */
#include <string.h>

#include "fleetmcp/fm_slurm.h"
#include "slurm_impl.h"

int fm_slurm_open(const json_t *sec, const struct fm_slurm_ops **ops, void **st, fm_err *err)
{
    *ops = NULL;
    *st = NULL;
    if (!json_is_object(sec))
        return fm_err_set(err, FM_ERR_NOT_CONFIGURED,
                          "no slurm section in the config: add slurm.backend"),
               -1;
    const json_t *d = json_object_get(sec, "domains");
    fm_slurm_domains *dom = fm_slurm_domains_new(json_string_value(json_object_get(d, "rack")),
                                                 json_string_value(json_object_get(d, "sku")), err);
    if (!dom) return -1;
    const char *backend = json_string_value(json_object_get(sec, "backend"));
    if (!backend) backend = "rest";
    const struct fm_slurm_ops *o = NULL;
    int rc;
    if (strcmp(backend, "rest") == 0) {
        o = &fm_slurm_rest_ops;
        rc = fm_slurm_rest_open_state(sec, dom, st, err);
    } else if (strcmp(backend, "cli") == 0) {
        o = &fm_slurm_cli_ops;
        rc = fm_slurm_cli_open_state(sec, dom, st, err);
    } else {
        rc = fm_err_set(err, FM_ERR_INVALID, "slurm.backend must be rest or cli");
    }
    if (rc) {
        fm_slurm_domains_free(dom);
        *st = NULL;
        return -1;
    }
    *ops = o;
    return 0;
}
