#!/bin/bash
# Builds the libFuzzer target with clang (ASan + UBSan) and runs it for a
# bounded time: `make check` runs 60 s, `make fuzz` 30 minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}
B=build/fuzz
make -s BUILD=$B CC=clang OPT="-O1 -g -fno-omit-frame-pointer" \
    EXTRA_CFLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all" \
    $B/libfleetmcp.a
mkdir -p $B/corpus
cp -n tests/fuzz/corpus/* $B/corpus/ 2>/dev/null || true
clang -std=c11 -D_GNU_SOURCE -Iinclude -I$B/gen -g -O1 \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    tests/fuzz/fuzz_message.c $B/libfleetmcp.a \
    $(pkg-config --libs jansson libcurl yaml-0.1 sqlite3 libssh2 libcrypto libpcre2-8) -lpthread -lm \
    -o $B/fuzz_message
echo "fuzz: running $B/fuzz_message for $secs s"
# -rss_limit_mb bounds memory; -max_len keeps inputs under a pipe's size.
$B/fuzz_message -max_total_time="$secs" -max_len=16384 -rss_limit_mb=2048 \
    -print_final_stats=1 $B/corpus 2>&1 | tail -15
