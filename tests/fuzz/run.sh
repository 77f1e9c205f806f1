#!/bin/bash
# Builds every libFuzzer target in tests/fuzz (fuzz_*.c) with clang (ASan +
# UBSan) and runs them for a bounded total time: `make check` gives them 60 s
# together (half to the message path), `make fuzz` 30 minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}
B=build/fuzz
make -s BUILD=$B CC=clang OPT="-O1 -g -fno-omit-frame-pointer" \
    EXTRA_CFLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all" \
    $B/libfleetmcp.a
targets=(tests/fuzz/fuzz_*.c)
others=$(( ${#targets[@]} - 1 ))
for src in "${targets[@]}"; do
    name=$(basename "$src" .c)
    # The message path is where outside input arrives: it gets half.
    if [ "$name" = fuzz_message ] || [ "$others" -eq 0 ]; then t=$(( secs / 2 > 1 ? secs / 2 : 1 ))
    else t=$(( secs / 2 / others > 1 ? secs / 2 / others : 1 )); fi
    clang -std=c11 -D_GNU_SOURCE -Iinclude -I$B/gen -g -O1 \
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
        "$src" $B/libfleetmcp.a \
        $(pkg-config --libs jansson yaml-0.1 sqlite3 libssh2 libcrypto libpcre2-8 cjose) -ldl -lpthread -lm \
        -o "$B/$name"
    # Inputs that once crashed or hung this target must stay fixed.
    regress=(tests/fuzz/regress/"${name#fuzz_}"-*)
    if [ -e "${regress[0]}" ]; then
        "$B/$name" -timeout=10 "${regress[@]}" > "$B/$name.regress.log" 2>&1 ||
            { tail -20 "$B/$name.regress.log"; echo "fuzz: $name fails a saved regression input"; exit 1; }
        echo "fuzz: $name passes ${#regress[@]} saved regression input(s)"
    fi
    mkdir -p "$B/corpus-$name"
    [ "$name" = fuzz_message ] && cp -n tests/fuzz/corpus/* "$B/corpus-$name/" 2>/dev/null || true
    echo "fuzz: $name for $t s"
    # -rss_limit_mb bounds memory; -max_len keeps inputs under a pipe's size.
    rc=0
    # -timeout: an input slower than 10 s is a hang and fails the run (the
    # default, 20 minutes per input, would stall CI instead).
    "$B/$name" -max_total_time="$t" -timeout=10 -max_len=16384 -rss_limit_mb=2048 \
        -print_final_stats=1 "$B/corpus-$name" > "$B/$name.log" 2>&1 || rc=$?
    grep -E "stat::number_of_executed_units|stat::average_exec|SUMMARY|ERROR" "$B/$name.log" || true
    if [ "$rc" -ne 0 ]; then
        tail -40 "$B/$name.log"
        echo "fuzz: $name failed (exit $rc); the crashing input is saved as crash-* in $PWD"
        exit 1
    fi
done
