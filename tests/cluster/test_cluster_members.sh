#!/bin/bash
# Cluster test: `moonpool members --cluster FILE` as an operator runs it:
# bad usage and bad config files are exit status 2 with one clear message;
# a SQLite database that does not exist is reported (exit 1), not created;
# on the database a real node created, before any member joined the table,
# it says so (exit 0). The printed rows themselves are checked in
# tests/unit/test_membership_sqlite.c (same formatter).
set -u
. "$(dirname "$0")/lib.sh" "${1:-}"

expect_status 2 "no arguments" "$MP" members
expect_in "$TMP/err" "--cluster FILE is required" "no arguments message"
expect_status 2 "unknown argument" "$MP" members --cluster x --frob
expect_in "$TMP/err" "unexpected argument '--frob'" "unknown argument message"
expect_status 2 "missing config" "$MP" members --cluster "$TMP/none.conf"
expect_in "$TMP/err" "$TMP/none.conf" "missing config message"
expect_status 0 "help" "$MP" members --help
expect_in "$TMP/out" "usage: moonpool members" "help text"

P1=$(free_port) || fail "no free port"
A=127.0.0.1:$P1
cat >"$TMP/mem.conf" <<CONF
[cluster]
namespace = mt
members = $A
[storage]
provider = memory
CONF
expect_status 2 "memory storage" "$MP" members --cluster "$TMP/mem.conf"
expect_in "$TMP/err" "provider is memory" "memory storage message"

cat >"$TMP/sq.conf" <<CONF
[cluster]
namespace = mt
members = $A
[node]
address = $A
data_dir = $TMP/n1
[storage]
provider = sqlite
path = $TMP/n1/state.db
CONF
expect_status 1 "no database yet" "$MP" members --cluster "$TMP/sq.conf"
expect_in "$TMP/err" "no SQLite database at '$TMP/n1/state.db'" "no database message"
[ ! -e "$TMP/n1/state.db" ] || fail "members created the database"
pass "usage, config and missing database errors"

start_node "$TMP/sq.conf" "$TMP/n1.log"
wait_log "$TMP/n1.log" "moonpool node ready:" 1 "$NODE_PID" 30 || fail "node did not start: $(cat "$TMP/n1.log")"
stop_all "$NODE_PID"
expect_status 0 "empty table" "$MP" members --cluster "$TMP/sq.conf"
expect_in "$TMP/out" "no membership table under mt/__membership in $TMP/n1/state.db: no member has joined yet" "empty table message"
pass "a database without a table: no member has joined yet"
