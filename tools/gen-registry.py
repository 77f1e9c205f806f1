#!/usr/bin/env python3
"""Generates the tool table (fm_tool_table) from schemas/tools/*.json.

Each JSON file names one tool once: name, title, description, autonomy,
handler, optional backends, flags and rate_limit, inputSchema and
outputSchema.  The flags are the gate's policy (like redis' command
flags): the gate reads them as named bits and never a tool's name.  A bad
file fails the build with its name and the problem: no tool is ever left
out quietly.  Output: a C file with the schemas as string literals.

Every hitl and canary tool gets approval_id in its input schema here, so
no tool can need an approval its schema refuses.

With --actions SRC OUT it generates the runbook action table
(fm_action_table) from schemas/actions/*.json instead: one file per
action with its argument schema, what it needs (a node, capacity, which
approval) and the executor that runs it.  The runbook loader, the gate,
the planner and the workflow engine all read that one table, so an action
added or removed here is added or removed for all of them.
"""
import json
import os
import re
import sys

AUTONOMY = {"read": "FM_AUTONOMY_READ", "create": "FM_AUTONOMY_CREATE",
            "hitl": "FM_AUTONOMY_HITL", "canary": "FM_AUTONOMY_CANARY"}
FLAGS = {"idempotent": "FM_TOOL_IDEMPOTENT", "open_world": "FM_TOOL_OPEN_WORLD",
         "destructive": "FM_TOOL_DESTRUCTIVE", "node_action": "FM_TOOL_NODE_ACTION",
         "takes_capacity": "FM_TOOL_TAKES_CAPACITY",
         "returns_capacity": "FM_TOOL_RETURNS_CAPACITY", "runs_plan": "FM_TOOL_RUNS_PLAN",
         "killswitch_exempt": "FM_TOOL_KILLSWITCH_EXEMPT",
         "read_only_exempt": "FM_TOOL_READ_ONLY_EXEMPT",
         "never_rate_limited": "FM_TOOL_NEVER_RATE_LIMITED",
         "content_result": "FM_TOOL_CONTENT_RESULT",
         "superseded_by_reboot": "FM_TOOL_SUPERSEDED_BY_REBOOT",
         "starts_emergency": "FM_TOOL_STARTS_EMERGENCY",
         "task": "FM_TOOL_TASK", "task_required": "FM_TOOL_TASK_REQUIRED"}
# Flags that only make sense on some autonomy levels: a flag the gate
# would never read is a mistake in the file.
FLAG_NEEDS = {"node_action": {"hitl", "canary"}, "takes_capacity": {"hitl", "canary"},
              "returns_capacity": {"hitl", "canary"}, "runs_plan": {"hitl", "canary"},
              "killswitch_exempt": {"create", "hitl", "canary"},
              "read_only_exempt": {"create", "hitl", "canary"},
              "never_rate_limited": {"create"},
              "superseded_by_reboot": {"hitl", "canary"},
              "starts_emergency": {"hitl"}}
BACKENDS = {"slurm": "FM_BACKEND_SLURM", "metrics": "FM_BACKEND_METRICS",
            "ssh": "FM_BACKEND_SSH", "tickets": "FM_BACKEND_TICKETS"}
KEYS = {"name", "title", "description", "autonomy", "handler", "backends", "flags",
        "rate_limit", "action", "action_args", "inputSchema", "outputSchema"}
# No description: the name says what it is, and a call without it answers
# with the plan to approve (tools/list is paid for in tokens, ten times).
APPROVAL_ID = {"type": "string", "pattern": "^ap-[0-9a-f]{16,32}$"}
DEFAULT_PER_HOUR = 60


def fail(path, msg):
    sys.exit(f"gen-registry: {path}: {msg}")


def c_string(s):
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ord(ch) < 0x20:
            out.append("\\x%02x" % ord(ch))
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def read_object(path, keys, required):
    """One schema file as a dict: valid JSON, an object, no key outside
    keys and every key in required, or the build fails naming the file."""
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except (OSError, ValueError) as e:
        fail(path, f"not valid JSON: {e}")
    if not isinstance(obj, dict):
        fail(path, "must be an object")
    extra = set(obj) - keys
    if extra:
        fail(path, f"unknown keys {sorted(extra)}")
    for k in required:
        if k not in obj:
            fail(path, f"missing '{k}'")
    return obj


def load(path, own=True):
    t = read_object(path, KEYS, ("name", "description", "autonomy", "handler",
                                 "inputSchema", "outputSchema"))
    if not re.fullmatch(r"[a-z][a-z0-9_]{1,63}", t["name"]):
        fail(path, "name must match [a-z][a-z0-9_]{1,63}")
    if os.path.basename(path) != t["name"] + ".json":
        fail(path, "file name must be <name>.json")
    if t["autonomy"] not in AUTONOMY:
        fail(path, f"autonomy must be one of {sorted(AUTONOMY)}")
    if not re.fullmatch(r"fm_tool_[a-z0-9_]+", t["handler"]):
        fail(path, "handler must be an fm_tool_* identifier")
    if len(t["description"]) > 160:
        fail(path, "description over 160 characters: say when to use the tool in one or two"
                   " short sentences (agents pay for every token)")
    # A title is listed only where it says more than the name (issue 14,
    # the lead's decision 4): a client shows the name when there is none.
    # Another program's tools (the conformance fixture) title as they like.
    if "title" in t and (not isinstance(t["title"], str) or not t["title"] or
                         (own and re.sub(r"[^a-z0-9]", "", t["title"].lower()) ==
                          re.sub(r"[^a-z0-9]", "", t["name"]))):
        fail(path, "title must say more than the name; leave it out otherwise")
    for k in ("inputSchema", "outputSchema"):
        s = t[k]
        if not isinstance(s, dict) or s.get("type") != "object":
            fail(path, f"{k} must be a JSON Schema with type object")
    for f_ in t.get("flags", []):
        if f_ not in FLAGS:
            fail(path, f"unknown flag {f_}")
        if f_ in FLAG_NEEDS and t["autonomy"] not in FLAG_NEEDS[f_]:
            fail(path, f"flag {f_} needs autonomy {sorted(FLAG_NEEDS[f_])}")
    b = t.get("backends", [])
    if not isinstance(b, list) or any(x not in BACKENDS for x in b) or len(set(b)) != len(b):
        fail(path, f"backends must be a list of distinct names from {sorted(BACKENDS)}")
    rl = t.get("rate_limit")
    if rl is not None:
        if t["autonomy"] != "create" or "never_rate_limited" in t.get("flags", []):
            fail(path, "rate_limit is for create tools that are rate-limited")
        if (not isinstance(rl, dict) or set(rl) - {"per_hour", "config"} or
                not isinstance(rl.get("per_hour"), int) or rl["per_hour"] < 1 or
                ("config" in rl and not re.fullmatch(r"[a-z_]+\.[a-z_]+", rl["config"]))):
            fail(path, "rate_limit must be {per_hour: N >= 1, config: 'section.key'}")
    # A single-node tool runs as a one-step workflow of this action
    # (schemas/actions/ACTION.json beside schemas/tools).
    act = t.get("action")
    if act is not None:
        actions = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(path))), "actions")
        if (t["autonomy"] not in ("hitl", "canary") or not isinstance(act, str) or
                not os.path.isfile(os.path.join(actions, act + ".json"))):
            fail(path, "action must name a schemas/actions file, on a hitl or canary tool")
        # The tool's form of the action: fixed arguments its one-step
        # workflow adds to the call's (nextstate, snapshot, ...), each one
        # the action declares.
        fixed = t.get("action_args", {})
        with open(os.path.join(actions, act + ".json")) as f:
            declared = json.load(f).get("args", {}).get("properties", {})
        if not isinstance(fixed, dict):
            fail(path, "action_args must be an object")
        for k, v in fixed.items():
            d = declared.get(k)
            if (not isinstance(d, dict) or ("const" in d and d["const"] != v) or
                    ("enum" in d and v not in d["enum"]) or
                    (d.get("type") == "boolean" and not isinstance(v, bool))):
                fail(path, f"action_args.{k} is not an argument of action {act} with that value")
    elif "action_args" in t:
        fail(path, "action_args needs action")
    props = t["inputSchema"].get("properties")
    if t["autonomy"] in ("hitl", "canary"):
        if not isinstance(props, dict) or t["inputSchema"].get("additionalProperties") is not False:
            fail(path, "a hitl or canary tool's inputSchema needs properties and"
                       " additionalProperties: false")
        if "approval_id" in props:
            fail(path, "approval_id is added by the generator to every hitl and canary tool;"
                       " remove it from the file")
        props["approval_id"] = dict(APPROVAL_ID)
    t["listedOutput"] = share_repeats(output_contract(t["outputSchema"]))
    # The server checks every result against the whole output schema; only
    # words that never decide validity are left out of the binary.
    t["outputSchema"] = strip_keywords(t["outputSchema"], ANNOTATIONS)
    t["listedInput"] = share_repeats(strip_keywords(t["inputSchema"], NOT_LISTED, True))
    for k in ("inputSchema", "outputSchema"):
        t[k] = share_repeats(t[k])
    return t


# Keywords that annotate a schema and never decide whether a value is valid.
ANNOTATIONS = {"description", "title", "examples", "default", "$comment"}

# The outputSchema tools/list shows is the tool's output CONTRACT OF SHAPE
# (issue 14, the lead's decisions): property names and JSON types at the
# top level (a property holding an object or array is listed as
# {"type":"object"} / {"type":"array"}).  `required`, words, enums,
# formats, patterns, numeric and size bounds and additionalProperties are
# left out: the listing tells an agent what comes back and of what type,
# and the server checks every structuredContent against the whole schema
# (schemas/tools/NAME.json, served as fleetmcp://schemas/tools/NAME/output)
# before it leaves.  The contract must be a true relaxation of the whole
# schema (whatever the whole accepts, it accepts), or a client that
# validates results (the TypeScript SDK's ajv, the Inspector) would refuse
# a good one: so only keywords that constrain are dropped, $ref and allOf
# are merged in, and not/if/oneOf (whose relaxed branches could refuse
# more) are never listed.  tests/protocol/output_contract.py (stage
# output-contract) checks it with real, recorded and built results for
# every tool.
CONTRACT_DEPTH = 1
JSON_TYPES = ("object", "array", "string", "integer", "number", "boolean", "null")


def json_type(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    return "array" if isinstance(v, list) else "object"


def output_contract(schema):
    """tools/list's outputSchema for schema: see the comment above."""
    defs = schema.get("$defs", {})

    def resolve(node, seen=()):
        """node with $ref and allOf merged into one object schema."""
        node = dict(node)
        parts = [node]
        ref = node.pop("$ref", None)
        if ref is not None:
            if not ref.startswith("#/$defs/") or ref in seen or ref[8:] not in defs:
                return {}  # anything: a relaxation of whatever it pointed at
            parts.append(resolve(defs[ref[8:]], seen + (ref,)))
        for sub in node.pop("allOf", []):
            parts.append(resolve(sub, seen))
        out = {}
        for p in parts:
            for k, v in p.items():
                if k == "properties":
                    props = out.setdefault("properties", {})
                    for name, sub in v.items():
                        props.setdefault(name, sub)  # either branch holds
                elif k == "required":
                    req = out.setdefault("required", [])
                    req += [r for r in v if r not in req]  # every branch holds
                elif k == "type" and "type" in out:
                    # Either branch's types: wider, so still a relaxation.
                    a = out["type"] if isinstance(out["type"], list) else [out["type"]]
                    b = v if isinstance(v, list) else [v]
                    a += [x for x in b if x not in a]
                    out["type"] = a[0] if len(a) == 1 else a
                else:
                    out.setdefault(k, v)
        return out

    def types(node):
        """The JSON types node admits, or None for any."""
        t = node.get("type")
        if t is not None:
            return [t] if isinstance(t, str) else list(t)
        if "const" in node:
            return [json_type(node["const"])]
        if "enum" in node and node["enum"]:
            found = []
            for v in node["enum"]:
                if json_type(v) not in found:
                    found.append(json_type(v))
            return found
        for k in ("anyOf", "oneOf"):
            if k in node:
                found = []
                for sub in node[k]:
                    ts = types(resolve(sub))
                    if ts is None:
                        return None
                    found += [x for x in ts if x not in found]
                return found
        return None

    def shape(node, depth):
        node = resolve(node)
        ts = types(node)
        out = {}
        if ts is not None:
            if "number" in ts and "integer" in ts:
                ts.remove("integer")
            out["type"] = ts[0] if len(ts) == 1 else ts
        if depth >= CONTRACT_DEPTH:
            return out
        if isinstance(node.get("properties"), dict) and (ts is None or "object" in ts):
            out["properties"] = {k: shape(v, depth + 1) for k, v in node["properties"].items()}
        elif isinstance(node.get("items"), dict) and ts == ["array"]:
            # An array's objects are listed like the object itself would be.
            items = shape(node["items"], depth)
            if items:
                out["items"] = items
        return out

    return shape(schema, 0)


# The input schema tools/list shows leaves out what only the server needs
# to enforce (issue 14, the lead's decisions): the size caps and character
# patterns that keep untrusted input bounded (a 8 KiB log line, a node
# name's characters: an agent sends node names Slurm gave it, not ones it
# makes up), the numeric bounds (minimum, maximum, exclusive*, multipleOf)
# and `additionalProperties: false`.  The listing guides a client; the
# server validates every call against the whole schema (inputSchema), and
# a refusal names the rule that failed: an unknown argument is refused by
# its name with the arguments the tool takes, a number out of range with
# its bound.  What an agent chooses by stays: types, enums, const,
# defaults, required, minProperties, the structure of nested objects
# (an additionalProperties that is a schema, a map's values, included) and
# the words.  tools/list is paid for in tokens.
NOT_LISTED = {"$comment", "examples", "maxLength", "minLength", "pattern", "format",
              "maxItems", "minItems", "uniqueItems", "maxProperties",
              "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"}


def strip_keywords(schema, keywords, closed=False):
    """A copy of schema without keywords in it or any subschema (and, with
    closed, without additionalProperties: false)."""
    schema = json.loads(json.dumps(schema))

    def strip(parent, key):
        node = parent[key]
        for k in [k for k in node if k in keywords]:
            del node[k]
        if closed and node.get("additionalProperties") is False:
            del node["additionalProperties"]
        subschemas(node, strip)

    strip({"root": schema}, "root")
    return schema


# Subschemas at least this long (compact JSON) that occur twice or more in
# one tool's schema move to its $defs: tools/list is paid for in tokens.
MIN_SHARED = 40
SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "dependentSchemas")
SCHEMA_ONE = ("items", "additionalProperties", "not", "if", "then", "else", "contains",
              "propertyNames", "additionalItems", "unevaluatedItems", "unevaluatedProperties")
SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")


def compact(x):
    return json.dumps(x, separators=(",", ":"), sort_keys=True)


def subschemas(node, visit):
    """Calls visit(parent, key) for every schema-valued child of node."""
    for k, v in node.items():
        if k in SCHEMA_MAPS and isinstance(v, dict):
            for kk, vv in v.items():
                if isinstance(vv, dict):
                    visit(v, kk)
        elif k in SCHEMA_ONE and isinstance(v, dict):
            visit(node, k)
        elif k in SCHEMA_LISTS and isinstance(v, list):
            for i, vv in enumerate(v):
                if isinstance(vv, dict):
                    visit(v, i)


def share_repeats(schema):
    """Moves repeated subschemas into schema's $defs, the largest first, and
    points each occurrence at it: the same schema, said once."""
    schema = json.loads(json.dumps(schema))
    n = 0
    while True:
        seen = {}

        def count(parent, key, in_defs_root=False):
            node = parent[key]
            if not in_defs_root:
                seen.setdefault(compact(node), []).append(node)
            subschemas(node, count)

        for k, v in schema.items():
            if k == "$defs":
                for kk in v:
                    count(v, kk, True)
            elif k in SCHEMA_MAPS and isinstance(v, dict):
                for kk in v:
                    count(v, kk)
            elif k in SCHEMA_ONE and isinstance(v, dict):
                count(schema, k)
            elif k in SCHEMA_LISTS and isinstance(v, list):
                for i in range(len(v)):
                    count(v, i)
        best = None
        for text, nodes in seen.items():
            ref_len = len('{"$ref":"#/$defs/s00"}')
            gain = (len(text) - ref_len) * len(nodes) - len(text) - 8
            if len(nodes) >= 2 and len(text) >= MIN_SHARED and gain > 0:
                if best is None or gain > best[0]:
                    best = (gain, text)
        if best is None:
            return schema
        n += 1
        defs = schema.setdefault("$defs", {})
        name = f"s{n}"
        while name in defs:
            n += 1
            name = f"s{n}"
        defs[name] = json.loads(best[1])
        target = best[1]

        def replace(parent, key, in_defs_root=False):
            if not in_defs_root and compact(parent[key]) == target:
                parent[key] = {"$ref": f"#/$defs/{name}"}
                return
            subschemas(parent[key], replace)

        for k, v in list(schema.items()):
            if k == "$defs":
                for kk in list(v):
                    replace(v, kk, True)
            elif k in SCHEMA_MAPS and isinstance(v, dict):
                for kk in list(v):
                    replace(v, kk)
            elif k in SCHEMA_ONE and isinstance(v, dict):
                replace(schema, k)
            elif k in SCHEMA_LISTS and isinstance(v, list):
                for i in range(len(v)):
                    replace(v, i)


ACTION_KEYS = {"name", "summary", "comment", "executor", "needs", "flags", "state_after",
               "state_during", "timeout_s", "lease_s", "only_in", "calls", "args"}
# What an internal call may pass in the gate (fm_gate.h): steps 4 and 5.
GATE_EXEMPT = {"killswitch": "FM_GATE_EXEMPT_KILLSWITCH", "rate_limit": "FM_GATE_EXEMPT_RATE_LIMIT"}
# The tools an executor calls, by what it calls them for (fm_action_def).
CALL_ROLES = {"bundle", "ticket"}
ACTION_FLAGS = {"destructive", "mutates_slurm", "superseded_by_reboot", "not_resumable"}
# fm_node_state in fm_runbook.h, plus the two FM_ACTION_STATE_* values.
NODE_STATES = {"healthy": "FM_NODE_HEALTHY", "suspect": "FM_NODE_SUSPECT",
               "quarantined": "FM_NODE_QUARANTINED", "repairing": "FM_NODE_REPAIRING",
               "validating": "FM_NODE_VALIDATING", "returned": "FM_NODE_RETURNED",
               "escalated": "FM_NODE_ESCALATED", "keep": "FM_ACTION_STATE_KEEP",
               "from_args": "FM_ACTION_STATE_FROM_ARGS"}
# What an action that takes the node may call the node while its step runs
# (the reservation's state, fm_guard_reserve): in remediation either way.
DURING_STATES = ("quarantined", "repairing")
STEP_LISTS = {"steps", "verification", "on_success", "rollback", "on_failure"}


def load_action(path, tools):
    a = read_object(path, ACTION_KEYS, ("name", "summary", "executor", "needs", "state_after",
                                        "timeout_s", "args"))
    if not re.fullmatch(r"[a-z][a-z_]{1,31}", a["name"]):
        fail(path, "name must match [a-z][a-z_]{1,31} (runbook.schema.json's action pattern)")
    if os.path.basename(path) != a["name"] + ".json":
        fail(path, "file name must be <name>.json")
    if not re.fullmatch(r"fm_act_[a-z0-9_]+", a["executor"]):
        fail(path, "executor must be an fm_act_* identifier (src/workflow/engine.c)")
    n = a["needs"]
    if (not isinstance(n, dict) or set(n) != {"node", "capacity", "approval"} or
            not isinstance(n["node"], bool) or not isinstance(n["capacity"], bool) or
            n["approval"] not in ("plan", "always")):
        fail(path, "needs must be {node: bool, capacity: bool, approval: plan|always}")
    if n["capacity"] and not n["node"]:
        fail(path, "an action that takes capacity acts on the node: needs.node must be true")
    for f_ in a.get("flags", []):
        if f_ not in ACTION_FLAGS:
            fail(path, f"unknown flag {f_}; known: {sorted(ACTION_FLAGS)}")
    if a["state_after"] not in NODE_STATES:
        fail(path, f"state_after must be one of {sorted(NODE_STATES)}")
    if "state_during" in a and (not n["capacity"] or a["state_during"] not in DURING_STATES):
        fail(path, f"state_during (the node's state while the step that takes it runs) needs"
                   f" needs.capacity and one of {list(DURING_STATES)}")
    t = a["timeout_s"]
    if (not isinstance(t, dict) or set(t) != {"default", "max"} or
            not all(isinstance(t[k], int) and t[k] > 0 for k in t) or t["default"] > t["max"]):
        fail(path, "timeout_s must be {default: N, max: M} with 0 < N <= M")
    if "lease_s" in a and (not isinstance(a["lease_s"], int) or a["lease_s"] < 1):
        fail(path, "lease_s must be a positive integer")
    if "only_in" in a and a["only_in"] not in STEP_LISTS:
        fail(path, f"only_in must name one step list of {sorted(STEP_LISTS)}")
    calls = a.get("calls", {})
    if not isinstance(calls, dict) or set(calls) - CALL_ROLES:
        fail(path, f"calls maps roles {sorted(CALL_ROLES)} to {{tool, exempt}}")
    for role, c in calls.items():
        if (not isinstance(c, dict) or set(c) - {"tool", "exempt"} or "tool" not in c or
                not isinstance(c.get("exempt", []), list) or
                any(x not in GATE_EXEMPT for x in c.get("exempt", []))):
            fail(path, f"calls.{role} must be {{tool: NAME, exempt: "
                       f"[{'|'.join(sorted(GATE_EXEMPT))}]}}")
        if c["tool"] not in tools:
            fail(path, f"calls.{role} names tool {c['tool']}, which has no file in the tool"
                       " schemas")
        if c.get("exempt") and tools[c["tool"]] != "create":
            fail(path, f"calls.{role}: only a create tool's call may pass the kill switch or"
                       f" the rate limit, and {c['tool']} is {tools[c['tool']]}")
    s = a["args"]
    if not isinstance(s, dict) or s.get("type") != "object" or \
            s.get("additionalProperties") is not False:
        fail(path, "args must be a strict JSON Schema (type object, additionalProperties false)")
    return a


def main_actions(src, out, tools_dir):
    try:
        tools = {}
        for n in os.listdir(tools_dir):
            if n.endswith(".json"):
                with open(os.path.join(tools_dir, n), encoding="utf-8") as f:
                    tools[n[:-5]] = json.load(f).get("autonomy")
    except (OSError, ValueError) as e:
        fail(tools_dir, f"cannot list the tool schemas an action may call: {e}")
    acts = [load_action(os.path.join(src, n), tools) for n in sorted(os.listdir(src))
            if n.endswith(".json")]
    if not acts:
        fail(src, "no actions")
    lines = ["/* Generated by tools/gen-registry.py from schemas/actions/NAME.json: do not edit. */",
             '#include "fleetmcp/fm_gate.h"', '#include "fleetmcp/fm_runbook.h"', "",
             '#include "fm_actions.gen.h"', "",
             "const fm_action_def fm_action_table[] = {"]
    for a in acts:
        fl = a.get("flags", [])
        n = a["needs"]
        lines += [
            "    {",
            f"        .name = {c_string(a['name'])},",
            f"        .summary = {c_string(a['summary'])},",
            f"        .args_schema = {c_string(json.dumps(a['args'], separators=(',', ':')))},",
            f"        .default_timeout_s = {a['timeout_s']['default']},",
            f"        .max_timeout_s = {a['timeout_s']['max']},",
            f"        .destructive = {'true' if 'destructive' in fl else 'false'},",
            f"        .mutates_slurm = {'true' if 'mutates_slurm' in fl else 'false'},",
            f"        .needs_approval_always = {'true' if n['approval'] == 'always' else 'false'},",
            f"        .touches_node = {'true' if n['node'] else 'false'},",
            f"        .takes_capacity = {'true' if n['capacity'] else 'false'},",
            f"        .state_after = {NODE_STATES[a['state_after']]},",
            f"        .state_during = {NODE_STATES[a.get('state_during', 'quarantined')]},",
            f"        .superseded_by_reboot = {'true' if 'superseded_by_reboot' in fl else 'false'},",
            f"        .resumable = {'false' if 'not_resumable' in fl else 'true'},",
            f"        .lease_s = {a.get('lease_s', 0)},",
            f"        .only_in = {c_string(a['only_in']) if 'only_in' in a else 'NULL'},",
            *[f"        .{role} = {{{c_string(c['tool'])}, "
              f"{' | '.join(GATE_EXEMPT[x] for x in c.get('exempt', [])) or '0'}}},"
              for role, c in sorted(a.get("calls", {}).items())],
            f"        .exec = {a['executor']},",
            "    },",
        ]
    lines += ["};", "", f"const size_t fm_action_count = {len(acts)};", ""]
    header = ["/* Generated by tools/gen-registry.py: the action executors' prototypes. */",
              "#ifndef FM_ACTIONS_GEN_H", "#define FM_ACTIONS_GEN_H", "",
              '#include "fleetmcp/fm_runbook.h"', ""]
    header += [f"int {e}(struct fm_step_ctx *sc, fm_err *err);"
               for e in sorted({a["executor"] for a in acts})]
    header += ["", "#endif", ""]
    write(os.path.join(os.path.dirname(out), "fm_actions.gen.h"), header)
    write(out, lines)


def embedded(root):
    """Every other schema file under schemas/ (config sections, runbook,
    signatures), checked as JSON and embedded by relative name."""
    found = []
    for d, _, names in os.walk(root):
        for n in sorted(names):
            p = os.path.join(d, n)
            rel = os.path.relpath(p, root)
            if (not n.endswith(".json") or rel.startswith("tools" + os.sep) or
                    rel.startswith("actions" + os.sep)):
                continue
            try:
                with open(p, encoding="utf-8") as f:
                    doc = json.load(f)
            except (OSError, ValueError) as e:
                fail(p, f"not valid JSON: {e}")
            if not isinstance(doc, dict):
                fail(p, "a schema must be an object")
            found.append((rel, json.dumps(doc, separators=(",", ":"))))
    return sorted(found)


def main():
    if len(sys.argv) in (4, 5) and sys.argv[1] == "--actions":
        # The tools an action may call: schemas/tools beside schemas/actions.
        tools = sys.argv[4] if len(sys.argv) == 5 else \
            os.path.join(os.path.dirname(os.path.normpath(sys.argv[2])), "tools")
        main_actions(sys.argv[2], sys.argv[3], tools)
        return
    src, out = sys.argv[1], sys.argv[2]
    # Another program built on libfleetmcp (tests/conformance/fixture) brings
    # its own tools and embeds the server's other schemas: a third argument.
    schemas = sys.argv[3] if len(sys.argv) > 3 else os.path.dirname(os.path.normpath(src))
    tools = [load(os.path.join(src, n), len(sys.argv) <= 3) for n in sorted(os.listdir(src))
             if n.endswith(".json")]
    runners = [t["name"] for t in tools if "runs_plan" in t.get("flags", [])]
    # The server's own table names exactly one plan runner; another program's
    # (a third argument) may have none.
    if len(runners) > 1 or (len(sys.argv) <= 3 and len(runners) != 1):
        fail(src, f"exactly one tool must have the runs_plan flag (plans name it), not {runners}")
    others = embedded(schemas)
    lines = ["/* Generated by tools/gen-registry.py from schemas/tools/NAME.json: do not edit. */",
             '#include "fleetmcp/fm_tool.h"', '#include "fleetmcp/fm_schemas.h"', ""]
    lines += ['#include "fm_tools.gen.h"', "", "const fm_tool_def fm_tool_table[] = {"]
    for t in tools:
        flags = " | ".join(FLAGS[f] for f in t.get("flags", [])) or "0"
        backends = " | ".join(BACKENDS[b] for b in t.get("backends", [])) or "0"
        rl = t.get("rate_limit") or {}
        per_hour = 0 if t["autonomy"] != "create" or "never_rate_limited" in t.get("flags", []) \
            else rl.get("per_hour", DEFAULT_PER_HOUR)
        rate_config = c_string(rl["config"]) if rl.get("config") else "NULL"
        lines += [
            "    {",
            f"        .name = {c_string(t['name'])},",
            f"        .title = {c_string(t['title']) if t.get('title') else 'NULL'},",
            f"        .description = {c_string(t['description'])},",
            f"        .autonomy = {AUTONOMY[t['autonomy']]},",
            f"        .flags = {flags},",
            f"        .input_schema = {c_string(json.dumps(t['inputSchema'], separators=(',', ':')))},",
            f"        .listed_input_schema = {c_string(json.dumps(t['listedInput'], separators=(',', ':')))},",
            f"        .output_schema = {c_string(json.dumps(t['outputSchema'], separators=(',', ':')))},",
            f"        .listed_output_schema = {c_string(json.dumps(t['listedOutput'], separators=(',', ':')))},",
            f"        .handler = {t['handler']},",
            f"        .action = {c_string(t['action']) if t.get('action') else 'NULL'},",
            f"        .action_args = {c_string(json.dumps(t['action_args'], separators=(',', ':'))) if t.get('action_args') else 'NULL'},",
            f"        .backends = {backends},",
            f"        .rate_per_hour = {per_hour},",
            f"        .rate_config = {rate_config},",
            "    },",
        ]
    lines += ["};", "", f"const size_t fm_tool_count = {len(tools)};", ""]
    lines += ["const fm_embedded_schema fm_embedded_schemas[] = {"]
    for rel, text in others:
        lines.append(f"    {{{c_string(rel)}, {c_string(text)}}},")
    lines += ["    {NULL, NULL},", "};", "",
              f"const size_t fm_embedded_schema_count = {len(others)};", ""]
    header = ["/* Generated by tools/gen-registry.py: the tool handlers' prototypes. */",
              "#ifndef FM_TOOLS_GEN_H", "#define FM_TOOLS_GEN_H", "",
              '#include "fleetmcp/fm_tool.h"', ""]
    header += [f"json_t *{t['handler']}(fm_call *call, fm_err *err);" for t in tools]
    header += ["", "#endif", ""]
    write(os.path.join(os.path.dirname(out), "fm_tools.gen.h"), header)
    write(out, lines)


def write(path, lines):
    """Atomic, and untouched when unchanged so make does not rebuild."""
    text = "\n".join(lines)
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return
    except OSError:
        pass
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
