#!/bin/bash
# `make check`: every test fleetmcp has, in order of cost.  Each stage is
# reported; the run fails if any stage fails.  The closing lines name the
# failed stages and every check a stage skipped, then
# "N passed, N failed, N skipped".
#
#   bash tests/run-check.sh [NAME...]      (make check STAGE=NAME, make NAME)
#
# With names, only the stages they select run, after the build: a name
# selects the stage of that name and those it prefixes before a '-' or ':'
# (interop: interop-sdk, interop-inspector...; integration: every
# integration:*).  Adding a stage is one `stage NAME COMMAND...` line.
#
# A stage that leaves a check out says why with one line appended to
# $FM_SKIPS (see `skipped` in tests/examples.sh); a skip is counted and
# shown, never silent.  Under CI=true a missing input that CI must have
# (../shared/scenarios) fails instead.
set -u
cd "$(dirname "$0")/.."
export FM_ROOT=$PWD
FM_SKIPS=$(mktemp /tmp/fm-check-skips.XXXXXX)
export FM_SKIPS
trap 'rm -f "$FM_SKIPS"' EXIT
passed=0
failed=0
failed_names=()
selectors=("$@")
# Stage names come from this script itself, run with FM_CHECK_LIST=1: each
# stage line then prints its name instead of running.
listing=${FM_CHECK_LIST:-}
names=()
if [ ${#selectors[@]} -gt 0 ] && [ -z "$listing" ]; then
    mapfile -t names < <(FM_CHECK_LIST=1 bash "$0")
    for sel in "${selectors[@]}"; do
        found=""
        for n in "${names[@]}"; do
            case "$n" in "$sel" | "$sel"-* | "$sel":*) found=1 ;; esac
        done
        [ -n "$found" ] || {
            echo "check: NOTFOUND: no stage is named '$sel' or starts with '$sel-' or '$sel:'; stages: ${names[*]}" >&2
            exit 2
        }
    done
fi
# A selector names one stage exactly, or else the group it prefixes.
selected() {
    [ ${#selectors[@]} -eq 0 ] && return 0
    [ "$1" = build ] && return 0 # every other stage runs its binaries
    local s n
    for s in "${selectors[@]}"; do
        [ "$1" = "$s" ] && return 0
        for n in "${names[@]}"; do [ "$n" = "$s" ] && continue 2; done
        case "$1" in "$s"-* | "$s":*) return 0 ;; esac
    done
    return 1
}
stage() {
    local name=$1
    shift
    if [ -n "$listing" ]; then
        echo "$name"
        return 0
    fi
    selected "$name" || return 0
    echo
    echo "==== $name"
    local t0=$SECONDS skips0
    skips0=$(wc -l <"$FM_SKIPS")
    if FM_STAGE=$name "$@"; then
        passed=$((passed + 1))
        echo "==== $name: ok ($((SECONDS - t0)) s)"
    else
        failed=$((failed + 1))
        failed_names+=("$name")
        echo "==== $name: FAILED ($((SECONDS - t0)) s)"
    fi
    local n=$(($(wc -l <"$FM_SKIPS") - skips0))
    [ "$n" -eq 0 ] || echo "==== $name: $n check(s) skipped"
}

stage build make -s all
# Every C file as clang-format lays it out (.clang-format): a helper's
# unformatted merge once reached main unseen, as only the lead ran it.
stage lint make -s lint
stage unit make -s unit
stage unit-asan make -s asan
stage store-pg bash tests/store/pg.sh
stage protocol python3 tests/protocol/run.py build/fleetmcp
stage output-contract python3 tests/protocol/output_contract.py build/fleetmcp
stage interop-sdk node tests/interop/sdk-client.mjs build/fleetmcp
stage interop-sdk-http node tests/interop/sdk-client.mjs build/fleetmcp --http
stage interop-sdk-stack bash tests/interop/sdk-stack.sh
stage interop-inspector bash tests/interop/inspector.sh build/fleetmcp
stage http-hardening python3 tests/http/hardening.py build/fleetmcp
stage http-mrtr python3 tests/http/mrtr.py build/fleetmcp
stage http-content python3 tests/http/content.py build/fleetmcp
stage http-auth python3 tests/http/auth.py build/fleetmcp
stage http-auth-jwt python3 tests/http/jwt.py build/fleetmcp
stage http-workers python3 tests/http/workers.py build/fleetmcp
stage http-group-commit python3 tests/http/group_commit.py build/fleetmcp
stage http-tasks sh -c 'make -s build/conformance-fixture &&
    python3 tests/http/tasks.py build/fleetmcp build/conformance-fixture'
stage http-tasks-stack bash tests/http/tasks-stack.sh
stage http-backchannel sh -c 'make -s build/conformance-fixture &&
    python3 tests/http/backchannel.py build/conformance-fixture build/fleetmcp'
stage conformance-fixture make -s build/conformance-fixture
stage conformance python3 tests/conformance/run.py build/fleetmcp build/conformance-fixture
stage check-config bash tests/cli/check-config.sh
stage mcp-cli bash tests/cli/run.sh
stage mcp-cli-tty bash tests/cli/tty.sh
stage mcp-cli-remote bash tests/cli/remote.sh
stage approvals bash tests/cli/approval.sh
stage elicitation python3 tests/cli/elicitation.py build/fleetmcp
stage hardening python3 tests/cli/hardening.py build/fleetmcp
stage valgrind bash tests/valgrind.sh
stage examples bash tests/examples.sh
stage demo bash examples/demo.sh
stage install bash tests/install.sh
stage fresh-machine bash tests/fresh-machine.sh
stage lazy-libs bash tests/lazy-libs.sh
stage data-access bash tests/data-access.sh
for t in tests/integration/*.sh; do
    [ -e "$t" ] || continue
    stage "integration:$(basename "$t" .sh)" bash "$t"
done
stage diagnose-scenarios python3 tests/diagnose/run_scenarios.py
stage diagnose-blind python3 tests/diagnose/run_scenarios.py --held-out 77 0 tests/diagnose/blind
stage diagnose-blind2 python3 tests/diagnose/run_scenarios.py --held-out 98 0 tests/diagnose/blind2
stage diagnose-blind3 python3 tests/diagnose/run_scenarios.py --held-out 95 0 tests/diagnose/blind3
stage diagnose-blind4 python3 tests/diagnose/run_scenarios.py --held-out 67 0 tests/diagnose/blind4
stage diagnose-blind5 python3 tests/diagnose/run_scenarios.py --held-out 65 0 tests/diagnose/blind5
# blind6 was told to the tenth pass (its misses as general kinds); blind7
# was measured unseen after it (58/70, 4 unsafe calls) and told to the
# eleventh pass as general kinds: the floor is what that pass reached
# (raised to what the twelfth pass keeps, blind7 to what the thirteenth
# reaches).
stage diagnose-blind6 python3 tests/diagnose/run_scenarios.py --held-out 63 0 tests/diagnose/blind6
stage diagnose-blind7 python3 tests/diagnose/run_scenarios.py --held-out 67 0 tests/diagnose/blind7
# blind8 (70, written 17:01-17:08 UTC by an author who read no code) was
# scored before the eleventh pass (56/70, 2 unsafe) and after it (58/70,
# 2 unsafe), then told to the twelfth pass as general kinds: the floor is
# what that pass reached.
# The seventeenth pass (job-level facts across sources) raised it to 64.
stage diagnose-blind8 python3 tests/diagnose/run_scenarios.py --held-out 64 0 tests/diagnose/blind8
# blind9 (70, written 20:19-20:27 UTC by an author who read no code),
# told to no one: 59/70, 2 unsafe calls before the twelfth pass and the
# same 59/70, 2 unsafe after it (that pass fixed only the kinds it was
# told). Then told to the thirteenth pass as general kinds: the floor is
# what that pass reached.
# Pass 24: 65. blind9 labels a fabric manager refusing the driver's version
# (no link error or counter) gpu_nvlink_error, blind24 and issue 19's pass
# 24 inconclusive; the engine now answers inconclusive (the safe call).
stage diagnose-blind9 python3 tests/diagnose/run_scenarios.py --held-out 65 0 tests/diagnose/blind9
# blind10 (70, written 23:45-23:52 UTC by an author who read no code),
# told to no one: 59/70, 1 unsafe call on the engine before the thirteenth
# pass, 60/70, 1 unsafe after it. Then told to the fourteenth pass as nine
# general kinds (its files unread): the floor is what that pass reached.
# The fifteenth pass, told blind11's misses as general kinds (time order
# after a repair, warm stragglers, idle reservations, setting drift,
# control-plane scope), raised blind4, blind7, blind8 and blind9 to what
# it reaches.
# The seventeenth pass raised it to 63.
stage diagnose-blind10 python3 tests/diagnose/run_scenarios.py --held-out 64 0 tests/diagnose/blind10
# blind11 (70, written 03:12-03:19 UTC 2026-12-07 by an author who read no
# code), scored unseen: 63/70, 2 unsafe on main (29a9d2b), 64/70, 2 unsafe
# after the fourteenth pass; then told to the fifteenth pass as five
# general kinds: the floor is what that pass reached (the twentieth pass
# raised it to 68).
stage diagnose-blind11 python3 tests/diagnose/run_scenarios.py --held-out 69 0 tests/diagnose/blind11
# blind12 (70, written 03:52-03:58 UTC by an author who read no code),
# told to no one: 59/70, 2 unsafe on main and after the fourteenth pass,
# 61/70, 1 unsafe after the fifteenth (the unseen figure). Then its misses
# were told to the sixteenth pass as twelve general kinds (its files
# unread): the floor is what that pass reached; the seventeenth, told them
# again as general kinds, reached 65 (the one unsafe call, a remap cleared
# by a reset, still escapes every layout written for it).
stage diagnose-blind12 python3 tests/diagnose/run_scenarios.py --held-out 65 1 tests/diagnose/blind12
# blind13 (70, written 04:33-04:41 UTC by an author who read no code),
# told to no one: 60/70, 1 unsafe on main (29a9d2b), 61/70, no unsafe
# call after the fifteenth pass and the same after the sixteenth (the
# unseen figure). Then its misses were told to the seventeenth pass as
# thirteen general kinds (its files unread): the floor is what that pass
# reached.
stage diagnose-blind13 python3 tests/diagnose/run_scenarios.py --held-out 66 0 tests/diagnose/blind13
# blind14 (70, written 06:26-06:34 UTC 2026-12-07 by an author who read no
# code; job- and scheduler-level, 28 with no log line) and blind15 (70,
# hardware breadth and time order, 06:26-06:33 UTC), both told to no one:
# on main (bab1f3f) blind14 57/70 with no unsafe call, blind15 63/70 with
# 1 unsafe; after the seventeenth pass (which was not told them) 60/70 and
# 63/70, 1 unsafe. Their misses were then told to the eighteenth pass as
# general kinds (their files unread): the floors are what that pass reached
# (blind15 with no unsafe call; blind3 raised to what it keeps).
stage diagnose-blind14 python3 tests/diagnose/run_scenarios.py --held-out 67 0 tests/diagnose/blind14
stage diagnose-blind15 python3 tests/diagnose/run_scenarios.py --held-out 68 0 tests/diagnose/blind15
# blind16 (70, written 09:47-09:53 UTC 2026-12-07 by an author who read no
# code; the software side as people report it, 17 told mostly by humans)
# and blind17 (70, 09:47-09:53 UTC; a tempting wrong answer beside most
# right ones, 12 healthy and 9 inconclusive), told to no one: on main
# (94e8188) blind16 63/70 with 1 unsafe call, blind17 60/70 with 2; after
# the eighteenth pass (which was not told them) 65/70 with none and 63/70
# with 1 (the unseen figures). Their misses were then told to the
# nineteenth pass as eleven general kinds (their files unread): the floors
# are what that pass reached, no unsafe call in either (blind11 raised to
# what it keeps).
stage diagnose-blind16 python3 tests/diagnose/run_scenarios.py --held-out 68 0 tests/diagnose/blind16
stage diagnose-blind17 python3 tests/diagnose/run_scenarios.py --held-out 66 0 tests/diagnose/blind17
# blind18 (70, written 10:43-10:47 UTC 2026-12-07 by an author who read no
# code; a week of one on-call queue, sources to be read together) and
# blind19 (70, 10:43-10:46 UTC; hardware and its time line), told to no
# one: on main (94e8188) blind18 64/70 and blind19 66/70, no unsafe call;
# after the eighteenth pass 65/70 and 65/70, after the nineteenth (not
# told them) 65/70 and 65/70 (the unseen figures). Their misses were then
# told to the twentieth pass as general kinds (their files unread): the
# floors are what that pass reached, no unsafe call in either.
stage diagnose-blind18 python3 tests/diagnose/run_scenarios.py --held-out 67 0 tests/diagnose/blind18
stage diagnose-blind19 python3 tests/diagnose/run_scenarios.py --held-out 67 0 tests/diagnose/blind19
# blind20 (70, written 11:25-11:28 UTC 2026-12-07 by an author who read no
# code; a week of one on-call queue) and blind21 (70, 11:25-11:28 UTC;
# hardware and its time line), told to no one: on main (94e8188) blind20
# 61/70 and blind21 59/70, one unsafe call each; after the nineteenth pass
# 62/70 and 60/70, after the twentieth (not told them) the same. Their
# misses were then told to the twenty-first pass as eighteen general kinds
# (their files unread): the floors are what that pass reached, with no
# unsafe call in either (blind7, blind13 and blind16 raised to what they
# keep).
stage diagnose-blind20 python3 tests/diagnose/run_scenarios.py --held-out 69 0 tests/diagnose/blind20
stage diagnose-blind21 python3 tests/diagnose/run_scenarios.py --held-out 67 0 tests/diagnose/blind21
# blind22 (70, written 13:10-13:18 UTC 2026-12-07 by an author who read no
# code; jobs and the scheduler as users meet them) and blind23 (70,
# 13:08-13:15 UTC; fabric, storage and control plane), told to no one: on
# main (5928274) blind22 65/70 with no unsafe call and blind23 59/70 with
# two; after the twenty-first pass (not told them) 66/70 and 60/70 with
# two (the unseen figures). Pass twenty-two was told six of their misses
# as general kinds (a planned cordon before a NotReady, a node Slurm cannot
# authenticate, a port still down after a retrain, a link-downed series, a
# GPU lspci no longer lists, a planned storage failover), so the figures
# below are no longer unseen: blind23 64/70 with no unsafe call, blind22
# unchanged at 66.  Pass twenty-three was told the misses left on blind21,
# blind22 and blind23 as thirteen general kinds (idle reservations, AER
# storms, IB width, link-downed series, Kerberos, spread and scope, planned
# failover and rollout, rank-size divergence, hot and slow stragglers,
# soft lockups now), so their figures below are told, not unseen: blind21
# 67/70, blind22 69/70, blind23 67/70, no unsafe call; blind7 67, blind10
# 64, blind11 69 and blind13 66 are what that pass keeps.
stage diagnose-blind22 python3 tests/diagnose/run_scenarios.py --held-out 69 0 tests/diagnose/blind22
stage diagnose-blind23 python3 tests/diagnose/run_scenarios.py --held-out 67 0 tests/diagnose/blind23
# blind24 (70, written 15:49-15:57 UTC 2026-12-07 by an author who read no
# code; GPU hardware and the driver), blind25 (70, 15:49-15:58; incidents
# as people report and hand them over), blind26 (70, 15:57-16:06; machine
# output only) and blind27 (70, 15:57-16:10; long timelines and noise),
# told to no one: on main (e892214) 61/70 with three unsafe calls, 66/70
# with none, 63/70 with one, 61/70 with one; after the twenty-third pass
# (not told them) 62, 66, 63 and 62 with 3, 0, 1 and 1 unsafe calls (the
# unseen figures).  Their misses were then told to the twenty-fourth pass
# as general kinds (files unread; FAIL lines and which of a rule's
# conditions held), so the figures below are told, no longer unseen:
# 68, 66, 65 and 65 with no unsafe call.
stage diagnose-blind24 python3 tests/diagnose/run_scenarios.py --held-out 68 0 tests/diagnose/blind24
stage diagnose-blind25 python3 tests/diagnose/run_scenarios.py --held-out 66 0 tests/diagnose/blind25
stage diagnose-blind26 python3 tests/diagnose/run_scenarios.py --held-out 65 0 tests/diagnose/blind26
stage diagnose-blind27 python3 tests/diagnose/run_scenarios.py --held-out 65 0 tests/diagnose/blind27
# blind28 (70, written 17:55-18:00 UTC 2026-12-07 by an author who read no
# code; one on-call week, everything mixed) and blind29 (70, 17:55-18:00;
# the hard calls: 16 healthy hard negatives, 10 inconclusive, scope by
# spread), told to no one: on main (f9e340f, after pass twenty-four) 55/70
# with no unsafe call (three files refused by diagnose's schema: a string
# where history's attempt is an integer) and 58/70 with two (the unseen
# figures; pass twenty-three alone scored the same).
# Pass twenty-five was told blind28's and blind29's misses as general kinds
# (so these figures are no longer unseen): 62/70 with none unsafe and
# 62/70 with one (blind29's unused HCA port still read ib_link_down in its layout).
# Pass twenty-six's disabled-by-design port fixed that layout too: 63/70, none.
stage diagnose-blind28 python3 tests/diagnose/run_scenarios.py --held-out 62 0 tests/diagnose/blind28
stage diagnose-blind29 python3 tests/diagnose/run_scenarios.py --held-out 63 0 tests/diagnose/blind29
# blind30 (70, written 19:03-19:11 UTC 2026-12-07 by an author who read no
# code; evidence as collectors gather it: nvidia-smi -q, dcgmi, a kernel
# window, Slurm and IB output, a stock dcgm-exporter's series) and blind31
# (70, 19:03-19:09; jobs and people: tracebacks, per-rank tables, chats,
# tickets, handoffs), told to no one: on main (5158544) 58/70 with two
# unsafe calls and 64/70 with four (the unseen figures; pass twenty-five
# left both unchanged).  Pass twenty-six was told their misses as general
# kinds (files unread; FAIL lines and which of its own conditions held),
# so the figures below are told, no longer unseen: 64/70 and 69/70, no
# unsafe call in either.
stage diagnose-blind30 python3 tests/diagnose/run_scenarios.py --held-out 64 0 tests/diagnose/blind30
stage diagnose-blind31 python3 tests/diagnose/run_scenarios.py --held-out 69 0 tests/diagnose/blind31
stage diagnose-perturb sh -c 'sh tests/diagnose/build-standalone.sh &&
    python3 tests/diagnose/perturb.py --floor 99'
stage diagnose-collect bash tests/diagnose/collect.sh
stage fuzz-smoke bash tests/fuzz/run.sh "${FM_FUZZ_SECONDS:-60}"

[ -n "$listing" ] && exit 0
skipped=$(wc -l <"$FM_SKIPS")
echo
if [ "$skipped" -gt 0 ]; then
    echo "skipped checks:"
    sed 's/^/  /' "$FM_SKIPS"
fi
if [ "$failed" -gt 0 ]; then
    echo "failed stages: ${failed_names[*]}"
fi
echo "check: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
