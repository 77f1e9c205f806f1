#!/usr/bin/env python3
"""What the slow calls of an HTTP load have in common.

    python3 bench/http-tail.py CLIENT_DUMP SERVER_STATS [threshold_us]

CLIENT_DUMP is bench/httpbench.c's --dump ("client send_us latency_us"),
SERVER_STATS the server's FLEETMCP_HTTP_STATS file ("kind thread start_us
duration_us a b", src/transport/http_stats.c); both on CLOCK_MONOTONIC.
For the calls over the threshold (2000 us) it counts what overlapped each
one in the server (a call may count in several rows), then gives each the
first cause in the order printed, and compares with all calls."""
import bisect
import sys
from collections import Counter


def load(path):
    out = []
    with open(path) as f:
        for line in f:
            p = line.split()
            out.append((p[0], int(p[1]), int(p[2]), int(p[3]), int(p[4]), int(p[5])))
    return out


def main():
    calls = []
    with open(sys.argv[1]) as f:
        for line in f:
            c, t, lat = line.split()
            calls.append((float(t), float(lat), int(c)))
    ev = load(sys.argv[2])
    thr = float(sys.argv[3]) if len(sys.argv) > 3 else 2000.0
    by = {}
    for e in ev:
        by.setdefault(e[0], []).append(e)
    for k in by:
        by[k].sort(key=lambda e: e[2])
    starts = {k: [e[2] for e in v] for k, v in by.items()}
    longest = {k: max((e[3] for e in v), default=0) for k, v in by.items()}

    def overlapping(kind, t0, t1):
        """Events of kind that overlap [t0, t1]."""
        v = by.get(kind, [])
        i = bisect.bisect_left(starts.get(kind, []), t0 - longest.get(kind, 0))
        res = []
        while i < len(v) and v[i][2] <= t1:
            if v[i][2] + v[i][3] >= t0:
                res.append(v[i])
            i += 1
        return res

    # Each cause: a test on the call's window; the first that holds is
    # the call's cause (order: the server's stalls first, then what is
    # only load).
    def causes(t0, t1):
        c = []
        if [k for k in overlapping("K", t0, t1) if k[3] > 0]:
            c.append("WAL checkpoint ran meanwhile")
        if [k for k in overlapping("C", t0, t1) if k[3] >= 1000]:
            c.append("a batch commit >= 1 ms")
        if [k for k in overlapping("E", t0, t1) if k[3] >= 500]:
            c.append("a call's exchange >= 0.5 ms")
        if overlapping("O", t0, t1) or overlapping("X", t0, t1):
            c.append("a connection opened/closed")
        if [k for k in overlapping("T", t0, t1) if k[1] >= 2 and k[4] > 0]:
            c.append("a second serving thread served")
        waits = [k for k in overlapping("W", t0, t1) if k[1] == 1]
        idle = sum(min(k[2] + k[3], t1) - max(k[2], t0) for k in waits)
        if idle >= 500:
            c.append("server waiting >= 0.5 ms of it (client/kernel side)")
        turns = [k for k in overlapping("T", t0, t1) if k[1] == 1]
        if [k for k in turns if k[3] >= 1500]:
            c.append("a turn >= 1.5 ms (many calls read at once)")
        if len(turns) >= 4:
            c.append("4+ turns (waited behind other batches)")
        return c

    slow = [c for c in calls if c[1] > thr]
    print(f"calls {len(calls)}, over {thr:.0f} us: {len(slow)} ({100.0 * len(slow) / max(len(calls), 1):.2f}%)")
    hit, first = Counter(), Counter()
    for t, lat, _ in slow:
        cs = causes(t, t + lat)
        hit.update(cs)
        first[cs[0] if cs else "nothing seen in the server"] += 1
    # The same tests over every 20th call: what is common to all.
    base = Counter()
    sample = calls[::20]
    for t, lat, _ in sample:
        base.update(causes(t, t + lat))
    print(f"{'overlapping the call':58} {'slow':>7} {'first':>7} {'all calls':>9}")
    for k in sorted(set(hit) | set(first) | set(base), key=lambda k: -hit[k]):
        print(f"{k:58} {hit[k]:>7} {first[k]:>7} {100.0 * base[k] / max(len(sample), 1):>8.1f}%")
    for k in sorted(by):
        d = sorted(e[3] for e in by[k])
        print(f"server {k}: {len(d)} events, duration p50 {d[len(d) // 2]} us,"
              f" p99 {d[int((len(d) - 1) * 0.99)]} us, max {d[-1]} us")
    rows = sorted(e[4] for e in by.get("C", []))
    if rows:
        print(f"batch rows: p50 {rows[len(rows) // 2]}, p99 {rows[int((len(rows) - 1) * 0.99)]}, max {rows[-1]}")


main()
