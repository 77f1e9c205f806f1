/* Log throughput of the diagnose scanner (literal prefilter + PCRE2 JIT).
 *
 *   diagnose_throughput gen FILE MIB [SEED]   deterministic synthetic kernel+job log
 *   diagnose_throughput scan SIGNATURES FILE  classify FILE; prints MB/s and hits
 *   diagnose_throughput patterns SIGNATURES OUT   the catalog's literals as ERE lines
 *
 * The log mixes realistic noise (dmesg/journal lines, training steps, NCCL
 * INFO, slurmstepd, systemd) with a few faults buried every few MB.  scan
 * streams the file in 64 MiB blocks (partial last line carried over), with
 * no allocation per line, on one thread. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fleetmcp/fm_diagnose.h"

#define BLOCK (64u << 20)

static uint64_t rng_state;

static uint64_t rnd(void)
{
    /* xorshift64*: deterministic for a seed, fast enough not to matter */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

static unsigned rn(unsigned n)
{
    return (unsigned)(rnd() % n);
}

static const char *const HOSTS[] = {"gpu-a017", "gpu-b102", "dgx-c21-5", "hgx-r4-n07",
                                    "h100-r09-n03"};
static const char *const SVCS[] = {"systemd[1]", "sshd[2231]", "chronyd[1302]", "slurmd[4410]",
                                   "kernel"};

/* One noise line into buf; returns its length (with '\n'). */
static int noise(char *buf, size_t cap)
{
    const char *h = HOSTS[rn(5)];
    unsigned a = rn(100000), b = rn(1000), c = rn(60);
    switch (rn(17)) {
    case 0:
        return snprintf(buf, cap,
                        "[%u.%06u] perf: interrupt took too long (%u > %u), lowering "
                        "kernel.perf_event_max_sample_rate to %u\n",
                        a, b * 997, 2500 + c, 2500, 79000 + b);
    case 1:
        return snprintf(buf, cap,
                        "Nov %02u %02u:%02u:%02u %s %s: Started Session %u of User u%u.\n",
                        c % 28 + 1, c % 24, c, b % 60, h, SVCS[rn(5)], a, b);
    case 2:
        return snprintf(buf, cap,
                        "[2025-11-%02u %02u:%02u:%02u] step %u | loss %u.%04u | lr 2.%02ue-04 | "
                        "tok/s/gpu %u | mfu 0.%02u\n",
                        c % 28 + 1, c % 24, c, b % 60, a, c % 4, b, c, 9000 + b, c);
    case 3:
        return snprintf(
            buf, cap,
            "%s:%u:%u [%u] NCCL INFO Channel %02u/24 :    0   1   2   3   4   5   6   7\n", h, a,
            a + 7, c % 8, c % 24);
    case 4:
        return snprintf(buf, cap,
                        "%s:%u:%u [%u] NCCL INFO comm 0x55%07x rank %u nranks 32 cudaDev %u busId "
                        "%u000 - Init COMPLETE\n",
                        h, a, a + 9, c % 8, a, c % 32, c % 8, b);
    case 5:
        return snprintf(buf, cap,
                        "Nov %02u %02u:%02u:%02u %s kernel: IPv6: ADDRCONF(NETDEV_CHANGE): "
                        "ibp%us0: link becomes ready\n",
                        c % 28 + 1, c % 24, c, b % 60, h, c);
    case 6:
        return snprintf(buf, cap,
                        "[%u.%06u] EXT4-fs (md127): mounted filesystem with ordered data mode. "
                        "Quota mode: none.\n",
                        a, b);
    case 7:
        return snprintf(
            buf, cap,
            "W1118 03:%02u:%02u.%06u %u torch/distributed/elastic/multiprocessing/api.py:897] "
            "Sending process %u closing signal SIGTERM\n",
            c, b % 60, a, a, a + 1);
    case 8:
        return snprintf(buf, cap,
                        "%s slurmstepd[%u]: task/cgroup: _memcg_initialize: job: alloc=%uMB "
                        "mem.limit=%uMB memsw.limit=unlimited\n",
                        h, a, 491520 + b, 491520 + b);
    case 9:
        return snprintf(buf, cap,
                        "2025-11-%02uT%02u:%02u:%02u.%06u+00:00 %s chronyd[1302]: Selected source "
                        "10.31.0.%u (ntp1.cluster.internal)\n",
                        c % 28 + 1, c % 24, c, b % 60, a, h, c);
    case 10:
        return snprintf(buf, cap,
                        " [2025-11-16 %02u:%02u:%02u] iteration %8u/  120000 | consumed samples: "
                        "%12u | elapsed time per iteration (ms): %u.%u | lm loss: 2.%03uE+00 |\n",
                        c % 24, c, b % 60, a, a * 2048, 1800 + b, c, b);
    case 11:
        return snprintf(buf, cap,
                        "[%u.%06u] nvidia-peermem nv_get_p2p_free_callback:127 ERROR detected "
                        "invalid context, skipping further processing\n",
                        a, b);
    case 12:
        return snprintf(buf, cap,
                        "%s:%u:%u [%u] NCCL INFO Connected all rings, use ring PXN 0 GDR 1\n", h, a,
                        a + 3, c % 8);
    /* near misses: they carry a prefilter literal, so PCRE2 runs and rejects them */
    case 14:
        return snprintf(
            buf, cap,
            "%s:%u:%u [%u] NCCL INFO NET/IB : Using [0]mlx5_%u:1/IB [RO]; OOB ib0:10.12.%u.%u<0>\n",
            h, a, a + 5, c % 8, c % 8, c, b % 250);
    case 15:
        return snprintf(
            buf, cap,
            "Nov %02u %02u:%02u:%02u %s ipmi-sensors: Fan FAN%u_R speed %u RPM, state nominal\n",
            c % 28 + 1, c % 24, c, b % 60, h, c % 8, 9000 + b);
    case 16:
        return snprintf(
            buf, cap,
            "[%u.%06u] NVRM: GPU at PCI:0000:%02x:00: GPU-%08x-0000 (Xid history clean, ECC on)\n",
            a, b, c, a);
    default:
        return snprintf(buf, cap,
                        "INFO %02u-%02u %02u:%02u:%02u metrics.py:351] Avg prompt throughput: "
                        "%u.%u tokens/s, Running: %u reqs, GPU KV cache usage: %u.%u%%\n",
                        c % 12 + 1, c % 28 + 1, c % 24, c, b % 60, b, c, c, c, b % 10);
    }
}

static const char *const FAULTS[] = {
    "[Tue Nov 18 03:12:44 2025] NVRM: Xid (PCI:0000:9d:00): 79, pid='<unknown>', name=<unknown>, "
    "GPU has fallen off the bus.\n",
    "[rank3]: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 31.31 GiB. GPU 3 has a "
    "total capacity of 79.11 GiB\n",
    "gpu-c113:518830:518830 [0] NCCL INFO NET/Socket : Using [0]lo:127.0.0.1<0>\n",
    "Nov 19 21:07:33 h100-r09-n03 kernel: mlx5_core 0000:5f:00.0 mlx5_3: Port: 1 Link DOWN\n",
    "RuntimeError: DataLoader worker (pid 2817) is killed by signal: Bus error. It is possible "
    "that dataloader's workers are out of shared memory.\n",
    "[2291847.551039] NVRM: Xid (PCI:0000:47:00): 48, pid=2019475, name=python, An uncorrectable "
    "double bit error (DBE) has been detected on GPU\n",
    "OSError: [Errno 28] No space left on device\n",
};

static int gen(const char *path, unsigned mib, uint64_t seed)
{
    rng_state = seed ? seed : 0x9E3779B97F4A7C15ull;
    FILE *f = fopen(path, "wb");
    if (!f) return fprintf(stderr, "%s: %s\n", path, strerror(errno)), 1;
    size_t target = (size_t)mib << 20, done = 0, next_fault = 3u << 20;
    char *buf = malloc(BLOCK);
    unsigned faults = 0;
    while (done < target) {
        size_t o = 0;
        while (o + 512 < BLOCK && done + o < target) {
            if (done + o >= next_fault) {
                const char *fl = FAULTS[rn(sizeof FAULTS / sizeof FAULTS[0])];
                size_t l = strlen(fl);
                memcpy(buf + o, fl, l);
                o += l;
                faults++;
                next_fault += (size_t)(2 + rn(8)) << 20;
                continue;
            }
            o += (size_t)noise(buf + o, 512);
        }
        if (fwrite(buf, 1, o, f) != o) return fprintf(stderr, "write failed\n"), 1;
        done += o;
    }
    free(buf);
    fclose(f);
    fprintf(stderr, "wrote %zu bytes, %u faults buried\n", done, faults);
    return 0;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static struct fm_diag_db *load(const char *sigs)
{
    struct fm_diag_db *db = NULL;
    fm_err err = {0};
    if (fm_diag_load(sigs, &db, &err)) {
        fprintf(stderr, "%s: %s\n", fm_strerror(err.code), err.text);
        exit(1);
    }
    return db;
}

static int scan(const char *sigs, const char *path)
{
    struct fm_diag_db *db = load(sigs);
    FILE *f = fopen(path, "rb");
    if (!f) return fprintf(stderr, "%s: %s\n", path, strerror(errno)), 1;
    size_t n = fm_diag_sig_count(db);
    uint64_t *hits = calloc(n, sizeof *hits);
    char *buf = malloc(BLOCK + 65536);
    size_t carry = 0, total = 0;
    uint64_t lines = 0;
    double scan_s = 0, t0 = now_s();
    for (;;) {
        size_t got = fread(buf + carry, 1, BLOCK - carry, f);
        size_t have = carry + got;
        if (have == 0) break;
        size_t end = have;
        if (got) { /* stop at the last complete line; carry the rest */
            char *nl = memrchr(buf, '\n', have);
            end = nl ? (size_t)(nl - buf) + 1 : have;
        }
        double s = now_s();
        lines += fm_diag_scan(db, buf, end, hits);
        scan_s += now_s() - s;
        total += end;
        carry = have - end;
        memmove(buf, buf + end, carry);
        if (!got) break;
    }
    double wall = now_s() - t0;
    fclose(f);
    printf("diagnose: %zu bytes, %llu matching lines, scan %.2f s (%.0f MB/s), with I/O %.2f s "
           "(%.0f MB/s)\n",
           total, (unsigned long long)lines, scan_s, (double)total / 1e6 / scan_s, wall,
           (double)total / 1e6 / wall);
    for (size_t i = 0; i < n; i++)
        if (hits[i]) printf("  %-28s %llu\n", fm_diag_sig_id(db, i), (unsigned long long)hits[i]);
    free(hits);
    free(buf);
    fm_diag_free(db);
    return 0;
}

static int patterns(const char *sigs, const char *out)
{
    struct fm_diag_db *db = load(sigs);
    json_t *lits = fm_diag_literals(db);
    FILE *f = fopen(out, "w");
    if (!f) return fprintf(stderr, "%s: %s\n", out, strerror(errno)), 1;
    size_t i;
    json_t *v;
    json_array_foreach(lits, i, v)
    {
        for (const char *p = json_string_value(v); *p; p++) {
            if (strchr(".[]()*+?{}|^$\\", *p)) fputc('\\', f);
            fputc(*p, f);
        }
        fputc('\n', f);
    }
    fclose(f);
    json_decref(lits);
    fm_diag_free(db);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "gen") == 0)
        return gen(argv[2], (unsigned)atoi(argv[3]), argc > 4 ? strtoull(argv[4], NULL, 10) : 0);
    if (argc == 4 && strcmp(argv[1], "scan") == 0) return scan(argv[2], argv[3]);
    if (argc == 4 && strcmp(argv[1], "patterns") == 0) return patterns(argv[2], argv[3]);
    fprintf(stderr,
            "usage: %s gen FILE MIB [SEED] | scan SIGNATURES FILE | patterns SIGNATURES OUT\n",
            argv[0]);
    return 2;
}
