#!/bin/bash
# Signed approvals end to end through mcp-cli and the server: a hitl call
# becomes a plan; a human approves it with an Ed25519 key; the call runs
# once.  Forged, replayed, wrong-plan, unknown-key, expired and too-long
# approvals are refused, and every step is audited.
set -u
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export FLEETMCP_DB=$tmp/ap.db
unset FLEETMCP_CONFIG FLEETMCP_APPROVER_KEY FLEETMCP_APPROVER
cli="build/mcp-cli --config $tmp/fleetmcp.yaml"
# shellcheck source=tests/lib/tally.sh
. tests/lib/tally.sh
run() { "$@" > "$tmp/out" 2> "$tmp/err"; echo $?; }

build/mcp-cli keygen --out "$tmp/alice.key" --approver alice > "$tmp/keygen.txt" || bad keygen
build/mcp-cli keygen --out "$tmp/mallory.key" --approver mallory > /dev/null || bad keygen2
[ "$(stat -c %a "$tmp/alice.key")" = 600 ] && ok || bad "key file mode"
{ echo "mode: fleet"; sed -n '/^approvals:/,$p' "$tmp/keygen.txt"; echo "  max_ttl_s: 3600"; } > "$tmp/fleetmcp.yaml"
build/fleetmcp check-config --config "$tmp/fleetmcp.yaml" > /dev/null && ok || bad "config with the key is valid"

# 1. Engage, then try to release without approval: a plan is made.
[ "$(run $cli call killswitch_engage reason=drill)" = 0 ] && ok || bad engage
[ "$(run $cli call killswitch_release reason=drill-over)" = 5 ] && ok || bad "release without approval refused"
grep -q "APPROVAL:" "$tmp/err" && grep -q "mcp-cli approve pl-" "$tmp/err" && ok || bad "refusal names the command: $(cat "$tmp/err")"
plan=$(grep -o 'pl-[0-9a-f]\{16\}' "$tmp/err" | head -1)
[ -n "$plan" ] && ok || bad "plan id in refusal"

# An audit log as the release before the approvers column wrote it: a
# copy of this store with the column dropped and audit back at schema v4.
# Opening it adds the column (v5), and every old row verifies unchanged.
for f in "$FLEETMCP_DB"*; do cp "$f" "$tmp/old.db${f#"$FLEETMCP_DB"}"; done
sqlite3 "$tmp/old.db" "ALTER TABLE audit DROP COLUMN approvers; UPDATE schema_migrations SET version=4 WHERE subsystem='audit'" && ok || bad "old store made"
build/fleetmcp audit verify --db "$tmp/old.db" > "$tmp/out" 2>&1 && ok || bad "a store from before the approvers column verifies after the migration: $(cat "$tmp/out")"
[ "$(sqlite3 "$tmp/old.db" "select version from schema_migrations where subsystem='audit'")" = 5 ] &&
    sqlite3 "$tmp/old.db" "select count(approvers) from audit" > /dev/null && ok || bad "the old store was migrated to audit v5"

# 2. Non-interactive approve without --yes is refused (no tty).
[ "$(run $cli approve "$plan" --key "$tmp/alice.key" --approver alice < /dev/null)" = 1 ] && ok || bad "approve needs --yes without a tty"
# 3. Unknown approver key (mallory is not configured).
[ "$(run $cli approve "$plan" --key "$tmp/mallory.key" --approver mallory --yes)" = 5 ] && ok || bad "unknown key refused"
grep -q "no key in approvals.keys" "$tmp/err" && ok || bad "unknown key message: $(cat "$tmp/err")"
# 4. Forged: mallory's key claiming to be alice.
[ "$(run $cli approve "$plan" --key "$tmp/mallory.key" --approver alice --yes)" = 5 ] && ok || bad "forged refused"
grep -q "does not verify" "$tmp/err" && ok || bad "forged message: $(cat "$tmp/err")"
# 5. Longer than max_ttl_s.
[ "$(run $cli approve "$plan" --key "$tmp/alice.key" --approver alice --ttl 5h --yes)" = 5 ] && ok || bad "too-long ttl refused"
# 5b. A ttl whose seconds would overflow is a usage error, not a signature.
[ "$(run $cli approve "$plan" --key "$tmp/alice.key" --approver alice --ttl 5124095576030432h --yes)" = 1 ] && ok || bad "a ttl whose seconds wrap (to 3584 s) refused as usage"
[ "$(run $cli approve "$plan" --key "$tmp/alice.key" --approver alice --ttl h --yes)" = 1 ] && ok || bad "ttl without a number refused as usage"
# 6. A good approval.
[ "$(run $cli --format json approve "$plan" --key "$tmp/alice.key" --approver alice --ttl 10m --yes)" = 0 ] && ok || bad "approve: $(cat "$tmp/err")"
ap=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["structuredContent"]["approval_id"])' "$tmp/out" 2>/dev/null)
[ -n "$ap" ] && ok || bad "approval id"
# 7. Wrong plan: same approval, different arguments.
[ "$(run $cli call killswitch_release reason=something-else approval_id="$ap")" = 5 ] && ok || bad "wrong plan refused"
grep -q "not that plan" "$tmp/err" && ok || bad "wrong-plan message: $(cat "$tmp/err")"
# 8. The approved call runs once...
[ "$(run $cli call killswitch_release reason=drill-over approval_id="$ap")" = 0 ] && ok || bad "approved release: $(cat "$tmp/err")"
[ "$(run $cli call fleet_status)" = 0 ] && grep -qE '^kill_switch +engaged=false' "$tmp/out" && ok || bad "kill switch released"
# 9. ...and never again (replay).
[ "$(run $cli call killswitch_release reason=drill-over approval_id="$ap")" = 5 ] && grep -q "already used" "$tmp/err" && ok || bad "replay refused: $(cat "$tmp/err")"
# 10. Expired: sign by hand with an expiry in the past via plan_approve.
python3 - "$tmp" "$plan" <<'PY' && ok || bad "expired approval refused"
import json, subprocess, sys, time
tmp, plan = sys.argv[1], sys.argv[2]
r = subprocess.run(["build/mcp-cli", "--config", f"{tmp}/fleetmcp.yaml", "call", "plan_approve",
                    "--args", json.dumps({"plan_id": plan, "approver": "alice",
                                          "expires_ms": int(time.time() * 1000) - 1000,
                                          "signature": "A" * 86 + "=="})],
                   capture_output=True, text=True)
sys.exit(0 if r.returncode == 5 and "expired" in r.stderr else 1)
PY
# 10b. ticket_close is hitl: its schema takes the approval_id the generator
# adds, so an approved close runs (it used to fail INVALID on approval_id).
[ "$(run $cli --format json call ticket_create summary=xid79-drill node=gpu-a01 fault_class=gpu_fallen_off_bus)" = 0 ] && ok || bad "ticket_create: $(cat "$tmp/err")"
tkey=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["structuredContent"]["key"])' "$tmp/out" 2>/dev/null)
[ "$(run $cli call ticket_close key="$tkey" comment=fixed)" = 5 ] && grep -q "^APPROVAL:" "$tmp/err" && ok || bad "ticket_close without approval: $(cat "$tmp/err")"
tplan=$(grep -o 'pl-[0-9a-f]\{16\}' "$tmp/err" | head -1)
[ "$(run $cli --format json approve "$tplan" --key "$tmp/alice.key" --approver alice --ttl 10m --yes)" = 0 ] && ok || bad "approve ticket_close plan: $(cat "$tmp/err")"
tap=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["structuredContent"]["approval_id"])' "$tmp/out" 2>/dev/null)
[ "$(run $cli call ticket_close key="$tkey" comment=fixed approval_id="$tap")" = 0 ] && ok || bad "approved ticket_close: $(cat "$tmp/err")"
[ "$(run $cli --format json call ticket_get key="$tkey")" = 0 ] &&
    python3 -c 'import json,sys; sys.exit(json.load(open(sys.argv[1]))["structuredContent"]["open"] is not False)' "$tmp/out" && ok || bad "ticket is closed: $(cat "$tmp/out")"
# 11. Audit: every refusal and the approved call are there, attributed.
n=$(sqlite3 "$FLEETMCP_DB" "select count(*) from audit where tool='killswitch_release' and decision='deny' and error_code='APPROVAL'")
[ "$n" -ge 3 ] && ok || bad "approval refusals audited ($n)"
n=$(sqlite3 "$FLEETMCP_DB" "select count(*) from audit where tool='killswitch_release' and phase='intent' and approval_id='$ap' and plan_id='$plan' and initiator_kind='human'")
[ "$n" = 1 ] && ok || bad "approved intent row with plan and approval ($n)"
n=$(sqlite3 "$FLEETMCP_DB" "select count(*) from audit where tool='plan_approve' and error_code='APPROVAL'")
[ "$n" -ge 3 ] && ok || bad "refused approvals audited ($n)"
build/fleetmcp audit verify --db "$FLEETMCP_DB" > /dev/null && ok || bad "audit chain verifies"
# The approving person has a column of their own on the released action's
# rows (intent and result), shown by audit_query; nowhere else.
n=$(sqlite3 "$FLEETMCP_DB" "select count(*) from audit where tool='killswitch_release' and approval_id='$ap' and approvers='alice' and phase in ('intent','result')")
[ "$n" = 2 ] && ok || bad "the released action's rows name the approver alice ($n)"
n=$(sqlite3 "$FLEETMCP_DB" "select count(*) from audit where approvers is not null and (approval_id is null or approval_id<>'$ap') and tool='killswitch_release'")
[ "$n" = 0 ] && ok || bad "refused calls carry no approvers ($n)"
[ "$(run $cli --format json call audit_query tool=killswitch_release)" = 0 ] &&
    python3 - "$tmp/out" "$ap" <<'PY' && ok || bad "audit_query shows the approver: $(head -c 600 "$tmp/out")"
import json, sys
rows = json.load(open(sys.argv[1]))["structuredContent"]["rows"]
mine = [r for r in rows if r.get("approval_id") == sys.argv[2]]
others = [r for r in rows if r.get("approval_id") != sys.argv[2]]
sys.exit(not (mine and all(r.get("approvers") == "alice" for r in mine)
              and all("approvers" not in r for r in others)))
PY
# The column is in the chain: editing or clearing it breaks verify.
cp "$FLEETMCP_DB" "$tmp/edit.db"; cp "$FLEETMCP_DB.audit-key" "$tmp/edit.db.audit-key"; cp "$FLEETMCP_DB.audit-anchor" "$tmp/edit.db.audit-anchor"
sqlite3 "$tmp/edit.db" "PRAGMA wal_checkpoint; UPDATE audit SET approvers='mallory' WHERE approvers='alice' AND phase='intent'" > /dev/null
build/fleetmcp audit verify --db "$tmp/edit.db" > "$tmp/out" 2>&1; [ $? -ne 0 ] && grep -q "does not match its hash" "$tmp/out" && ok || bad "an edited approver breaks the chain: $(cat "$tmp/out")"
sqlite3 "$tmp/edit.db" "UPDATE audit SET approvers='alice' WHERE approvers='mallory'; UPDATE audit SET approvers='alice' WHERE id=(SELECT min(id) FROM audit)"
build/fleetmcp audit verify --db "$tmp/edit.db" > "$tmp/out" 2>&1; [ $? -ne 0 ] && grep -q "row 1: content does not match" "$tmp/out" && ok || bad "an approver added to a row without one breaks the chain: $(cat "$tmp/out")"

# 12. Roles and the two-person rule, decided by the gate.  killswitch_release
# is fleet-wide: approvals.two_person.actions names it, and require_role
# asks for oncall.  alice holds two keys (one person); carol lacks oncall.
export FLEETMCP_DB=$tmp/two.db
for k in alice2 bob carol; do build/mcp-cli keygen --out "$tmp/$k.key" --approver "$k" > "$tmp/keygen-$k.txt" || bad "keygen $k"; done
pub() { sed -n 's/^ *public_key: *//p' "$1" | head -1; }
cat > "$tmp/fleetmcp.yaml" <<EOF
mode: fleet
approvals:
  keys:
    - {id: alice, public_key: "$(pub "$tmp/keygen.txt")", roles: [oncall]}
    - {id: alice2, public_key: "$(pub "$tmp/keygen-alice2.txt")", person: alice, roles: [oncall]}
    - {id: bob, public_key: "$(pub "$tmp/keygen-bob.txt")", roles: [oncall]}
    - {id: carol, public_key: "$(pub "$tmp/keygen-carol.txt")", roles: [fleet-admin]}
  max_ttl_s: 3600
  two_person: {actions: [killswitch_release]}
  require_role: {killswitch_release: oncall}
EOF
build/fleetmcp check-config --config "$tmp/fleetmcp.yaml" > /dev/null && ok || bad "two-person config is valid: $(build/fleetmcp check-config --config "$tmp/fleetmcp.yaml" 2>&1)"
[ "$(run $cli call killswitch_engage reason=drill2)" = 0 ] && ok || bad "engage 2"
[ "$(run $cli call killswitch_release reason=drill2-over)" = 5 ] && ok || bad "release 2 without approval"
grep -q "It takes 2 distinct people with role oncall" "$tmp/err" && ok || bad "refusal says two people with oncall: $(cat "$tmp/err")"
plan2=$(grep -o 'pl-[0-9a-f]\{16\}' "$tmp/err" | head -1)
approve() { # KEY -> approval id on stdout
    $cli --format json approve "$plan2" --key "$tmp/$1.key" --approver "$1" --ttl 10m --yes > "$tmp/ap.json" 2> "$tmp/ap.err" || { bad "approve by $1: $(cat "$tmp/ap.err")"; return; }
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["structuredContent"]["approval_id"])' "$tmp/ap.json"
}
release() { run $cli call killswitch_release reason=drill2-over approval_id="$1"; }
a1=$(approve alice)
[ "$(release "$a1")" = 5 ] && grep -q "needs approvals from 2 distinct people with role oncall.*1 counted" "$tmp/err" && ok || bad "one approval is not enough: $(cat "$tmp/err")"
a2=$(approve alice2)
[ "$(release "$a2")" = 5 ] && grep -q "alice approved twice (alice2, alice): one person counts once" "$tmp/err" && ok || bad "the same person twice is refused: $(cat "$tmp/err")"
a3=$(approve carol)
[ "$(release "$a3")" = 5 ] && grep -q "carol lacks role oncall" "$tmp/err" && ok || bad "a key lacking the role is refused: $(cat "$tmp/err")"
[ "$(run $cli call fleet_status)" = 0 ] && grep -qE '^kill_switch +engaged=true' "$tmp/out" && ok || bad "refused releases changed nothing"
a4=$(approve bob)
[ "$(release "$a4")" = 0 ] && ok || bad "two distinct approvers release: $(cat "$tmp/err")"
[ "$(run $cli call fleet_status)" = 0 ] && grep -qE '^kill_switch +engaged=false' "$tmp/out" && ok || bad "kill switch released by two"
[ "$(release "$a1")" = 5 ] && grep -q "already used" "$tmp/err" && ok || bad "the other approvals were used up with it: $(cat "$tmp/err")"
n=$(sqlite3 "$FLEETMCP_DB" "select count(*) from audit where tool='killswitch_release' and phase='intent' and decision='allow' and approval_id='$a4' and reason like 'approved by bob, alice %'")
[ "$n" = 1 ] && ok || bad "the audit row names both approving people ($n): $(sqlite3 "$FLEETMCP_DB" "select reason from audit where tool='killswitch_release' and approval_id='$a4'")"
n=$(sqlite3 "$FLEETMCP_DB" "select count(*) from approvals where plan_id='$plan2' and used_ms is not null")
[ "$n" = 4 ] && ok || bad "every approval of the plan is used ($n)"
n=$(sqlite3 "$FLEETMCP_DB" "select count(*) from audit where tool='killswitch_release' and approval_id='$a4' and approvers='bob, alice' and phase in ('intent','result')")
[ "$n" = 2 ] && ok || bad "the released action's rows name both approvers in their column ($n)"
build/fleetmcp audit verify --db "$FLEETMCP_DB" > /dev/null && ok || bad "audit chain verifies (two-person)"
# mcp-cli audit export carries them, and replay shows who approved it then.
sid=$(sqlite3 "$FLEETMCP_DB" "select session from audit where approval_id='$a4' and phase='intent'")
[ "$(run $cli audit export --session "$sid" --out "$tmp/session.jsonl")" = 0 ] &&
    grep -q '"approvers":"bob, alice"' "$tmp/session.jsonl" && ok || bad "export carries the approvers: $(cat "$tmp/err" "$tmp/session.jsonl" | head -c 800)"
sed 's/^mode: fleet/mode: shadow/' "$tmp/fleetmcp.yaml" > "$tmp/shadow.yaml"
cp "$FLEETMCP_DB" "$tmp/replay.db"; cp "$FLEETMCP_DB.audit-key" "$tmp/replay.db.audit-key"
FLEETMCP_DB=$tmp/replay.db run build/mcp-cli --config "$tmp/shadow.yaml" replay "$tmp/session.jsonl" > /dev/null
grep -q "recorded as approved by bob, alice" "$tmp/out" && ok || bad "replay shows the recorded approvers: $(cat "$tmp/out" "$tmp/err" | head -c 800)"

# 13. Emergency mode, decided by the gate: starting it takes two distinct
# people (emergency.approvals_required, default 2), and while it lasts a
# hitl action that takes one approval otherwise takes two.
export FLEETMCP_DB=$tmp/emergency.db
cat > "$tmp/fleetmcp.yaml" <<EOF
mode: fleet
approvals:
  keys:
    - {id: alice, public_key: "$(pub "$tmp/keygen.txt")"}
    - {id: bob, public_key: "$(pub "$tmp/keygen-bob.txt")"}
  max_ttl_s: 3600
EOF
start() { # [APPROVAL_ID]
    local a='"limits": {"max_per_domain": 3}, "duration_s": 600, "reason": "rack r01 power event drill"'
    run $cli call emergency_start --args "{$a${1:+, \"approval_id\": \"$1\"}}"
}
[ "$(start)" = 5 ] && grep -q "It takes 2 distinct people" "$tmp/err" && ok || bad "emergency_start asks for two people: $(cat "$tmp/err")"
plan2=$(grep -o 'pl-[0-9a-f]\{16\}' "$tmp/err" | head -1)
e1=$(approve alice)
[ "$(start "$e1")" = 5 ] && grep -q "1 counted" "$tmp/err" && ok || bad "one approval does not start emergency mode: $(cat "$tmp/err")"
emergency_active() { run $cli --format json call fleet_status > /dev/null; python3 -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1]))["structuredContent"]["guardrails"].get("emergency", {}).get("active") else 1)' "$tmp/out"; }
! emergency_active && ok || bad "no emergency after one approval: $(cat "$tmp/out")"
e2=$(approve bob)
[ "$(start "$e2")" = 0 ] && emergency_active && ok || bad "two people start emergency mode: $(cat "$tmp/err" "$tmp/out")"
[ "$(run $cli call killswitch_engage reason=drill3)" = 0 ] && ok || bad "engage 3"
[ "$(run $cli call killswitch_release reason=drill3-over)" = 5 ] && grep -q "It takes 2 distinct people" "$tmp/err" && grep -q "emergency mode" "$tmp/err" && ok || bad "in emergency mode a release takes two: $(cat "$tmp/err")"
plan2=$(grep -o 'pl-[0-9a-f]\{16\}' "$tmp/err" | head -1)
r1=$(approve alice)
[ "$(run $cli call killswitch_release reason=drill3-over approval_id="$r1")" = 5 ] && grep -q "1 counted" "$tmp/err" && ok || bad "one approval is not enough in emergency mode: $(cat "$tmp/err")"
r2=$(approve bob)
[ "$(run $cli call killswitch_release reason=drill3-over approval_id="$r2")" = 0 ] && ok || bad "two release in emergency mode: $(cat "$tmp/err")"
[ "$(run $cli call emergency_end reason=drill-over)" = 0 ] && ok || bad "emergency_end: $(cat "$tmp/err")"
n=$(sqlite3 "$FLEETMCP_DB" "select count(*) from audit where tool='emergency_start' and phase='intent' and decision='allow' and reason like 'approved by %, %'")
[ "$n" = 1 ] && ok || bad "the emergency_start audit row names two people ($n)"
build/fleetmcp audit verify --db "$FLEETMCP_DB" > /dev/null && ok || bad "audit chain verifies (emergency)"
tally_end approvals
