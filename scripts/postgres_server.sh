#!/usr/bin/env bash
# A throwaway local PostgreSQL server for the tests that run the asset graph on PostgreSQL instance storage.
#
#   eval "$(bash scripts/postgres_server.sh start [DATA_DIR] [PORT])"   # initdb once, start; exports the URL
#   bash scripts/postgres_server.sh stop [DATA_DIR]
#
# The server listens on localhost only, with trust authentication, on PORT (55432 by default, or the next free port
# after it). "start" prints one line to stdout, `export ENTROPY_ASSETS_TEST_POSTGRES=postgresql://postgres@...`,
# which tests/deployment/test_postgres.py reads; everything else goes to stderr. PostgreSQL refuses to run as root,
# so as root the server runs as the `postgres` OS user (Debian's package `postgresql` creates it), owning DATA_DIR.
set -euo pipefail

command_name=${1:-}
data_dir=${2:-/tmp/entropy-assets-postgres}
port=${3:-55432}

log() { echo "postgres_server: $*" >&2; }

pg_bin() {
    if command -v pg_ctl > /dev/null; then
        dirname "$(command -v pg_ctl)"
        return
    fi
    local found
    found=$(ls -d /usr/lib/postgresql/*/bin 2> /dev/null | sort -V | tail -n 1)
    if [ -z "$found" ] || [ ! -x "$found/pg_ctl" ]; then
        log "pg_ctl not found on PATH or in /usr/lib/postgresql/*/bin; install PostgreSQL (apt-get install postgresql)"
        exit 1
    fi
    echo "$found"
}

as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

port_in_use() { (exec 3<> "/dev/tcp/127.0.0.1/$1") 2> /dev/null; }

bin=$(pg_bin)
case "$command_name" in
    start)
        if [ ! -f "$data_dir/PG_VERSION" ]; then
            mkdir -p "$data_dir"
            [ "$(id -u)" = 0 ] && chown postgres: "$data_dir"
            chmod 700 "$data_dir"
            as_owner "$bin/initdb" -D "$data_dir" -U postgres -A trust --encoding=UTF8 > "$data_dir.initdb.log" 2>&1 \
                || { cat "$data_dir.initdb.log" >&2; exit 1; }
        fi
        if as_owner "$bin/pg_ctl" -D "$data_dir" status > /dev/null 2>&1; then
            port=$(sed -n 4p "$data_dir/postmaster.pid")
            log "already running in $data_dir on port $port"
        else
            while port_in_use "$port"; do
                port=$((port + 1))
            done
            as_owner "$bin/pg_ctl" -D "$data_dir" -l "$data_dir/server.log" -w \
                -o "-p $port -k $data_dir -c listen_addresses=localhost" start > /dev/null \
                || { tail -n 20 "$data_dir/server.log" >&2; exit 1; }
            log "started in $data_dir on port $port (log: $data_dir/server.log)"
        fi
        echo "export ENTROPY_ASSETS_TEST_POSTGRES=postgresql://postgres@localhost:$port"
        ;;
    stop)
        if [ -f "$data_dir/PG_VERSION" ] && as_owner "$bin/pg_ctl" -D "$data_dir" status > /dev/null 2>&1; then
            as_owner "$bin/pg_ctl" -D "$data_dir" -m fast -w stop > /dev/null
            log "stopped the server in $data_dir"
        else
            log "no server running in $data_dir"
        fi
        ;;
    *)
        echo "usage: $0 start|stop [DATA_DIR] [PORT]" >&2
        exit 2
        ;;
esac
