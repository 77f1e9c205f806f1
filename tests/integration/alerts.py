#!/usr/bin/env python3
"""Alert intake (issue 18) against the real stack: `fleetmcp alert --stdin`
with Alertmanager webhook v4 payloads.

  intake:  gpu-a01 has fallen off the bus (Xid 79), gpu-b01 has an NVLink
           fault.  One payload: two alerts for gpu-a01 (one by Hostname,
           one by instance host:port), one for gpu-b01, one resolved for
           gpu-a02, one for a host Slurm does not know.  Two diagnoses'
           classes give two tickets and two plans (the second gpu-a01
           alert is deduplicated), none executed (nothing drained, no
           repair_execute); the resolved and the unknown alerts are
           recorded only.  Every alert has an audit row (tool alert_intake)
           with its labels; every internal call is a gated tools/call by
           "alert-intake".  The same alert sent again is a repeat: no new
           ticket or plan.
  http:    the same intake at POST /alerts on `fleetmcp serve --http`: a
           ticket and a plan, 400 for a malformed payload, 413 for too many
           alerts, 405 for GET.
  refused: not JSON, a wrong version, a bad alert, too many alerts and too
           many bytes are each refused whole with a clear error (exit 2),
           and leave no audit row and no ticket.

Driven by tests/integration/alerts.sh.
"""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import remediation as R  # noqa: E402  (helpers only)

check, sh, restore = R.check, R.sh, R.restore

EXTRA = ("guardrails:\n  max_per_domain: 10\n  min_schedulable_share: 0\n"
         "alerts:\n  dedup_window_s: 3600\n  max_alerts: 10\n  max_bytes: 65536\n")


def alert(name, fp, status="firing", **labels):
    labels["alertname"] = name
    return {"status": status, "labels": labels,
            "annotations": {"summary": f"{name} (integration test)"},
            "startsAt": "2026-12-06T06:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.invalid/graph", "fingerprint": fp}


def payload(*alerts):
    return {"version": "4", "groupKey": "{}:{alertname=\"x\"}", "truncatedAlerts": 0,
            "status": "firing", "receiver": "fleetmcp", "groupLabels": {}, "commonLabels": {},
            "commonAnnotations": {}, "externalURL": "http://alertmanager.invalid",
            "alerts": list(alerts)}


def intake(env, body):
    if not isinstance(body, (str, bytes)):
        body = json.dumps(body)
    r = subprocess.run([R.SERVER, "alert", "--stdin", "--config", env.cfg],
                       input=body if isinstance(body, bytes) else body.encode(),
                       capture_output=True, timeout=300)
    out, err = r.stdout.decode(), r.stderr.decode()
    try:
        rep = json.loads(out) if r.returncode == 0 else None
    except ValueError:
        rep = None
    return r.returncode, rep, err + out


def rows(env, tool, phase=None):
    q = "SELECT count(*) FROM audit WHERE tool=? AND decision='allow'"
    args = [tool]
    if phase:
        q += " AND phase=?"
        args.append(phase)
    return env.sql(q, args)[0][0]


def run():
    print("== alert intake", flush=True)
    env = R.Env("alerts", extra=EXTRA)
    R.inject("gpu-a01", "xid79")
    R.inject("gpu-b01", "nvlink")
    t0 = time.time()
    rc, rep, text = intake(env, payload(
        alert("GpuFellOffBus", "a0000000000000a1", Hostname="gpu-a01", severity="critical"),
        alert("DcgmGpuMissing", "a0000000000000a2", instance="gpu-a01:9400", severity="warning"),
        alert("NvlinkFatal", "b0000000000000b1", hostname="gpu-b01", severity="critical"),
        alert("GpuHot", "a0000000000000a3", status="resolved", node="gpu-a02"),
        alert("GpuFellOffBus", "c0000000000000c1", Hostname="ghost-node-99")))
    took = time.time() - t0
    rep = rep or {}
    print(f"     (5 alerts taken in {took:.1f} s)", flush=True)
    check(rc == 0 and rep.get("received") == 5 and rep.get("firing") == 4 and
          rep.get("resolved") == 1, "the payload is taken: 5 alerts, 4 firing, 1 resolved", text)
    check(rep.get("tickets") == 2 and rep.get("plans") == 2,
          "two nodes with a fault: two tickets and two plans", rep)
    by = {a.get("fingerprint"): a for a in rep.get("alerts", [])}
    a1, a2, b1 = by.get("a0000000000000a1", {}), by.get("a0000000000000a2", {}), \
        by.get("b0000000000000b1", {})
    check(a1.get("node") == "gpu-a01" and a1.get("fault_class") == "gpu_fallen_off_bus" and
          a1.get("ticket") and a1.get("plan_id"), "gpu-a01's alert: diagnosed, ticket, plan", a1)
    check(a2.get("node") == "gpu-a01" and a2.get("outcome") == "deduplicated" and
          a2.get("ticket") == a1.get("ticket") and a2.get("plan_id") == a1.get("plan_id"),
          "its second alert (by instance host:port) is deduplicated onto the same ticket/plan",
          a2)
    check(b1.get("node") == "gpu-b01" and b1.get("ticket") and b1.get("plan_id") and
          b1.get("ticket") != a1.get("ticket"), "gpu-b01's alert: its own ticket and plan", b1)
    r = by.get("a0000000000000a3", {})
    check("resolved" in r.get("outcome", "") and "ticket" not in r and "plan_id" not in r,
          "the resolved alert is recorded, not acted on", r)
    u = by.get("c0000000000000c1", {})
    check("node" not in u and "no Slurm node" in u.get("outcome", "") and
          rep.get("unmapped") == 1, "an alert about no Slurm node is recorded only", u)
    check(rows(env, "ticket_create", "intent") == 2 and rows(env, "repair_plan", "intent") == 2,
          "the audit shows two gated ticket_create and two repair_plan calls",
          env.sql("SELECT tool, phase, decision FROM audit"))
    check(rows(env, "repair_execute") == 0 and "DRAIN" not in R.slurm_state("gpu-a01") and
          "DRAIN" not in R.slurm_state("gpu-b01"), "no plan was executed: nothing drained",
          (R.slurm_state("gpu-a01"), R.slurm_state("gpu-b01")))
    dg = [json.loads(a) for (a,) in env.sql("SELECT args FROM audit WHERE tool='diagnose'")]
    seen = [((d.get("signals") or {}).get("metrics") or [{}])[0] for d in dg]
    check(len(dg) == 3 and all(m.get("name") == "ALERTS" and m.get("labels", {}).get("alertname")
                               for m in seen),
          "each diagnosis is node mode with the alert as a signal (ALERTS{labels})", dg)
    who = env.sql("SELECT DISTINCT initiator_kind, initiator_name FROM audit")
    check(who == [("agent", "alert-intake")], "every row's caller is the alert intake", who)
    ar = env.sql("SELECT args, result FROM audit WHERE tool='alert_intake' ORDER BY id")
    labels_ok = all(json.loads(a).get("labels", {}).get("alertname") for a, _ in ar)
    check(len(ar) == 5 and labels_ok, "one alert_intake audit row per alert, with its labels",
          ar)
    # The same alert again (Alertmanager's repeat_interval): a repeat.
    rc, rep, text = intake(env, payload(
        alert("GpuFellOffBus", "a0000000000000a1", Hostname="gpu-a01", severity="critical")))
    rep = rep or {}
    check(rc == 0 and rep.get("repeats") == 1 and rep.get("tickets") == 0 and
          rep.get("plans") == 0, "a repeat of the same alert makes no second ticket or plan", rep)
    check(rows(env, "ticket_create", "intent") == 2 and rows(env, "repair_plan", "intent") == 2,
          "the audit still shows two of each", rows(env, "ticket_create", "intent"))
    restore("gpu-a01", "gpu-b01")
    return env


def refused(env):
    print("== malformed payloads", flush=True)
    before = env.sql("SELECT count(*) FROM audit")[0][0]
    ok = alert("GpuFellOffBus", "d0000000000000d1", Hostname="gpu-a03")
    cases = [
        ("not JSON", "{\"version\": \"4\", \"alerts\": [", "INVALID", "not JSON"),
        ("version 3", {"version": "3", "alerts": [ok]}, "INVALID", "version must be \"4\""),
        ("no alerts array", {"version": "4", "alerts": {}}, "INVALID", "alerts must be an array"),
        ("labels not an object", payload(dict(ok, labels=["x"])), "INVALID",
         "alerts[0].labels"),
        ("a bad status after a good alert", payload(ok, dict(ok, status="pending")), "INVALID",
         "alerts[1].status"),
        ("11 alerts (max_alerts 10)", payload(*[ok] * 11), "TOOLARGE", "alerts.max_alerts"),
        ("70 KB (max_bytes 64 KiB)", payload(dict(ok, annotations={
            "description": "x" * 8000, **{f"k{i}": "y" * 8000 for i in range(8)}})),
         "TOOLARGE", "alerts.max_bytes"),
    ]
    for what, body, code, words in cases:
        rc, rep, text = intake(env, body)
        check(rc == 2 and code in text and words in text and "nothing was done" in text,
              f"{what}: refused whole, saying why", text[-400:])
    after = env.sql("SELECT count(*) FROM audit")[0][0]
    check(after == before, "the refusals did nothing (no audit row, no ticket)", after - before)


def over_http():
    print("== POST /alerts on the HTTP listener", flush=True)
    import socket
    import urllib.error
    import urllib.request
    env = R.Env("alerts-http", extra=EXTRA)
    R.inject("gpu-a03", "xid79")
    so = socket.socket()
    so.bind(("127.0.0.1", 0))
    port = so.getsockname()[1]
    so.close()
    log = open(os.path.join(env.dir, "http.log"), "w")
    srv = subprocess.Popen([R.SERVER, "serve", "--config", env.cfg, "--http",
                            f"127.0.0.1:{port}"], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}/alerts"

    def post(body, method="POST"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        rq = urllib.request.Request(url, data=data if method == "POST" else None, method=method,
                                    headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(rq, timeout=120) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")
        except (urllib.error.URLError, ConnectionError, ValueError) as e:
            return 0, {"error": repr(e)}
    try:
        up = R.wait_for(lambda: post(b"{}")[0] in (200, 400), 20)
        check(up, "the HTTP listener answers on /alerts")
        st, rep = post(payload(
            alert("GpuFellOffBus", "e0000000000000e1", Hostname="gpu-a03", severity="critical"),
            alert("GpuHot", "e0000000000000e2", status="resolved", Hostname="gpu-a03")))
        check(st == 200 and rep.get("tickets") == 1 and rep.get("plans") == 1 and
              rep.get("resolved") == 1, "POST /alerts: a ticket and a plan, the resolved one"
              " recorded", (st, rep))
        who = env.sql("SELECT DISTINCT client_name FROM audit")
        check(who == [("alert-intake",)], "its rows name the alert intake as the client", who)
        st, rep = post(b"[1, 2")
        check(st == 400 and rep.get("error") == "INVALID" and "nothing was done" in
              rep.get("message", ""), "a malformed payload: 400, saying why", (st, rep))
        st, rep = post(payload(*[alert("X", "f0", Hostname="gpu-a03")] * 11))
        check(st == 413 and rep.get("error") == "TOOLARGE", "too many alerts: 413", (st, rep))
        st, rep = post(b"", method="GET")
        check(st == 405, "GET /alerts: 405", (st, rep))
        check(env.sql("SELECT count(*) FROM audit WHERE tool='ticket_create' AND"
                      " phase='intent'")[0][0] == 1, "the refusals made nothing")
    finally:
        srv.terminate()
        try:
            srv.wait(timeout=30)
        except subprocess.TimeoutExpired:
            srv.kill()
        log.close()
    restore("gpu-a03")


def main():
    restore(*R.NODES)
    t0 = time.time()
    try:
        env = run()
        refused(env)
        over_http()
    except Exception as e:  # a crash is a failure, not the end
        check(False, "alerts raised", repr(e))
    restore(*R.NODES)
    print(f"     (alerts: {time.time() - t0:.0f} s)", flush=True)
    R.end("alerts", "configs and stores")


if __name__ == "__main__":
    main()
