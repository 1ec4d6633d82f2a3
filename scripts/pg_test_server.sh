#!/bin/sh
# Throwaway PostgreSQL server for tests (tests/unit/test_storage_pg.c).
#
#   scripts/pg_test_server.sh start DIR PORT   initdb into DIR/data, start on
#                                              127.0.0.1:PORT (unix socket in
#                                              DIR), create database
#                                              moonpool_test, user moonpool
#   scripts/pg_test_server.sh stop DIR         stop the server (DIR is left
#                                              for the caller to delete)
#
# PostgreSQL refuses to run as root, so as root the server runs as the
# `postgres` user (created by Debian's postgresql package), falling back to
# `nobody`. Exit status 3 means PostgreSQL is not installed.
set -eu

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start DIR PORT | stop DIR" >&2; exit 2; }

bindir=""
for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then bindir=$d; break; fi
done
if [ -z "$bindir" ] && command -v initdb >/dev/null 2>&1; then
    bindir=$(dirname "$(command -v initdb)")
fi
if [ -z "$bindir" ]; then
    echo "pg_test_server: PostgreSQL server binaries not found (install the" \
         "'postgresql' package: apt-get install postgresql)" >&2
    exit 3
fi

as_user() {
    if [ "$(id -u)" -eq 0 ]; then
        if id postgres >/dev/null 2>&1; then u=postgres; else u=nobody; fi
        runuser -u "$u" -- "$@"
    else
        "$@"
    fi
}

case "$cmd" in
start)
    port=${3:?port}
    if [ "$(id -u)" -eq 0 ]; then
        if id postgres >/dev/null 2>&1; then u=postgres; else u=nobody; fi
        chown "$u" "$dir"
        chmod 700 "$dir"
    fi
    as_user "$bindir/initdb" -D "$dir/data" -U moonpool -A trust \
        --no-sync >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; exit 1; }
    as_user "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=${MP_PG_FSYNC:-off} -c deadlock_timeout=100ms" \
        start >/dev/null ||
        { cat "$dir/server.log" >&2; exit 1; }
    as_user "$bindir/createdb" -h 127.0.0.1 -p "$port" -U moonpool \
        moonpool_test || { cat "$dir/server.log" >&2; exit 1; }
    ;;
stop)
    as_user "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    ;;
*)
    echo "usage: $0 start DIR PORT | stop DIR" >&2
    exit 2
    ;;
esac
