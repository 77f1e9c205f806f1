#include "fleetmcp/fm_util.h"

#include <stdarg.h>
#include <stdio.h>

#include "fleetmcp/fm_store.h"

void fm_log(const char *level, const char *fmt, ...)
{
    char ts[32];
    fm_iso_time(fm_now_ms(), ts);
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s fleetmcp %s: ", ts, level);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}
