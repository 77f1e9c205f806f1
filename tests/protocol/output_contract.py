#!/usr/bin/env python3
"""tools/list's outputSchema is each tool's contract of shape (issue 14):
a relaxation of the whole output schema in schemas/tools/NAME.json.  This
checks it mechanically, for every tool with structured results:

- results from real calls (the tools that run without the stack), the
  recorded results in tests/replay, and instances built from the whole
  schema (every property; only the required ones) must be valid under the
  whole schema, and then under the listed one too: a client that validates
  results against tools/list (the TypeScript SDK's ajv, the Inspector)
  never refuses a result the server sends;
- the listed one still says something: a sample whose top-level property
  (a required one where the whole schema has one) has the wrong JSON type
  is refused by it;
- the listed one is the TOP-LEVEL contract (the lead's decisions): names
  and JSON types, without required (a result without a required property
  passes it, and the whole schema, which the server enforces, refuses
  it), an object or array listed as {"type": ...} alone;
- nothing is lost, only moved: resources/read of
  fleetmcp://schemas/tools/NAME/output gives the whole schema, every
  sample gets the same verdict from it as from schemas/tools/NAME.json,
  and a tool without structured results or an unknown name is not found.

Usage: output_contract.py build/fleetmcp.  Every wait is bounded."""
import copy
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from tally import Tally  # noqa: E402

try:
    import jsonschema
except ImportError:
    print("FAIL: python3-jsonschema is not installed (make deps installs it): it checks every"
          " result against the full and the listed output schema")
    sys.exit(1)

SERVER = sys.argv[1] if len(sys.argv) > 1 else "build/fleetmcp"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TMP = tempfile.mkdtemp(prefix="fm-contract-")
TALLY = Tally("output contract", quiet_ok=True)
check = TALLY.check


def session(requests, version="2025-11-25"):
    """The answers to requests (after initialize), by id, from one stdio
    server on a scratch store."""
    msgs = [{"jsonrpc": "2.0", "id": 0, "method": "initialize",
             "params": {"protocolVersion": version, "capabilities": {},
                        "clientInfo": {"name": "contract-test", "version": "1"}}},
            {"jsonrpc": "2.0", "method": "notifications/initialized"}] + requests
    env = dict(os.environ, FLEETMCP_DB=os.path.join(TMP, "contract.db"))
    env.pop("FLEETMCP_CONFIG", None)
    p = subprocess.run([SERVER], input="".join(json.dumps(m) + "\n" for m in msgs),
                       capture_output=True, text=True, env=env, timeout=120)
    out = {}
    for line in p.stdout.splitlines():
        m = json.loads(line)
        if "id" in m and "method" not in m:
            out[m["id"]] = m
    return out


def validator(schema):
    return jsonschema.Draft202012Validator(schema)


# ---- instances built from the whole schema --------------------------------

STRINGS = set()  # every string a recorded result holds: pattern candidates


def strings_in(x):
    if isinstance(x, str):
        STRINGS.add(x)
    elif isinstance(x, dict):
        for v in x.values():
            strings_in(v)
    elif isinstance(x, list):
        for v in x:
            strings_in(v)


def a_string(s):
    lo = s.get("minLength", 0)
    cands = ["x" * max(lo, 1), "gpu-a01", "rb-x", "ap-" + "0" * 16, "wf-" + "0" * 16,
             "2026-01-01T00:00:00Z", "0" * 64, "a" * 32] + sorted(STRINGS)
    for c in cands:
        if len(c) >= lo and len(c) <= s.get("maxLength", 1 << 30) and \
                ("pattern" not in s or re.search(s["pattern"], c)):
            return c
    return "x" * max(lo, 1)


def build(s, root, full):
    """One instance of schema s: every property (full) or only the
    required ones."""
    if "$ref" in s:
        return build(root["$defs"][s["$ref"].split("/")[-1]], root, full)
    if "allOf" in s:
        merged = {k: v for k, v in s.items() if k != "allOf"}
        for sub in s["allOf"]:
            while "$ref" in sub:
                sub = root["$defs"][sub["$ref"].split("/")[-1]]
            for k, v in sub.items():
                if k == "properties":
                    merged.setdefault("properties", {}).update(v)
                elif k == "required":
                    merged["required"] = merged.get("required", []) + v
                else:
                    merged.setdefault(k, v)
        return build(merged, root, full)
    if "const" in s:
        return s["const"]
    if "enum" in s:
        return s["enum"][-1 if full else 0]
    for k in ("anyOf", "oneOf"):
        if k in s:
            return build(s[k][0], root, full)
    t = s.get("type", "string")
    if isinstance(t, list):
        t = [x for x in t if x != "null"][0] if full or "null" not in t else "null"
    if t == "object":
        props = s.get("properties", {})
        names = list(props) if full else []
        names += [r for r in s.get("required", []) if r not in names]
        o = {n: build(props.get(n, {}), root, full) for n in names}
        if full and not props and isinstance(s.get("additionalProperties"), dict):
            o["k"] = build(s["additionalProperties"], root, full)
        return o
    if t == "array":
        n = max(s.get("minItems", 0), 1 if full else 0)
        return [build(s.get("items", {}), root, full) for _ in range(n)]
    if t in ("integer", "number"):
        return s.get("minimum", 0) if isinstance(s.get("minimum", 0), int) else 1
    if t == "boolean":
        return True
    if t == "null":
        return None
    return a_string(s)


# ---- the tools ------------------------------------------------------------

files = {}
for path in sorted(glob.glob(os.path.join(ROOT, "schemas/tools/*.json"))):
    with open(path, encoding="utf-8") as f:
        t = json.load(f)
    files[t["name"]] = t

listed = {}
for version in ("2025-11-25", "2026-07-28"):
    r = session([{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}], version)
    tools = r[1]["result"]["tools"]
    check(len(tools) == len(files), f"{version}: tools/list has every tool")
    for tool in tools:
        if "outputSchema" in tool:
            if tool["name"] in listed:
                check(listed[tool["name"]] == tool["outputSchema"],
                      f"{tool['name']}: one contract for every protocol revision")
            listed[tool["name"]] = tool["outputSchema"]

samples = {name: [] for name in listed}

# Recorded results (replay) and real calls of the tools that need no stack.
for path in sorted(glob.glob(os.path.join(ROOT, "tests/replay/*.jsonl"))):
    with open(path, encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            if rec.get("tool") in samples and isinstance(rec.get("result"), dict):
                samples[rec["tool"]].append(("recorded " + os.path.basename(path), rec["result"]))
                strings_in(rec["result"])
CALLS = [("fleet_status", {}), ("runbook_list", {}), ("runbook_get", {"id": "rb-gpu-fallen-off-bus"}),
         ("audit_query", {"detail": True}), ("killswitch_engage", {"reason": "contract test"}),
         ("diagnose", {"signals": {"node": "gpu-a02", "kernel_log": [
             "NVRM: Xid (PCI:0000:18:00): 79, pid=1, name=x, GPU has fallen off the bus."]}}),
         ("audit_query", {"limit": 3})]
answers = session([{"jsonrpc": "2.0", "id": i + 1, "method": "tools/call",
                    "params": {"name": n, "arguments": a}} for i, (n, a) in enumerate(CALLS)])
for i, (name, _) in enumerate(CALLS):
    res = answers.get(i + 1, {}).get("result", {})
    check(res.get("isError") is False or "isError" not in res and "structuredContent" in res,
          f"real call {name}: {json.dumps(res)[:300]}")
    if "structuredContent" in res:
        samples[name].append(("real call", res["structuredContent"]))
        strings_in(res["structuredContent"])

for name, t in sorted(files.items()):
    if name not in listed:
        continue
    whole = t["outputSchema"]
    for full in (True, False):
        samples[name].append(("built " + ("maximal" if full else "minimal"),
                              build(whole, whole, full)))

# ---- the checks -----------------------------------------------------------

for name in sorted(listed):
    whole = validator(files[name]["outputSchema"])
    contract = validator(listed[name])
    jsonschema.Draft202012Validator.check_schema(listed[name])
    good = []
    for where, inst in samples[name]:
        errs = sorted(whole.iter_errors(inst), key=str)
        if where.startswith("built") and errs:
            # A pattern no candidate string meets: this instance says
            # nothing; the tool must still get a valid one below.
            print(f"note: {name}: {where} instance not valid under the whole schema: "
                  f"{errs[0].message[:120]}")
            continue
        check(not errs, f"{name}: {where} result valid under the whole schema: "
                        f"{errs[0].message[:200] if errs else ''}")
        lerrs = sorted(contract.iter_errors(inst), key=str)
        check(not lerrs, f"{name}: {where} result valid under the listed contract: "
                         f"{lerrs[0].message[:200] if lerrs else ''}")
        good.append(inst)
    check(len(good) >= 2, f"{name}: at least two samples valid under the whole schema "
                          f"(has {len(good)})")
    # The contract is not vacuous: a wrong JSON type at the top is refused.
    whole_v = validator(files[name]["outputSchema"])
    props = listed[name].get("properties", {})
    req = [r for r in files[name]["outputSchema"].get("required", []) if r in props]
    typed = [p for p in req + sorted(props) if props.get(p, {}).get("type") is not None]
    check(bool(typed), f"{name}: the contract lists no typed property")
    if good and typed:
        bad = copy.deepcopy(good[0])
        typ = props[typed[0]]["type"]
        bad[typed[0]] = {"not": "an object"} if "object" not in typ else "not an object"
        check(not contract.is_valid(bad), f"{name}: contract refuses {typed[0]} of the wrong type")
    # required is the server's to enforce: a result without a required
    # property passes the contract and fails the whole schema.
    if good and req:
        bad = copy.deepcopy(good[0])
        del bad[req[0]]
        check(contract.is_valid(bad) and not whole_v.is_valid(bad),
              f"{name}: without {req[0]}: the contract passes it, the whole schema refuses it")

# The listed contract is the top level only: property names and JSON types
# (required and the schemas of deeper levels are in the resource below).
for name, c in sorted(listed.items()):
    check(set(c) <= {"type", "properties"} and c.get("type") == "object",
          f"{name}: contract keys {sorted(c)}")
    for prop, sub in c.get("properties", {}).items():
        check(set(sub) <= {"type"}, f"{name}.{prop}: listed as {json.dumps(sub)}, not its type alone")

# The whole output schema, moved out of tools/list into a resource.
URI = "fleetmcp://schemas/tools/{}/output"
names = sorted(files)
reads = session([{"jsonrpc": "2.0", "id": i + 1, "method": "resources/read",
                  "params": {"uri": URI.format(n)}} for i, n in enumerate(names)] +
                [{"jsonrpc": "2.0", "id": 1000, "method": "resources/read",
                  "params": {"uri": URI.format("no_such_tool")}},
                 {"jsonrpc": "2.0", "id": 1001, "method": "resources/read",
                  "params": {"uri": "fleetmcp://schemas/tools/fleet_status/input"}},
                 {"jsonrpc": "2.0", "id": 1002, "method": "resources/templates/list"}])
templates = [t.get("uriTemplate") for t in
             reads.get(1002, {}).get("result", {}).get("resourceTemplates", [])]
check(URI.format("{name}") in templates, f"resources/templates/list names the schema: {templates}")
for k in (1000, 1001):
    check(reads.get(k, {}).get("error", {}).get("code") == -32602,
          f"resources/read of a schema that does not exist: {json.dumps(reads.get(k))[:200]}")
deeper = 0  # tools whose served schema was seen refusing a deeper error
for i, name in enumerate(names):
    ans = reads.get(i + 1, {})
    if name not in listed:
        check("error" in ans, f"{name} has no structured result and no output schema resource")
        continue
    contents = ans.get("result", {}).get("contents", [])
    check(len(contents) == 1 and contents[0].get("uri") == URI.format(name) and
          contents[0].get("mimeType") == "application/schema+json",
          f"{name}: output schema resource: {json.dumps(ans)[:200]}")
    if len(contents) != 1:
        continue
    served = json.loads(contents[0]["text"])
    jsonschema.Draft202012Validator.check_schema(served)
    served_v, file_v = validator(served), validator(files[name]["outputSchema"])
    for where, inst in samples[name]:
        check(served_v.is_valid(inst) == file_v.is_valid(inst),
              f"{name}: {where}: the served schema and the file disagree")
    # The served schema decides what the file decides, deeper levels too:
    # break each required property below the top and both refuse it.
    good = [inst for _, inst in samples[name] if file_v.is_valid(inst)]
    for inst in good[:1]:
        for k, v in inst.items():
            if isinstance(v, dict) and v:
                bad = copy.deepcopy(inst)
                bad[k] = {kk: {"wrong": ["type"]} for kk in v}
                if not file_v.is_valid(bad):
                    deeper += 1
                    check(not served_v.is_valid(bad), f"{name}.{k}: served schema refuses"
                                                      " a wrong type one level down")
check(deeper >= 10, f"the served schemas were seen deciding below the top level ({deeper})")

check(len(listed) >= 25, f"structured tools listed: {len(listed)}")
print(f"output contract: {len(listed)} tools, {sum(len(v) for v in samples.values())} samples")
sys.exit(TALLY.summary())
