/* The Slurm CLI backend's close (src/backends/slurm_cli.c) with a
 * background refresh of the shared sinfo aggregate still running: close
 * waits for it only a short grace, not slurm.timeout_ms, then stops it and
 * what it started and reaps it (no zombie, no orphan left running); a
 * refresh that ends within the grace still goes to the store for the next
 * process.  sinfo is a script in a scratch directory: the aggregate (-a)
 * answers at once until DIR/delay exists, then records its pid and its
 * child's and sleeps that many seconds in a child (as a site's wrapper
 * around sinfo might) before answering. */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fleetmcp/fm_slurm.h"
#include "fleetmcp/fm_store.h"
#include "fleetmcp/fm_util.h"
#include "fm_test.h"

/* slurm.timeout_ms here: what close waited before, and far over the
 * grace, so a close that still waits it out fails the bound below. */
#define TIMEOUT_MS 20000

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void put(const char *dir, const char *name, const char *text, mode_t mode)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    ck_assert_int_eq(chmod(p, mode), 0);
}

/* The pid DIR/name holds, waiting up to 5 s for the script to write it;
 * 0 if it never did. */
static pid_t pid_in(const char *dir, const char *name)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    for (long long end = mono_ms() + 5000; mono_ms() < end; usleep(20 * 1000)) {
        FILE *f = fopen(p, "r");
        long v = 0;
        int got = f ? fscanf(f, "%ld", &v) : 0;
        if (f) fclose(f);
        if (got == 1 && v > 0) return (pid_t)v;
    }
    return 0;
}

static void make_sinfo(const char *dir)
{
    char text[1024];
    snprintf(text, sizeof text,
             "#!/bin/sh\n"
             "d=%s\n"
             "case \" $* \" in\n"
             "*\" -a \"*)\n"
             "    if [ -e \"$d/delay\" ]; then\n"
             "        echo $$ > \"$d/agg.tmp\" && mv \"$d/agg.tmp\" \"$d/agg.pid\"\n"
             "        sleep \"$(cat \"$d/delay\")\" &\n"
             "        echo $! > \"$d/sleep.tmp\" && mv \"$d/sleep.tmp\" \"$d/sleep.pid\"\n"
             "        wait\n"
             "    fi\n"
             "    printf 'gpu|idle|3|gpu-a[01-03]\\n' ;;\n"
             "esac\n",
             dir);
    put(dir, "sinfo", text, 0755);
}

static const struct fm_slurm_ops *open_cli(const char *dir, void **st, fm_store *store)
{
    char sinfo[256];
    snprintf(sinfo, sizeof sinfo, "%s/sinfo", dir);
    json_t *sec =
        json_pack("{s:s, s:s, s:i, s:{s:s, s:s, s:s, s:s, s:i}}", "backend", "cli", "cluster", "t1",
                  "timeout_ms", TIMEOUT_MS, "cli", "sinfo", sinfo, "squeue", "true", "scontrol",
                  "false", "scancel", "false", "aggregate_max_age_s", 2);
    const struct fm_slurm_ops *ops = NULL;
    fm_err err = {0};
    ck_assert_msg(fm_slurm_open(sec, &ops, st, &err) == 0, "%s", err.text);
    json_decref(sec);
    ops->attach_store(*st, store);
    return ops;
}

/* One plan's reads: the node (the script does not list it; the answer is
 * not this test's subject) and capacity; when its aggregate was read. */
static long long plan(const struct fm_slurm_ops *ops, void *st)
{
    fm_err err = {0};
    json_decref(ops->plan_node(st, "gpu-a01", &err));
    const char *parts[] = {"gpu"};
    long total = 0, in_svc = 0;
    memset(&err, 0, sizeof err);
    ck_assert_msg(ops->partition_capacity(st, parts, 1, &total, &in_svc, &err) == 0, "%s",
                  err.text);
    ck_assert_int_eq(total, 3);
    long long read_ms = 0;
    ck_assert_int_ge(ops->counts_as_of(st, &read_ms), 0);
    ops->plan_end(st);
    return read_ms;
}

typedef struct scene {
    char dir[32], db[128];
    fm_store store;
    const struct fm_slurm_ops *ops;
    void *st;
    long long first_read; /* the shared row's stamp before the refresh */
    pid_t agg, sleeper;   /* the refresh's sinfo and its child */
} scene;

/* A first plan reads sinfo and shares it; when that read is 1.1 s old
 * (past half of the 2 s bound) a second plan answers from that row and
 * starts a refresh beside, which sleeps delay seconds.  Orphans come to this process
 * (subreaper), so one left running or unreaped would be seen here. */
static void start(scene *sc, const char *delay)
{
    ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    snprintf(sc->dir, sizeof sc->dir, "/tmp/fm-slurmcli-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(sc->dir));
    snprintf(sc->db, sizeof sc->db, "%s/store.db", sc->dir);
    fm_err err = {0};
    ck_assert_msg(fm_store_open(&sc->store, fm_test_store(sc->db), &err) == 0, "%s", err.text);
    make_sinfo(sc->dir);
    sc->ops = open_cli(sc->dir, &sc->st, &sc->store);
    sc->first_read = plan(sc->ops, sc->st);
    long long wait_ms = sc->first_read + 1100 - fm_now_ms();
    if (wait_ms > 0) usleep((useconds_t)wait_ms * 1000);
    put(sc->dir, "delay", delay, 0644);
    fm_err e2 = {0};
    json_decref(sc->ops->plan_node(sc->st, "gpu-a01", &e2));
    long long read_ms = 0;
    ck_assert_int_eq(sc->ops->counts_as_of(sc->st, &read_ms), 1);
    ck_assert_int_eq(read_ms, sc->first_read);
    sc->ops->plan_end(sc->st);
    sc->agg = pid_in(sc->dir, "agg.pid");
    sc->sleeper = pid_in(sc->dir, "sleep.pid");
    ck_assert_msg(sc->agg > 0 && sc->sleeper > 0, "the refresh did not start");
}

/* Whether pid ended (reaped here, as its subreaper) within 3 s; one still
 * running is killed so a failing test leaves nothing behind. */
static bool ended(pid_t pid)
{
    for (long long end = mono_ms() + 3000; mono_ms() < end; usleep(10 * 1000)) {
        pid_t r = waitpid(pid, NULL, WNOHANG);
        if (r == pid || (r < 0 && errno == ECHILD)) return true;
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return false;
}

static void finish(scene *sc)
{
    fm_store_close(&sc->store);
    fm_test_unlink_db(sc->db);
    const char *names[] = {"sinfo", "delay", "agg.pid", "sleep.pid"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char p[256];
        snprintf(p, sizeof p, "%s/%s", sc->dir, names[i]);
        unlink(p);
    }
    rmdir(sc->dir);
}

/* close returns within the grace (1 s, with room for a loaded machine),
 * far under slurm.timeout_ms, with the refresh's sinfo reaped (not a
 * zombie) and the child it started gone too (not an orphan still running). */
static void close_promptly(scene *sc)
{
    long long t0 = mono_ms();
    sc->ops->close(sc->st);
    long long took = mono_ms() - t0;
    ck_assert_msg(took < 2500, "close took %lld ms (the grace is 1000, the timeout %d)", took,
                  TIMEOUT_MS);
    /* close reaped its child: waitpid finds no such child of ours */
    errno = 0;
    ck_assert_int_eq(waitpid(sc->agg, NULL, WNOHANG), -1);
    ck_assert_int_eq(errno, ECHILD);
    ck_assert_msg(ended(sc->sleeper), "the refresh's child %d still ran after close",
                  (int)sc->sleeper);
}

/* A refresh that would run 30 s is stopped at the grace's end. */
START_TEST(close_stops_a_long_refresh)
{
    scene sc = {0};
    start(&sc, "30\n");
    close_promptly(&sc);
    finish(&sc);
}
END_TEST

/* A refresh that ends within the grace (0.2 s) is waited for and shared:
 * the next process's plan answers from its newer row. */
START_TEST(close_shares_a_short_refresh)
{
    scene sc = {0};
    start(&sc, "0.2\n");
    close_promptly(&sc);
    char delay[64];
    snprintf(delay, sizeof delay, "%s/delay", sc.dir);
    unlink(delay); /* the next process's sinfo answers at once */
    void *st2 = NULL;
    const struct fm_slurm_ops *ops2 = open_cli(sc.dir, &st2, &sc.store);
    fm_err err = {0};
    json_decref(ops2->plan_node(st2, "gpu-a01", &err));
    long long read_ms = 0;
    ck_assert_int_eq(ops2->counts_as_of(st2, &read_ms), 1);
    ck_assert_msg(read_ms > sc.first_read, "the refresh was not shared (%lld, first %lld)", read_ms,
                  sc.first_read);
    ops2->plan_end(st2);
    ops2->close(st2);
    finish(&sc);
}
END_TEST

static Suite *slurm_cli_suite(void)
{
    Suite *s = suite_create("slurm_cli");
    TCase *tc = tcase_create("close");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, close_stops_a_long_refresh);
    tcase_add_test(tc, close_shares_a_short_refresh);
    suite_add_tcase(s, tc);
    return s;
}

FM_TEST_MAIN(slurm_cli_suite)
