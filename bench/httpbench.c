/* httpbench: N keep-alive clients calling one MCP tool over Streamable
 * HTTP for a bounded time, the same client for every server compared.
 * Each client is a thread with one connection; a 2025-11-25 session is
 * opened first (initialize, notifications/initialized) and shared.
 * Prints one JSON object: clients, calls, errors, calls_per_s, p50_us,
 * p99_us.  Bounded by --seconds and by --max-calls per client.
 * --dump FILE (off by default) writes every call, one a line:
 * "client send_us latency_us", send_us on CLOCK_MONOTONIC, the clock of
 * the server's FLEETMCP_HTTP_STATS timeline, so the slow calls can be
 * laid over what the server did meanwhile (bench/http-tail.py).
 *
 *   httpbench --port P --clients N --seconds S --tool NAME --args JSON [--dump FILE] */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"

#define MAX_CALLS 200000

static int port = 0, clients = 1, max_calls = MAX_CALLS;
static double seconds = 5;
static const char *tool = "echo", *args = "{}", *dump;
static char session[1024];

typedef struct {
    int fd;
    char *buf;
    size_t cap;
    double *lat, *sent; /* sent: with --dump only */
    int n, errors;
} client;

static int dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a)) {
        perror("httpbench: connect");
        exit(1);
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads one response into c->buf (headers and body, de-chunked body
 * after the headers); returns the HTTP status or -1. */
static int read_response(client *c, size_t *body_off, size_t *body_len)
{
    size_t len = 0, hdr = 0;
    for (;;) {
        if (len + 4096 > c->cap) {
            c->cap = c->cap ? c->cap * 2 : 65536;
            c->buf = realloc(c->buf, c->cap);
        }
        if (hdr) {
            const char *h = c->buf;
            const char *cl = strcasestr(h, "\r\ncontent-length:");
            if (cl && cl < h + hdr) {
                size_t want = strtoul(cl + 17, NULL, 10);
                if (len - hdr >= want) {
                    *body_off = hdr;
                    *body_len = want;
                    break;
                }
            } else {
                /* chunked: done at the zero chunk */
                char *end = memmem(c->buf + hdr, len - hdr, "\r\n0\r\n\r\n", 7);
                if (!end && len - hdr >= 5 && !memcmp(c->buf + hdr, "0\r\n\r\n", 5))
                    end = c->buf + hdr - 2;
                if (end) {
                    *body_off = hdr;
                    *body_len = (size_t)(end - (c->buf + hdr));
                    break;
                }
            }
        }
        ssize_t r = read(c->fd, c->buf + len, c->cap - len - 1);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        len += (size_t)r;
        c->buf[len] = '\0';
        if (!hdr) {
            char *e = strstr(c->buf, "\r\n\r\n");
            if (e) hdr = (size_t)(e - c->buf) + 4;
        }
    }
    return atoi(c->buf + 9);
}

/* Head and body in one write, as HTTP clients send a small request: two
 * writes on a TCP_NODELAY socket are two segments, and the server's
 * reads (and both sides' system calls) double with them. */
static int post(client *c, const char *body, const char *sid)
{
    char req[8192];
    int n = snprintf(
        req, sizeof req,
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
        "Accept: application/json, text/event-stream\r\n"
        "MCP-Protocol-Version: 2025-11-25\r\n%s%s%sContent-Length: %zu\r\n\r\n%s",
        port, sid ? "Mcp-Session-Id: " : "", sid ? sid : "", sid ? "\r\n" : "", strlen(body), body);
    if (n < 0 || (size_t)n >= sizeof req || write_all(c->fd, req, (size_t)n)) return -1;
    size_t off, bl;
    return read_response(c, &off, &bl);
}

static void *run(void *arg)
{
    client *c = arg;
    char body[4096];
    double end = now_us() + seconds * 1e6;
    for (int i = 0; i < max_calls && now_us() < end; i++) {
        snprintf(body, sizeof body,
                 "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\",\"params\":"
                 "{\"name\":\"%s\",\"arguments\":%s}}",
                 i + 2, tool, args);
        double t0 = now_us();
        int st = post(c, body, session);
        if (st != 200) {
            c->errors++;
            if (st < 0) break;
            continue;
        }
        /* A tool error is a failed call too. */
        if (strstr(c->buf, "\"isError\":true")) c->errors++;
        if (c->sent) c->sent[c->n] = t0;
        c->lat[c->n++] = now_us() - t0;
    }
    return NULL;
}

/* --dump: every call's client, send time and latency (before the
 * latencies are sorted). */
static int dump_calls(const client *cs)
{
    FILE *f = fopen(dump, "w");
    if (!f) return perror("httpbench: --dump"), -1;
    for (int i = 0; i < clients; i++)
        for (int k = 0; k < cs[i].n; k++)
            fprintf(f, "%d %.0f %.0f\n", i, cs[i].sent[k], cs[i].lat[k]);
    return fclose(f) ? (perror("httpbench: --dump"), -1) : 0;
}

int main(int argc, char **argv)
{
    static const struct option o[] = {
        {"port", 1, 0, 'p'}, {"clients", 1, 0, 'c'},   {"seconds", 1, 0, 's'}, {"tool", 1, 0, 't'},
        {"args", 1, 0, 'a'}, {"max-calls", 1, 0, 'm'}, {"dump", 1, 0, 'd'},    {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", o, NULL)) != -1) {
        switch (ch) {
        case 'p':
            port = atoi(optarg);
            break;
        case 'c':
            clients = atoi(optarg);
            break;
        case 's':
            seconds = atof(optarg);
            break;
        case 't':
            tool = optarg;
            break;
        case 'a':
            args = optarg;
            break;
        case 'm':
            max_calls = atoi(optarg);
            break;
        case 'd':
            dump = optarg;
            break;
        default:
            return 2;
        }
    }
    if (port <= 0 || clients < 1 || clients > 256 || max_calls < 1 || max_calls > MAX_CALLS)
        return fprintf(stderr,
                       "httpbench: --port P --clients 1..256 --seconds S --tool T --args J\n"),
               2;
    /* One session for everyone: initialize, then initialized. */
    client boot = {.fd = dial()};
    if (post(&boot,
             "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
             "\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},\"clientInfo\":"
             "{\"name\":\"httpbench\",\"version\":\"1\"}}}",
             NULL) != 200) {
        fprintf(stderr, "httpbench: initialize failed: %.200s\n", boot.buf);
        return 1;
    }
    const char *s = strcasestr(boot.buf, "\r\nmcp-session-id:");
    if (s) {
        s += 17;
        while (*s == ' ')
            s++;
        size_t n = strcspn(s, "\r\n");
        snprintf(session, sizeof session, "%.*s", (int)n, s);
    }
    post(&boot, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}", session);
    close(boot.fd);
    free(boot.buf);

    client *cs = calloc((size_t)clients, sizeof *cs);
    pthread_t *th = calloc((size_t)clients, sizeof *th);
    for (int i = 0; i < clients; i++) {
        cs[i].fd = dial();
        cs[i].lat = malloc(sizeof(double) * (size_t)max_calls);
        if (dump) cs[i].sent = malloc(sizeof(double) * (size_t)max_calls);
    }
    double t0 = now_us();
    for (int i = 0; i < clients; i++)
        pthread_create(&th[i], NULL, run, &cs[i]);
    for (int i = 0; i < clients; i++)
        pthread_join(th[i], NULL);
    double took = (now_us() - t0) / 1e6;
    int total = 0, errors = 0;
    for (int i = 0; i < clients; i++)
        total += cs[i].n, errors += cs[i].errors;
    if (dump && dump_calls(cs)) return 1;
    double *all = malloc(sizeof(double) * (size_t)(total ? total : 1));
    for (int i = 0, k = 0; i < clients; i++) {
        memcpy(all + k, cs[i].lat, sizeof(double) * (size_t)cs[i].n);
        k += cs[i].n;
        close(cs[i].fd);
        free(cs[i].lat);
        free(cs[i].sent);
        free(cs[i].buf);
    }
    double p50 = median(all, total);
    double p99 = total ? all[(size_t)((total - 1) * 0.99)] : 0;
    printf("{\"clients\":%d,\"calls\":%d,\"errors\":%d,\"calls_per_s\":%.0f,\"p50_us\":%.0f,"
           "\"p99_us\":%.0f}\n",
           clients, total, errors, total / took, p50, p99);
    free(all);
    free(cs);
    free(th);
    return errors ? 1 : 0;
}
