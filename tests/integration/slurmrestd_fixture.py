#!/usr/bin/env python3
"""A loopback slurmrestd for the REST versions this machine cannot run
(v0.0.42..v0.0.44: Slurm 24.11, 25.05, 25.11; the stack is 22.05).

It answers from tests/fixtures/slurm/rest_v0.0.4N_*.json, which are built
from Slurm's published OpenAPI documents (see that folder's README), and
behaves as slurmrestd does where fleetmcp depends on it:

  GET    /openapi/v3                   the paths of the offered versions only
  GET    /slurm/vX/ping/               {meta, errors, warnings}
  GET    /slurm/vX/diag/               statistics.req_time (the clock now)
                                       and meta.slurm.cluster (--cluster)
  GET    /slurm/vX/nodes/              every node (the first --nodes);
                                       ?update_time=T with T at or after
                                       --unchanged-since (default: the
                                       server's start): 304, as slurmctld
                                       says "no change"
  GET    /slurm/vX/partitions/         ?update_time=T likewise, else none
  GET    /slurm/vX/node/NAME           that node; unknown: 422 (errno 2018)
  GET    /slurm/vX/jobs/               every job
  DELETE /slurm/vX/job/ID              a known job: 200 and it is gone;
                                       unknown: 200 with status[].error 2017
                                       (slurmctld's per-job kill answer)
  POST   /slurm/vX/node/NAME           update_node_msg: state from the
                                       schema's enum, reason a string
  anything else, or a version not offered: 404

A trailing slash is optional, as slurmrestd splits paths on '/'.  With
--token, X-SLURM-USER-NAME and X-SLURM-USER-TOKEN must match (else 401).
Test controls: GET /_fixture/requests ([method, path, body, query]), POST
/_fixture/reset.  Prints the port on stdout.

  slurmrestd_fixture.py --versions 42,43,44 [--token T --user U]
      [--port P | --socket PATH] [--cluster NAME] [--nodes N]
      [--unchanged-since EPOCH]
With --socket it listens on that unix socket (replacing a stale one) and
prints 0.
"""
import argparse
import copy
import json
import os
import re
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "slurm")
KNOWN = (42, 43, 44)  # versions with fixture answers
NODE_STATES = {"DRAIN", "RESUME", "UNDRAIN", "DOWN", "IDLE", "REBOOT_REQUESTED"}


def load(name):
    with open(os.path.join(FIX, name)) as f:
        d = json.load(f)
    d.pop("_comment", None)
    return d


class State:
    def __init__(self, versions, cluster, nodes, since):
        self.lock = threading.Lock()
        self.versions = versions
        self.cluster = cluster
        self.nodes = nodes
        self.started = since or int(time.time())
        self.paths = load("rest_openapi_paths.json")
        self.reset()

    def reset(self):
        self.requests = []
        self.ans = {m: {k: load(f"rest_v0.0.{m}_{k}.json")
                        for k in ("nodes", "jobs", "node_unknown", "job_kill_ok",
                                  "job_kill_unknown")} for m in KNOWN}
        for a in self.ans.values():
            a["nodes"]["nodes"] = a["nodes"]["nodes"][:self.nodes]
            for k in a.values():
                k["meta"]["slurm"]["cluster"] = self.cluster


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.handle_any()

    def do_POST(self):
        self.handle_any()

    def do_DELETE(self):
        self.handle_any()

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if 0 < n < 1 << 20 else b""
        st = self.server.state
        path, _, query = self.path.partition("?")
        with st.lock:
            if path == "/_fixture/requests":
                return self.reply(200, st.requests)
            if path == "/_fixture/reset":
                st.reset()
                return self.reply(200, {})
            st.requests.append([self.command, path, raw.decode("utf-8", "replace"), query])
            cfg = self.server.cfg
            if cfg.token and (self.headers.get("X-SLURM-USER-TOKEN") != cfg.token or
                              self.headers.get("X-SLURM-USER-NAME") != cfg.user):
                return self.reply(401, {"errors": [{"error": "Authentication failure",
                                                    "error_number": 1007}]})
            status, body = self.route(st, path.rstrip("/"), raw, query)
        if status == 304:
            self.send_response(304)
            self.end_headers()
            return
        self.reply(status, body)

    def route(self, st, path, raw, query=""):
        cmd = self.command
        if path == "/openapi/v3" and cmd == "GET":
            paths = {}
            for m in st.versions:
                for p in st.paths["v0.0.%d" % m]:
                    paths[p] = {"get": {}}
            return 200, {"openapi": "3.0.3", "info": {"title": "Slurm REST API",
                                                       "version": "Slurm-25.11.0"},
                         "paths": paths}
        m = re.fullmatch(r"/slurm/v0\.0\.(\d+)/(ping|diag|nodes|partitions|jobs|node/([^/]+)|job/([^/]+))",
                         path)
        if not m or int(m.group(1)) not in st.versions or int(m.group(1)) not in KNOWN:
            return 404, {"errors": [{"error": "Unable to find requested URL",
                                     "error_number": 9201, "source": path}]}
        a = st.ans[int(m.group(1))]
        what, node, job = m.group(2), m.group(3), m.group(4)
        base = {k: v for k, v in a["job_kill_ok"].items() if k != "status"}
        if what == "ping" and cmd == "GET":
            return 200, dict(base, pings=[])
        m = re.fullmatch(r"update_time=(\d+)", query)
        if what in ("nodes", "partitions") and cmd == "GET" and m:
            if int(m.group(1)) >= st.started:
                return 304, None
        if what == "diag" and cmd == "GET":
            return 200, dict(base, statistics={"req_time": {"set": True, "infinite": False,
                                                            "number": int(time.time())}})
        if what == "partitions" and cmd == "GET":
            return 200, dict(base, partitions=[])
        if what == "nodes" and cmd == "GET":
            return 200, a["nodes"]
        if what == "jobs" and cmd == "GET":
            return 200, a["jobs"]
        if node and cmd == "GET":
            hit = [x for x in a["nodes"]["nodes"] if x["name"] == node]
            if hit:
                return 200, dict(a["nodes"], nodes=hit)
            ans = copy.deepcopy(a["node_unknown"])
            ans["errors"][0]["description"] = f"Unable to query node {node}"
            return 422, ans
        if node and cmd == "POST":
            try:
                b = json.loads(raw)
                assert isinstance(b, dict) and set(b) <= {"state", "reason", "reason_uid"}
                assert isinstance(b["state"], list) and set(b["state"]) <= NODE_STATES
                assert isinstance(b.get("reason", ""), str)
            except Exception:
                return 400, dict(base, errors=[{"error": "Unable to parse update_node_msg",
                                                "error_number": 9000}])
            if not any(x["name"] == node for x in a["nodes"]["nodes"]):
                return 422, a["node_unknown"]
            return 200, base
        if job and cmd == "DELETE":
            jobs = a["jobs"]["jobs"]
            hit = [x for x in jobs if str(x["job_id"]) == job]
            if hit:
                jobs.remove(hit[0])
                return 200, a["job_kill_ok"]
            ans = copy.deepcopy(a["job_kill_unknown"])
            e = ans["status"][0]
            e["step_id"] = job
            e["error"]["message"] = f"Job {job} not found"
            if job.isdigit():
                e["job_id"]["number"] = int(job)
            return 200, ans
        return 404, {"errors": [{"error": "Unsupported method", "error_number": 9201}]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--versions", default="42,43,44",
                    help="minor versions offered (45: offered in /openapi/v3 only)")
    ap.add_argument("--token")
    ap.add_argument("--user", default="fleetmcp")
    ap.add_argument("--port", type=int, default=0, help="0: any free port")
    ap.add_argument("--socket", help="a unix socket path instead of a loopback port")
    ap.add_argument("--cluster", default="fmtest", help="ClusterName in every answer's meta")
    ap.add_argument("--nodes", type=int, default=1 << 30, help="list only the first N nodes")
    ap.add_argument("--unchanged-since", type=int, default=0,
                    help="no node changed since this epoch second (0: the start)")
    cfg = ap.parse_args()
    if cfg.socket:
        if os.path.exists(cfg.socket):
            os.unlink(cfg.socket)
        srv = socketserver.ThreadingUnixStreamServer(cfg.socket, Handler)
    else:
        srv = ThreadingHTTPServer(("127.0.0.1", cfg.port), Handler)
    srv.daemon_threads = True
    srv.cfg = cfg
    srv.state = State([int(x) for x in cfg.versions.split(",")], cfg.cluster, cfg.nodes,
                     cfg.unchanged_since)
    print(0 if cfg.socket else srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
