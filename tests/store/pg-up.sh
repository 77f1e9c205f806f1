#!/usr/bin/env bash
# Starts a throwaway PostgreSQL in DIR (initdb + pg_ctl from Debian's
# postgresql package): unix socket in DIR, TCP on 127.0.0.1 only, a free
# port.  Prints the URL on stdout.  Stop it with tests/store/pg-down.sh DIR.
# initdb refuses root: as root it runs as the postgres user.
set -euo pipefail
DIR=$1
BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$BIN/initdb" ] || { echo "pg-up: no initdb under /usr/lib/postgresql: run make deps" >&2; exit 1; }
AS=()
if [ "$(id -u)" = 0 ]; then
    AS=(runuser -u postgres --)
    chown postgres: "$DIR"
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"${AS[@]}" "$BIN/initdb" -D "$DIR/data" -U fm --auth=trust -E UTF8 --no-sync >"$DIR/initdb.log" 2>&1 ||
    { cat "$DIR/initdb.log" >&2; exit 1; }
# fsync off: a throwaway cluster (FM_PG_FSYNC=on keeps PostgreSQL's
# default, as bench/store.sh does: commits then wait for the disk, as in
# production); -w waits for start-up (bounded by -t).
fsync=${FM_PG_FSYNC:-off}
case "$fsync" in on | off) ;; *) echo "pg-up: FM_PG_FSYNC is on or off" >&2; exit 1 ;; esac
"${AS[@]}" "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/pg.log" -w -t 60 -o \
    "-p $port -k $DIR -c listen_addresses=127.0.0.1 -c fsync=$fsync -c max_connections=100" start \
    >/dev/null || { cat "$DIR/pg.log" >&2; exit 1; }
echo "$port" > "$DIR/port"
"${AS[@]}" "$BIN/createdb" -h "$DIR" -p "$port" -U fm fm
echo "postgresql://fm@127.0.0.1:$port/fm"
