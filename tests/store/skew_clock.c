/* LD_PRELOAD shim for tests: this process's wall clock (CLOCK_REALTIME)
 * runs FM_TEST_SKEW_MS milliseconds ahead (or behind, negative), as on a
 * host whose clock drifted. Monotonic clocks are left alone. Built and
 * used by tests/store/pg.sh only; never linked into fleetmcp. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>

int clock_gettime(clockid_t id, struct timespec *ts)
{
    static int (*real)(clockid_t, struct timespec *);
    if (!real) real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
    if (!real) return -1;
    int rc = real(id, ts);
    const char *s = getenv("FM_TEST_SKEW_MS");
    if (rc || id != CLOCK_REALTIME || !s) return rc;
    long long ns = (long long)ts->tv_sec * 1000000000LL + ts->tv_nsec + atoll(s) * 1000000LL;
    ts->tv_sec = (time_t)(ns / 1000000000LL);
    ts->tv_nsec = (long)(ns % 1000000000LL);
    return rc;
}
