#!/bin/sh
# Builds build/diag/diag_cli, the engine driver used by
# `run_scenarios.py --direct`.  Links build/libfleetmcp.a (real schema
# validator and embedded schemas) when make has built it; otherwise compiles
# the engine alone with tests/diagnose/shim_schema.c (schema checks skipped:
# validate the YAML with the Python harness instead).
set -e
cd "$(dirname "$0")/../.."
mkdir -p build/diag
FLAGS="-std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
  -Wmissing-prototypes -Wno-unused-parameter -Iinclude ${OPT:--O2 -g} ${EXTRA_CFLAGS:-}"
if [ -f build/libfleetmcp.a ]; then
    # the engine from source, so the driver never runs a stale archive member
    # shellcheck disable=SC2086
    ${CC:-cc} $FLAGS -Ibuild/gen -o build/diag/diag_cli tests/diagnose/diag_cli.c src/diagnose/*.c \
      build/libfleetmcp.a \
      $(pkg-config --cflags --libs $(make -s --no-print-directory print-pkgs)) \
      -lpthread -lm
else
    # shellcheck disable=SC2086
    ${CC:-cc} $FLAGS -o build/diag/diag_cli tests/diagnose/diag_cli.c src/diagnose/*.c \
      src/config/yaml.c src/util/error.c tests/diagnose/shim_schema.c \
      $(pkg-config --cflags --libs jansson yaml-0.1 libpcre2-8) -lm
fi
