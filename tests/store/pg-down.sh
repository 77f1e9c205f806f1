#!/usr/bin/env bash
# Stops the PostgreSQL tests/store/pg-up.sh started in DIR (fast, bounded).
DIR=$1
BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
AS=()
[ "$(id -u)" = 0 ] && AS=(runuser -u postgres --)
[ -d "$DIR/data" ] && "${AS[@]}" "$BIN/pg_ctl" -D "$DIR/data" -m immediate -w -t 30 stop >/dev/null 2>&1
exit 0
