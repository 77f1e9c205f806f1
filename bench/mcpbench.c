/* mcpbench: one client, any stdio MCP server.  Measures cold start (spawn
 * to initialize response), ping round trip, a tools/call round trip and
 * the server's peak RSS, and prints one JSON line of medians.
 *
 *   mcpbench --tool NAME [--args JSON] [--starts N] [--pings N] [--calls N]
 *            [--calls-at T] -- CMD ARGS...
 *
 * --calls-at T: the timed calls start at T (CLOCK_MONOTONIC, microseconds;
 * python3's time.monotonic() * 1e6), after the start-up and warm-up, so
 * several clients started together make their calls together; the JSON
 * then says when the calls began and ended (calls_t0_us, calls_t1_us) and
 * whether this client was ready before T (calls_late: it was not, and the
 * window figure of a run with a late client is not a steady state), and the
 * CPU time the server and this client used per timed call (/proc, in clock
 * ticks: 10 ms, so meaningful over many calls). */
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "fleetmcp/fm_transport.h"

typedef struct peer {
    pid_t pid;
    fm_transport tx;
    long long id;
} peer;

static int spawn(peer *p, char **argv)
{
    int in[2], out[2];
    if (pipe(in) || pipe(out)) return -1;
    p->pid = fork();
    if (p->pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[0]), close(in[1]), close(out[0]), close(out[1]);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    p->id = 1;
    return fm_tx_init(&p->tx, out[0], in[1], 64u << 20);
}

/* Sends a request and waits (bounded: 30 s) for the response to it.  The
 * request is serialised before the clock starts and the response is
 * parsed after it stops (*arrived, when non-NULL, is when the whole
 * response line had arrived): the figures are the server's round trip,
 * not this client's JSON work, for every server measured. */
static json_t *rpc_at(peer *p, const char *method, json_t *params, double *sent, double *arrived)
{
    long long id = p->id++;
    json_t *req = json_pack("{s:s, s:I, s:s, s:o}", "jsonrpc", "2.0", "id", (json_int_t)id,
                            "method", method, "params", params ? params : json_object());
    char *text = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    size_t tlen = strlen(text);
    text[tlen++] = '\n'; /* in the NUL's place: only tlen bytes are written */
    double t0 = now_us(), deadline = t0 + 30e6;
    if (sent) *sent = t0;
    for (size_t off = 0; off < tlen;) {
        ssize_t w = write(p->tx.out_fd, text + off, tlen - off);
        if (w <= 0) {
            free(text);
            return NULL;
        }
        off += (size_t)w;
    }
    free(text);
    for (double t = t0; t < deadline; t = now_us()) {
        const char *line;
        size_t len;
        fm_rx_status st = fm_tx_next(&p->tx, false, &line, &len);
        if (st == FM_RX_AGAIN) {
            struct pollfd pf = {.fd = p->tx.in_fd, .events = POLLIN};
            poll(&pf, 1, (int)((deadline - t) / 1000) + 1);
            continue;
        }
        if (st != FM_RX_LINE) return NULL;
        double t_end = now_us();
        json_t *m = json_loadb(line, len, 0, NULL);
        json_t *mid = json_object_get(m, "id");
        if (json_is_integer(mid) && json_integer_value(mid) == id) {
            if (arrived) *arrived = t_end;
            return m;
        }
        json_decref(m); /* a notification: keep waiting */
    }
    return NULL;
}

static json_t *rpc(peer *p, const char *method, json_t *params)
{
    return rpc_at(p, method, params, NULL, NULL);
}

static json_t *rpc_timed(peer *p, const char *method, json_t *params, double *us)
{
    double sent = 0, arrived = 0;
    json_t *r = rpc_at(p, method, params, &sent, &arrived);
    *us = arrived - sent;
    return r;
}

static void stop(peer *p)
{
    close(p->tx.out_fd);
    int st;
    for (int i = 0; i < 300 && waitpid(p->pid, &st, WNOHANG) == 0; i++)
        usleep(10000);
    if (waitpid(p->pid, &st, WNOHANG) == 0) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, &st, 0);
    }
    close(p->tx.in_fd);
    fm_tx_free(&p->tx);
}

static json_t *init_params(void)
{
    return json_pack("{s:s, s:{}, s:{s:s, s:s}}", "protocolVersion", "2025-06-18", "capabilities",
                     "clientInfo", "name", "mcpbench", "version", "1");
}

/* CPU time (user + system, microseconds) the process pid has used. */
static double cpu_us(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the name may hold spaces */
    unsigned long long ut = 0, stime = 0;
    if (!p ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &stime) != 2)
        return -1;
    return (double)(ut + stime) * 1e6 / (double)sysconf(_SC_CLK_TCK);
}

static long peak_rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) kb = atol(line + 6);
    if (f) fclose(f);
    return kb;
}

int main(int argc, char **argv)
{
    const char *tool = NULL, *args = "{}";
    int starts = 30, pings = 5000, calls = 2000, i = 1;
    double calls_at = 0;
    for (; i < argc && strcmp(argv[i], "--"); i++) {
        if (!strcmp(argv[i], "--tool") && i + 1 < argc)
            tool = argv[++i];
        else if (!strcmp(argv[i], "--args") && i + 1 < argc)
            args = argv[++i];
        else if (!strcmp(argv[i], "--starts") && i + 1 < argc)
            starts = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--pings") && i + 1 < argc)
            pings = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--calls") && i + 1 < argc)
            calls = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--calls-at") && i + 1 < argc)
            calls_at = atof(argv[++i]);
    }
    if (i >= argc - 1 || !tool) {
        fprintf(stderr, "usage: mcpbench --tool NAME [--args JSON] [--starts N] [--pings N]"
                        " [--calls N] -- CMD ARGS...\n");
        return 1;
    }
    char **cmd = argv + i + 1;
    signal(SIGPIPE, SIG_IGN);
    double *v = calloc((size_t)(starts + pings + calls + 3), sizeof *v);

    for (int k = 0; k < starts; k++) {
        peer p;
        double t0 = now_us(), arrived = 0;
        if (spawn(&p, cmd)) return 1;
        json_t *r = rpc_at(&p, "initialize", init_params(), NULL, &arrived);
        v[k] = arrived - t0;
        if (!r) {
            fprintf(stderr, "mcpbench: %s did not answer initialize\n", cmd[0]);
            return 1;
        }
        json_decref(r);
        stop(&p);
    }
    double cold = median(v, starts);

    peer p;
    spawn(&p, cmd);
    json_decref(rpc(&p, "initialize", init_params()));
    json_t *n = json_pack("{s:s, s:s}", "jsonrpc", "2.0", "method", "notifications/initialized");
    fm_tx_send(&p.tx, n);
    json_decref(n);
    for (int k = 0; k < 200; k++)
        json_decref(rpc(&p, "ping", NULL)); /* warm up */
    for (int k = 0; k < pings; k++) {
        json_t *r = rpc_timed(&p, "ping", NULL, &v[k]);
        json_decref(r);
    }
    double ping = median(v, pings);
    json_t *targs = json_loads(args, 0, NULL);
    int errors = 0;
    bool late = calls_at > 0 && now_us() > calls_at;
    /* Bounded: a T more than a minute ahead is not waited for. */
    for (double t = now_us(); t < calls_at && calls_at - t < 60e6; t = now_us())
        usleep((useconds_t)(calls_at - t > 1000 ? 1000 : calls_at - t));
    double calls_t0 = now_us();
    double srv0 = cpu_us(p.pid), cli0 = cpu_us(getpid());
    for (int k = 0; k < calls; k++) {
        json_t *r = rpc_timed(&p, "tools/call",
                              json_pack("{s:s, s:O}", "name", tool, "arguments", targs), &v[k]);
        json_t *res = json_object_get(r, "result");
        if (!res || json_is_true(json_object_get(res, "isError"))) errors++;
        json_decref(r);
    }
    double calls_t1 = now_us();
    double srv_cpu = cpu_us(p.pid) - srv0, cli_cpu = cpu_us(getpid()) - cli0;
    double call = median(v, calls);
    long rss = peak_rss_kb(p.pid);
    stop(&p);
    json_decref(targs);
    printf("{\"cold_start_us\":%.0f,\"ping_us\":%.1f,\"call_us\":%.1f,\"peak_rss_kb\":%ld,"
           "\"call_errors\":%d,\"calls_t0_us\":%.0f,\"calls_t1_us\":%.0f,\"calls_late\":%s,"
           "\"server_cpu_us_per_call\":%.1f,\"client_cpu_us_per_call\":%.1f}\n",
           cold, ping, call, rss, errors, calls_t0, calls_t1, late ? "true" : "false",
           calls ? srv_cpu / calls : 0, calls ? cli_cpu / calls : 0);
    free(v);
    return errors ? 2 : 0;
}
