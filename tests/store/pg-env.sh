# Sourced by the stages that run on a throwaway PostgreSQL
# (store-pg, integration:policy-pg, integration:remediation-pg):  fm_pg_env NAME
# starts one (tests/store/pg-up.sh) in a new temporary directory that is
# stopped and removed on exit, and exports FM_TEST_PG and
# FLEETMCP_AUDIT_DIR (the chain's key and anchor of a PostgreSQL store are
# host-local files).  Run from the top of the tree.
fm_pg_env() {
    FM_PG_DIR=$(mktemp -d "/tmp/fm-$1.XXXXXX")
    trap 'tests/store/pg-down.sh "$FM_PG_DIR"; rm -rf "$FM_PG_DIR"' EXIT
    local url
    url=$(tests/store/pg-up.sh "$FM_PG_DIR") || exit 1
    echo "$1: PostgreSQL at $url"
    export FM_TEST_PG=$url FLEETMCP_AUDIT_DIR=$FM_PG_DIR/side
    mkdir -p "$FLEETMCP_AUDIT_DIR"
}
