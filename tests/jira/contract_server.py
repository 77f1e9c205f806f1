#!/usr/bin/env python3
"""A Jira REST API v2 contract server for fleetmcp's tests (Jira cannot run here).

Listens on 127.0.0.1 (port 0 unless --port), prints the port on stdout, and
serves, with in-memory issues:

  POST /rest/api/2/issue                      create  -> 201 {id, key, self}
  GET  /rest/api/2/issue/{key}                get     -> 200 issue
  PUT  /rest/api/2/issue/{key}                edit    -> 204
  POST /rest/api/2/issue/{key}/comment        comment -> 201 comment
  POST /rest/api/2/issue/{key}/attachments    attach  -> 200 [attachment]
  GET  /rest/api/2/issue/{key}/transitions    list    -> 200 {transitions}
  POST /rest/api/2/issue/{key}/transitions    apply   -> 204
  GET  /rest/api/{2,3}/serverInfo             deploymentType "Server" or "Cloud"

Two modes, as the two products behave in 2026:
  --mode datacenter (default): Jira Data Center / Server
  GET|POST /rest/api/2/search                 JQL     -> 200 {issues, total, startAt...}
  --mode cloud: Jira Cloud, where Atlassian removed that search in 2025
  GET|POST /rest/api/{2,3}/search             -> 410 Gone (recorded as a violation)
  GET|POST /rest/api/{2,3}/search/jql         enhanced search -> 200 {issues,
                                              nextPageToken (absent on the last
                                              page), isLast}; a page holds at most
                                              --page-cap issues whatever maxResults
                                              asks, and the token is bound to its JQL
  POST /rest/api/3/search/approximate-count   {jql} -> 200 {count}
  On /rest/api/3 rich text (description, comment bodies) is Atlassian
  Document Format, as Cloud answers it; the issue endpoints stay on v2,
  which Cloud still serves with plain text.

Every request is checked against the REST v2 contract: method, path,
Accept, Content-Type, Authorization (Basic email:token or Bearer PAT, as
configured), JSON body members and types, multipart part "file" with
X-Atlassian-Token: no-check.  A request that breaks it is answered 400 (401
for bad credentials) with Jira's error shape {errorMessages, errors} and is
recorded; GET /_contract/violations lists them (tests assert it is empty).

Test controls (no auth):
  POST /_contract/fail  {"status": 429|500|401|400..., "retry_after": s,
                         "count": n, "method": "POST", "path": "/rest/api/2/issue"}
       the next n matching /rest requests (that pass the contract) get status
  GET  /_contract/violations    recorded violations
  GET  /_contract/requests      [{method, path, status, t}] of /rest requests
  GET  /_contract/issues        the raw issues
  POST /_contract/clear-faults  drop pending injected failures
  POST /_contract/reset         forget issues, faults, requests, violations
"""
import argparse
import base64
import hashlib
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

API = "/rest/api/2"
API3 = "/rest/api/3"
REMOVED = ("The requested API has been removed. Please migrate to the /rest/api/3/search/jql "
           "API. A full migration guideline is available at "
           "https://developer.atlassian.com/changelog/#CHANGE-2046")
STATUSES = {
    "1": {"name": "To Do", "cat": ("2", "new", "blue-gray", "To Do")},
    "3": {"name": "In Progress", "cat": ("4", "indeterminate", "yellow", "In Progress")},
    "10001": {"name": "Done", "cat": ("3", "done", "green", "Done")},
}
# transition id -> (name, target status id), offered from statuses not equal to the target
TRANSITIONS = {"11": ("To Do", "1"), "21": ("In Progress", "3"), "31": ("Done", "10001")}
PRIORITIES = ["Highest", "High", "Medium", "Low", "Lowest"]
SYSTEM_FIELDS = {"summary", "description", "status", "priority", "labels", "created", "updated",
                 "comment", "attachment", "issuetype", "project", "reporter", "assignee"}


class Violation(Exception):
    """A request that breaks the REST v2 contract: answered and recorded."""

    def __init__(self, msg, status=400, field=None):
        super().__init__(msg)
        self.msg, self.status, self.field = msg, status, field


class JiraError(Violation):
    """A well-formed request Jira refuses (unknown issue): answered, not recorded."""


def jira_time(t=None):
    t = time.time() if t is None else t
    ms = int((t % 1) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03d+0000" % ms


class State:
    def __init__(self, cfg):
        self.cfg = cfg
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.issues = {}
        self.next_id = 10000
        self.next_num = 1
        self.next_sub = 20000
        self.faults = []
        self.violations = []
        self.requests = []


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "JiraContract/1.0"

    def log_message(self, fmt, *args):  # quiet: tests read stderr for secrets
        pass

    # ---- plumbing -------------------------------------------------------
    @property
    def st(self):
        return self.server.state

    def reply(self, status, body=None, headers=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json;charset=UTF-8")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)
        return status

    def read_body(self):
        te = self.headers.get("Transfer-Encoding")
        if te:
            raise Violation("chunked request bodies are not expected")
        n = self.headers.get("Content-Length")
        if n is None:
            return b""
        n = int(n)
        if n > 20 * 1024 * 1024:
            raise Violation("request body too large", 413)
        return self.rfile.read(n)

    def jira_error(self, status, msg, field=None):
        if field:
            return {"errorMessages": [], "errors": {field: msg}}
        return {"errorMessages": [msg], "errors": {}}

    # ---- contract checks ------------------------------------------------
    def check_auth(self):
        a = self.headers.get("Authorization")
        cfg = self.st.cfg
        if not a:
            raise Violation("You are not authenticated. Authentication required to perform "
                            "this operation.", 401)
        if a.startswith("Basic "):
            if not cfg.email or not cfg.token:
                raise Violation("Basic authentication is not configured on this server", 401)
            try:
                dec = base64.b64decode(a[6:], validate=True).decode()
            except Exception:
                raise Violation("malformed Basic credentials", 401)
            if dec != f"{cfg.email}:{cfg.token}":
                raise Violation("Basic credentials do not match", 401)
        elif a.startswith("Bearer "):
            if not cfg.pat or a[7:] != cfg.pat:
                raise Violation("Bearer token does not match", 401)
        else:
            raise Violation("unsupported Authorization scheme", 401)

    def check_accept(self):
        acc = self.headers.get("Accept", "")
        if "application/json" not in acc:
            raise Violation("Accept must include application/json")

    def json_body(self, raw):
        ct = self.headers.get("Content-Type", "")
        if ct.split(";")[0].strip().lower() != "application/json":
            raise Violation(f"Content-Type must be application/json, not {ct!r}", 415)
        try:
            b = json.loads(raw.decode("utf-8"))
        except Exception:
            raise Violation("Unexpected character in the JSON body: not valid JSON")
        if not isinstance(b, dict):
            raise Violation("the JSON body must be an object")
        return b

    def no_body(self, raw):
        if raw:
            raise Violation(f"{self.command} must not carry a body")

    def check_fields(self, f, create):
        cfg = self.st.cfg
        if not isinstance(f, dict):
            raise Violation("fields must be an object")
        for k, v in f.items():
            if k == "project":
                if not (isinstance(v, dict) and isinstance(v.get("key"), str)):
                    raise Violation("project must be {key: string}", field="project")
                if v["key"] != cfg.project:
                    raise Violation("valid project is required", field="project")
            elif k == "summary":
                if not isinstance(v, str) or not v.strip():
                    raise Violation("You must specify a summary of the issue.", field="summary")
                if len(v) > 255:
                    raise Violation("Summary must be less than 255 characters.", field="summary")
                if "\n" in v or "\r" in v:
                    raise Violation("The summary is invalid because it contains newline "
                                    "characters.", field="summary")
            elif k == "issuetype":
                if not (isinstance(v, dict) and isinstance(v.get("name"), str)):
                    raise Violation("issuetype must be {name: string}", field="issuetype")
                if v["name"] != cfg.issue_type:
                    raise Violation("Specify a valid issue type", field="issuetype")
            elif k == "description":
                if not isinstance(v, str):
                    raise Violation("description must be a string (REST v2: plain text)",
                                    field="description")
            elif k == "labels":
                if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                    raise Violation("labels must be an array of strings", field="labels")
                for x in v:
                    if not x or len(x) > 255 or re.search(r"\s", x):
                        raise Violation("The label '%s' contains spaces which is invalid." % x,
                                        field="labels")
            elif k == "priority":
                if not (isinstance(v, dict) and isinstance(v.get("name"), str)):
                    raise Violation("priority must be {name: string}", field="priority")
                if v["name"] not in PRIORITIES:
                    raise Violation("Specify a valid priority name", field="priority")
            elif k in cfg.custom_fields:
                if not isinstance(v, (str, int, float)) or isinstance(v, bool):
                    raise Violation("custom field values must be strings or numbers", field=k)
            else:
                raise Violation("Field '%s' cannot be set. It is not on the appropriate screen, "
                                "or unknown." % k, field=k)
        if create:
            for need in ("project", "summary", "issuetype"):
                if need not in f:
                    raise Violation({"project": "project is required",
                                     "summary": "You must specify a summary of the issue.",
                                     "issuetype": "issue type is required"}[need], field=need)

    def check_update_ops(self, upd):
        if not isinstance(upd, dict):
            raise Violation("update must be an object")
        for k, ops in upd.items():
            if k != "labels":
                raise Violation("Field '%s' cannot be set. It is not on the appropriate screen, "
                                "or unknown." % k, field=k)
            if not isinstance(ops, list) or not ops:
                raise Violation("update.labels must be a non-empty array", field="labels")
            for op in ops:
                if not (isinstance(op, dict) and len(op) == 1 and next(iter(op)) in
                        ("add", "remove", "set")):
                    raise Violation("update.labels items are {add|remove|set: label}",
                                    field="labels")
                val = next(iter(op.values()))
                if not isinstance(val, str) or not val or re.search(r"\s", val):
                    raise Violation("The label '%s' contains spaces which is invalid." % val,
                                    field="labels")

    def issue_or_404(self, key):
        iss = self.st.issues.get(key)
        if not iss:
            raise JiraError("Issue does not exist or you do not have permission to see it.", 404)
        return iss

    # ---- shapes ---------------------------------------------------------
    def base(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def status_obj(self, sid):
        s = STATUSES[sid]
        cid, ckey, color, cname = s["cat"]
        return {"self": f"{self.base()}{API}/status/{sid}", "name": s["name"], "id": sid,
                "statusCategory": {"id": int(cid), "key": ckey, "colorName": color,
                                   "name": cname}}

    @staticmethod
    def adf(text):
        """Plain text as an Atlassian Document Format document."""
        if text is None:
            return None
        paras = [{"type": "paragraph", "content": [{"type": "text", "text": line}]}
                 if line else {"type": "paragraph", "content": []}
                 for line in text.split("\n")]
        return {"type": "doc", "version": 1, "content": paras}

    def issue_json(self, iss, only=None, v3=False):
        f = dict(iss["fields"])
        f["status"] = self.status_obj(iss["status"])
        f["created"], f["updated"] = iss["created"], iss["updated"]
        f["comment"] = {"comments": iss["comments"], "maxResults": len(iss["comments"]),
                        "total": len(iss["comments"]), "startAt": 0}
        f["attachment"] = iss["attachments"]
        f.setdefault("labels", [])
        f.setdefault("description", None)
        f.setdefault("priority", {"name": "Medium", "id": "3"})
        if v3:
            f["description"] = self.adf(f["description"])
            f["comment"] = dict(f["comment"], comments=[
                dict(c, body=self.adf(c["body"])) for c in f["comment"]["comments"]])
        if only:
            f = {k: v for k, v in f.items() if k in only}
        return {"expand": "renderedFields,names,schema,operations", "id": iss["id"],
                "self": f"{self.base()}{API}/issue/{iss['id']}", "key": iss["key"], "fields": f}

    def transitions_for(self, iss):
        out = []
        for tid, (name, to) in TRANSITIONS.items():
            if to != iss["status"]:
                out.append({"id": tid, "name": name, "to": self.status_obj(to),
                            "hasScreen": False, "isGlobal": True, "isInitial": False,
                            "isAvailable": True, "isConditional": False})
        return out

    # ---- JQL --------------------------------------------------------------
    TOKEN = re.compile(r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<op>!=|=|~)|'
                       r'(?P<word>[A-Za-z_][A-Za-z0-9_.\-]*))')

    def parse_jql(self, jql):
        if not isinstance(jql, str) or len(jql) > 2000:
            raise Violation("jql must be a string of at most 2000 characters")
        toks, pos = [], 0
        while pos < len(jql):
            if jql[pos:].strip() == "":
                break
            m = self.TOKEN.match(jql, pos)
            if not m or m.end() == pos:
                raise Violation("Error in the JQL Query: The character '%s' is a reserved JQL "
                                "character. (line 1, character %d)" % (jql[pos], pos + 1))
            if m.group("str") is not None:
                body = m.group("str")[1:-1]
                if re.search(r'\\[^"\\\'nrt]', body):
                    raise Violation("Error in the JQL Query: '\\' is an illegal JQL escape "
                                    "sequence. (line 1, character %d)" % (pos + 1))
                val = re.sub(r'\\(["\\\'])', r"\1", body)
                toks.append(("str", val))
            elif m.group("op"):
                toks.append(("op", m.group("op")))
            else:
                toks.append(("word", m.group("word")))
            pos = m.end()
        clauses, order, i = [], None, 0
        while i < len(toks):
            if toks[i] == ("word", "ORDER"):
                if i + 2 >= len(toks) or toks[i + 1] != ("word", "BY"):
                    raise Violation("Error in the JQL Query: Expecting 'BY' after 'ORDER'.")
                field = toks[i + 2][1]
                direction = toks[i + 3][1] if i + 3 < len(toks) else "ASC"
                if direction.upper() not in ("ASC", "DESC") or i + 4 < len(toks):
                    raise Violation("Error in the JQL Query: bad ORDER BY clause.")
                order = (field, direction.upper())
                break
            if i + 2 >= len(toks) or toks[i][0] != "word" or toks[i + 1][0] != "op":
                raise Violation("Error in the JQL Query: Expecting a field, an operator and a "
                                "value at token %d." % (i + 1))
            field, op, val = toks[i][1], toks[i + 1][1], toks[i + 2]
            if val[0] == "op":
                raise Violation("Error in the JQL Query: Expecting a value after '%s'." % op)
            if field not in ("project", "labels", "statusCategory", "status", "key"):
                raise Violation("Field '%s' does not exist or you do not have permission to "
                                "view it." % field)
            if field == "labels" and val[0] != "str":
                # bare words work in Jira but break on '-' and reserved words: we require quoting
                raise Violation("labels values must be quoted JQL string literals")
            clauses.append((field, op, val[1]))
            i += 3
            if i < len(toks) and toks[i] == ("word", "AND"):
                i += 1
                if i >= len(toks) or toks[i] == ("word", "ORDER"):
                    raise Violation("Error in the JQL Query: Expecting a clause after 'AND'.")
            elif i < len(toks) and toks[i] != ("word", "ORDER"):
                raise Violation("Error in the JQL Query: only AND is supported here, got %r"
                                % (toks[i][1],))
        return clauses, order

    def jql_match(self, iss, clauses):
        for field, op, val in clauses:
            if field == "project":
                have = [self.st.cfg.project]
            elif field == "labels":
                have = iss["fields"].get("labels", [])
            elif field == "statusCategory":
                s = STATUSES[iss["status"]]
                have = [s["cat"][1], s["cat"][3]]
                have = [h.lower() for h in have]
                val = val.lower()
            elif field == "status":
                have = [STATUSES[iss["status"]]["name"]]
            else:
                have = [iss["key"]]
            hit = val in have
            if (op == "=" and not hit) or (op == "!=" and hit):
                return False
        return True

    # ---- dispatch ----------------------------------------------------------
    def do_GET(self):
        self.handle_any()

    def do_POST(self):
        self.handle_any()

    def do_PUT(self):
        self.handle_any()

    def do_DELETE(self):
        self.handle_any()

    def handle_any(self):
        u = urlsplit(self.path)
        try:
            raw = self.read_body()
        except Violation as v:
            self.close_connection = True
            return self.reply(v.status, self.jira_error(v.status, v.msg))
        if u.path.startswith("/_contract/"):
            return self.control(u.path, raw)
        with self.st.lock:
            t = time.time()
            try:
                status, body, headers = self.api(u, raw)
            except Violation as v:
                if not isinstance(v, JiraError):
                    self.st.violations.append({"method": self.command, "path": u.path,
                                               "status": v.status, "message": v.msg,
                                               "field": v.field})
                status, body, headers = v.status, self.jira_error(v.status, v.msg, v.field), {}
            self.st.requests.append({"method": self.command, "path": u.path, "status": status,
                                     "t": t})
        self.reply(status, body, headers)

    def control(self, path, raw):
        st = self.st
        with st.lock:
            if path == "/_contract/violations" and self.command == "GET":
                return self.reply(200, st.violations)
            if path == "/_contract/requests" and self.command == "GET":
                return self.reply(200, st.requests)
            if path == "/_contract/issues" and self.command == "GET":
                return self.reply(200, st.issues)
            if path == "/_contract/reset" and self.command == "POST":
                st.reset()
                return self.reply(204)
            if path == "/_contract/clear-faults" and self.command == "POST":
                st.faults = []
                return self.reply(204)
            if path == "/_contract/fail" and self.command == "POST":
                try:
                    f = json.loads(raw or b"{}")
                    assert isinstance(f, dict) and isinstance(f.get("status"), int)
                except Exception:
                    return self.reply(400, {"error": "body must be {status, count?, "
                                                     "retry_after?, method?, path?}"})
                f.setdefault("count", 1)
                st.faults.append(f)
                return self.reply(204)
        return self.reply(404, {"error": "unknown control endpoint"})

    def take_fault(self, path):
        for f in self.st.faults:
            if f["count"] <= 0:
                continue
            if f.get("method") and f["method"] != self.command:
                continue
            if f.get("path") and not path.startswith(f["path"]):
                continue
            f["count"] -= 1
            return f
        return None

    def fault_reply(self, f):
        s = f["status"]
        headers = {}
        if s == 429:
            body = {"errorMessages": ["Rate limit exceeded."], "errors": {}}
            if f.get("retry_after") is not None:
                headers["Retry-After"] = str(f["retry_after"])
        elif s == 401:
            body = {"errorMessages": ["You are not authenticated. Authentication required to "
                                      "perform this operation."], "errors": {}}
        elif s == 400:
            body = {"errorMessages": [], "errors": {
                "customfield_10099": "Field 'customfield_10099' cannot be set. It is not on the "
                                     "appropriate screen, or unknown."}}
        elif s == 404:
            body = {"errorMessages": ["Issue does not exist or you do not have permission to "
                                      "see it."], "errors": {}}
        else:
            body = {"errorMessages": ["Internal server error"], "errors": {}}
        return s, body, headers

    def api(self, u, raw):
        path, q = u.path, parse_qs(u.query)
        cloud = self.st.cfg.mode == "cloud"
        if not path.startswith(API + "/") and not (cloud and path.startswith(API3 + "/")):
            raise Violation(f"unknown path {path}", 404)
        self.check_auth()
        self.check_accept()
        v = path[len(API) - 1]  # "2" or "3"
        tail = path[len(API):]
        if tail == "/serverInfo" and self.command == "GET":
            self.no_body(raw)
            return 200, self.server_info(), {}
        if cloud and tail == "/search":
            raise Violation(REMOVED, 410)
        if cloud and tail == "/search/jql" and self.command in ("GET", "POST"):
            if self.command == "GET":
                self.no_body(raw)
                args = {k: q[k][0] for k in ("jql", "nextPageToken") if q.get(k)}
                if q.get("maxResults"):
                    args["maxResults"] = int(q["maxResults"][0])
                if q.get("fields"):
                    args["fields"] = ",".join(q["fields"]).split(",")
            else:
                args = self.json_body(raw)
            f = self.take_fault(path)
            return self.fault_reply(f) if f else self.search_jql(args, v == "3")
        if cloud and path == API3 + "/search/approximate-count" and self.command == "POST":
            return self.approximate_count(self.json_body(raw))
        if path.startswith(API3 + "/"):
            raise Violation(f"no such endpoint here: {self.command} {path} (this contract "
                            "serves v3 for search only)", 404)
        if self.headers.get("X-Atlassian-Token") and not path.endswith("/attachments"):
            raise Violation("X-Atlassian-Token is only expected on attachment uploads")
        m = re.fullmatch(API + r"/issue/([A-Z][A-Z0-9_]*-[0-9]+)(/comment|/attachments|"
                                 r"/transitions)?", path)
        cmd = self.command
        handler = None
        if path == API + "/issue" and cmd == "POST":
            body = self.json_body(raw)
            handler = lambda: self.create(body)  # noqa: E731
        elif path == API + "/search" and cmd in ("GET", "POST"):
            if cmd == "GET":
                self.no_body(raw)
                args = {"jql": (q.get("jql") or [""])[0],
                        "maxResults": int((q.get("maxResults") or ["50"])[0]),
                        "startAt": int((q.get("startAt") or ["0"])[0]),
                        "fields": ",".join(q.get("fields", [])).split(",") if q.get("fields")
                        else None}
            else:
                args = self.json_body(raw)
            handler = lambda: self.search(args)  # noqa: E731
        elif m and m.group(2) is None and cmd in ("GET", "PUT"):
            key = m.group(1)
            if cmd == "GET":
                self.no_body(raw)
                fl = None
                if q.get("fields"):
                    fl = set(",".join(q["fields"]).split(","))
                    bad = [x for x in fl if x not in SYSTEM_FIELDS and
                           x not in self.st.cfg.custom_fields and x not in ("*all", "*navigable")]
                    if bad:
                        raise Violation("unknown fields requested: %s" % ",".join(sorted(bad)))
                handler = lambda: self.get(key, fl)  # noqa: E731
            else:
                body = self.json_body(raw)
                handler = lambda: self.edit(key, body)  # noqa: E731
        elif m and m.group(2) == "/comment" and cmd == "POST":
            body = self.json_body(raw)
            handler = lambda: self.comment(m.group(1), body)  # noqa: E731
        elif m and m.group(2) == "/attachments" and cmd == "POST":
            parts = self.multipart(raw)
            handler = lambda: self.attach(m.group(1), parts)  # noqa: E731
        elif m and m.group(2) == "/transitions" and cmd in ("GET", "POST"):
            if cmd == "GET":
                self.no_body(raw)
                handler = lambda: self.list_transitions(m.group(1))  # noqa: E731
            else:
                body = self.json_body(raw)
                handler = lambda: self.transition(m.group(1), body)  # noqa: E731
        else:
            raise Violation(f"no such endpoint: {cmd} {path}", 404 if not m else 405)
        # The request met the contract: now, maybe, an injected failure.
        f = self.take_fault(path)
        if f:
            return self.fault_reply(f)
        return handler()

    def multipart(self, raw):
        if self.headers.get("X-Atlassian-Token") != "no-check":
            raise Violation("XSRF check failed: attachments need X-Atlassian-Token: no-check", 403)
        ct = self.headers.get("Content-Type", "")
        m = re.match(r"multipart/form-data;\s*boundary=(\"?)([^\";]+)\1", ct)
        if not m:
            raise Violation("attachments must be multipart/form-data with a boundary", 415)
        sep = b"--" + m.group(2).encode()
        chunks = raw.split(sep)
        if len(chunks) < 3 or not chunks[-1].startswith(b"--"):
            raise Violation("malformed multipart body")
        parts = []
        for c in chunks[1:-1]:
            if not c.startswith(b"\r\n") or not c.endswith(b"\r\n"):
                raise Violation("malformed multipart part")
            head, _, data = c[2:-2].partition(b"\r\n\r\n")
            hd = {}
            for line in head.decode("utf-8", "replace").split("\r\n"):
                k, _, v = line.partition(":")
                hd[k.strip().lower()] = v.strip()
            cd = hd.get("content-disposition", "")
            nm = re.search(r'\bname="([^"]*)"', cd)
            fn = re.search(r'\bfilename="([^"]*)"', cd)
            if not cd.startswith("form-data") or not nm:
                raise Violation("multipart part without form-data name")
            if nm.group(1) != "file":
                raise Violation("attachment parts must be named \"file\", not %r" % nm.group(1))
            if not fn or not fn.group(1):
                raise Violation("attachment part without a filename")
            parts.append({"filename": fn.group(1), "data": data,
                          "type": hd.get("content-type", "application/octet-stream")})
        if not parts:
            raise Violation("no file part in the upload")
        return parts

    # ---- operations --------------------------------------------------------
    def create(self, body):
        extra = set(body) - {"fields", "update"}
        if extra:
            raise Violation("unexpected members in create body: %s" % sorted(extra))
        if "fields" not in body:
            raise Violation("create needs fields")
        self.check_fields(body["fields"], create=True)
        st = self.st
        key = f"{st.cfg.project}-{st.next_num}"
        iid = str(st.next_id)
        st.next_num += 1
        st.next_id += 1
        now = jira_time()
        f = dict(body["fields"])
        f["issuetype"] = {"name": f["issuetype"]["name"]}
        st.issues[key] = {"id": iid, "key": key, "fields": f, "status": "1", "comments": [],
                          "attachments": [], "created": now, "updated": now}
        return 201, {"id": iid, "key": key, "self": f"{self.base()}{API}/issue/{iid}"}, {}

    def get(self, key, only):
        return 200, self.issue_json(self.issue_or_404(key), only), {}

    def edit(self, key, body):
        extra = set(body) - {"fields", "update"}
        if extra or not body:
            raise Violation("edit body must hold fields and/or update")
        iss = self.issue_or_404(key)
        if "fields" in body:
            self.check_fields(body["fields"], create=False)
            if "project" in body["fields"] or "issuetype" in body["fields"]:
                raise Violation("project and issuetype are not edited here")
        if "update" in body:
            self.check_update_ops(body["update"])
        iss["fields"].update(body.get("fields", {}))
        labels = list(iss["fields"].get("labels", []))
        for op in body.get("update", {}).get("labels", []):
            (verb, val), = op.items()
            if verb == "add" and val not in labels:
                labels.append(val)
            elif verb == "remove" and val in labels:
                labels.remove(val)
            elif verb == "set":
                labels = [val]
        iss["fields"]["labels"] = labels
        iss["updated"] = jira_time()
        return 204, None, {}

    def author(self):
        who = self.st.cfg.email or "pat-user"
        return {"name": who, "displayName": "fleetmcp bot", "active": True}

    def comment(self, key, body):
        extra = set(body) - {"body", "visibility", "properties"}
        if extra:
            raise Violation("unexpected members in comment body: %s" % sorted(extra))
        if not isinstance(body.get("body"), str) or not body["body"].strip():
            raise Violation("Comment body can not be empty!", field="comment")
        iss = self.issue_or_404(key)
        st = self.st
        cid = str(st.next_sub)
        st.next_sub += 1
        now = jira_time()
        c = {"self": f"{self.base()}{API}/issue/{iss['id']}/comment/{cid}", "id": cid,
             "author": self.author(), "body": body["body"], "updateAuthor": self.author(),
             "created": now, "updated": now}
        iss["comments"].append(c)
        iss["updated"] = now
        return 201, c, {}

    def attach(self, key, parts):
        iss = self.issue_or_404(key)
        out = []
        for p in parts:
            st = self.st
            aid = str(st.next_sub)
            st.next_sub += 1
            a = {"self": f"{self.base()}{API}/attachment/{aid}", "id": aid,
                 "filename": p["filename"], "author": self.author(), "created": jira_time(),
                 "size": len(p["data"]), "mimeType": p["type"],
                 "content": f"{self.base()}/secure/attachment/{aid}/{p['filename']}"}
            iss["attachments"].append(a)
            out.append(a)
        iss["updated"] = jira_time()
        return 200, out, {}

    def list_transitions(self, key):
        iss = self.issue_or_404(key)
        return 200, {"expand": "transitions", "transitions": self.transitions_for(iss)}, {}

    def transition(self, key, body):
        extra = set(body) - {"transition", "fields", "update", "historyMetadata", "properties"}
        if extra:
            raise Violation("unexpected members in transition body: %s" % sorted(extra))
        t = body.get("transition")
        if not (isinstance(t, dict) and isinstance(t.get("id"), str)):
            raise Violation("transition must be {id: string}")
        iss = self.issue_or_404(key)
        ok = {x["id"] for x in self.transitions_for(iss)}
        if t["id"] not in ok:
            raise Violation("Transition id '%s' is not valid for this issue." % t["id"])
        iss["status"] = TRANSITIONS[t["id"]][1]
        iss["updated"] = jira_time()
        return 204, None, {}

    def server_info(self):
        cloud = self.st.cfg.mode == "cloud"
        return {"baseUrl": self.base(), "displayUrl": self.base(),
                "version": "1001.0.0-SNAPSHOT" if cloud else "10.3.4",
                "versionNumbers": [1001, 0, 0] if cloud else [10, 3, 4],
                "deploymentType": "Cloud" if cloud else "Server",
                "buildNumber": 100290 if cloud else 10030004,
                "buildDate": "2026-11-30T00:00:00.000+0000",
                "serverTime": jira_time(), "scmInfo": "0" * 40, "serverTitle": "Jira"}

    def page_token(self, jql, offset):
        """Opaque, bound to the query: a token from another JQL is refused."""
        h = hashlib.sha256(jql.encode()).hexdigest()[:16]
        return base64.urlsafe_b64encode(f"{h}:{offset}".encode()).decode()

    def page_offset(self, jql, token):
        try:
            h, off = base64.urlsafe_b64decode(token.encode()).decode().split(":")
            off = int(off)
        except Exception:
            raise Violation("Invalid nextPageToken.")
        if h != hashlib.sha256(jql.encode()).hexdigest()[:16] or off < 0:
            raise Violation("The nextPageToken does not belong to this JQL query.")
        return off

    def check_field_list(self, fl, also=()):
        """A search's fields: strings naming known fields (or also)."""
        if fl is None:
            return
        if not isinstance(fl, list) or not all(isinstance(x, str) for x in fl):
            raise Violation("fields must be an array of strings")
        bad = [x for x in fl if x not in SYSTEM_FIELDS and x not in self.st.cfg.custom_fields
               and x not in ("*all", "*navigable") + also]
        if bad:
            raise Violation("unknown fields requested: %s" % ",".join(sorted(bad)))

    def search_jql(self, args, v3):
        extra = set(args) - {"jql", "nextPageToken", "maxResults", "fields", "expand",
                             "properties", "fieldsByKeys", "failFast", "reconcileIssues"}
        if extra:
            # startAt above all: the enhanced search pages with tokens only
            raise Violation("unexpected members in search/jql body: %s" % sorted(extra))
        jql = args.get("jql")
        if not isinstance(jql, str) or not jql.strip():
            raise Violation("jql is required: the enhanced search needs a bounded query")
        mr = args.get("maxResults", 50)
        if not isinstance(mr, int) or isinstance(mr, bool) or not 1 <= mr <= 5000:
            raise Violation("maxResults must be an integer 1..5000")
        tok = args.get("nextPageToken")
        if tok is not None and not isinstance(tok, str):
            raise Violation("nextPageToken must be a string")
        fl = args.get("fields")
        self.check_field_list(fl, ("id", "key"))
        clauses, order = self.parse_jql(jql)
        hits = [i for i in self.st.issues.values() if self.jql_match(i, clauses)]
        if order and order[0] in ("created", "key"):
            hits.sort(key=lambda i: int(i["id"]), reverse=order[1] == "DESC")
        off = self.page_offset(jql, tok) if tok else 0
        n = min(mr, self.st.cfg.page_cap)
        page = hits[off:off + n]
        # without fields the enhanced search returns ids only
        only = set(fl) if fl else {"__none__"}
        body = {"issues": [self.issue_json(i, only, v3) for i in page],
                "isLast": off + n >= len(hits)}
        if not body["isLast"]:
            body["nextPageToken"] = self.page_token(jql, off + n)
        return 200, body, {}

    def approximate_count(self, args):
        if set(args) != {"jql"}:
            raise Violation("approximate-count takes {jql} only")
        clauses, _ = self.parse_jql(args["jql"])
        return 200, {"count": sum(1 for i in self.st.issues.values()
                                  if self.jql_match(i, clauses))}, {}

    def search(self, args):
        extra = set(args) - {"jql", "startAt", "maxResults", "fields", "validateQuery",
                             "expand", "properties", "fieldsByKeys"}
        if extra:
            raise Violation("unexpected members in search body: %s" % sorted(extra))
        sa, mr = args.get("startAt", 0), args.get("maxResults", 50)
        if not isinstance(sa, int) or isinstance(sa, bool) or sa < 0:
            raise Violation("startAt must be a non-negative integer")
        if not isinstance(mr, int) or isinstance(mr, bool) or not 0 <= mr <= 1000:
            raise Violation("maxResults must be an integer 0..1000")
        fl = args.get("fields")
        self.check_field_list(fl)
        clauses, order = self.parse_jql(args.get("jql"))
        hits = [i for i in self.st.issues.values() if self.jql_match(i, clauses)]
        if order and order[0] in ("created", "key"):
            hits.sort(key=lambda i: int(i["id"]), reverse=order[1] == "DESC")
        page = hits[sa:sa + mr]
        only = set(fl) if fl else None
        return 200, {"expand": "schema,names", "startAt": sa, "maxResults": mr,
                     "total": len(hits), "issues": [self.issue_json(i, only) for i in page]}, {}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--project", default="FM")
    ap.add_argument("--issue-type", default="Task")
    ap.add_argument("--email")
    ap.add_argument("--token", help="accepted API token (Basic email:token)")
    ap.add_argument("--token-file", help="read the API token from this file")
    ap.add_argument("--pat", help="accepted personal access token (Bearer)")
    ap.add_argument("--custom-field", action="append", default=[], dest="custom_fields")
    ap.add_argument("--mode", choices=("datacenter", "cloud"), default="datacenter")
    ap.add_argument("--page-cap", type=int, default=50,
                    help="cloud: most issues in one search/jql page, whatever maxResults asks")
    cfg = ap.parse_args()
    if cfg.token_file:
        with open(cfg.token_file, encoding="utf-8") as f:
            cfg.token = f.read().strip()
    if not ((cfg.email and cfg.token) or cfg.pat):
        ap.error("give --email and --token (or --token-file), and/or --pat")
    srv = ThreadingHTTPServer(("127.0.0.1", cfg.port), Handler)
    srv.daemon_threads = True
    srv.state = State(cfg)
    print(srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
