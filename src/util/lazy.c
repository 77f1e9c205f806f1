/* See lazy.h. */
#include "lazy.h"

#include "fleetmcp/fm_util.h"

void *fm_lazy_open(const char *soname, const char *unavailable, const char *package)
{
    void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (!h)
        fm_log("error", "UNAVAILABLE: cannot load %s (%s): %s are unavailable; install %s", soname,
               dlerror(), unavailable, package);
    return h;
}
