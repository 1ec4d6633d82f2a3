#!/bin/bash
# Cluster test: two nodes sharing one PostgreSQL database (the setup for a
# cluster on several machines, docs/cluster.md). Accounts written through
# the cluster survive a SIGKILL of every node: after both restart (new
# incarnations) each account shows its balance, whichever node activates
# it now. Skipped (77) when PostgreSQL is not installed.
set -u
. "$(dirname "$0")/lib.sh" "${1:-}"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

PGP=$(free_port) || fail "no free port"
chmod 755 "$TMP"
mkdir "$TMP/pg"
st=0
"$ROOT/scripts/pg_test_server.sh" start "$TMP/pg" "$PGP" >"$TMP/pg.out" 2>&1 || st=$?
[ $st = 3 ] && { echo "skipped: PostgreSQL is not installed"; exit 77; }
EXTRA_CLEANUP="\"$ROOT/scripts/pg_test_server.sh\" stop \"$TMP/pg\" >/dev/null 2>&1"
[ $st = 0 ] || { cat "$TMP/pg.out" >&2; fail "cannot start the PostgreSQL test server"; }
pass "PostgreSQL on 127.0.0.1:$PGP"

P1=$(free_port) && P2=$(free_port) || fail "no free ports"
[ "$P1" != "$P2" ] || P2=$(free_port)
for i in 1 2; do
    cat >"$TMP/node$i.conf" <<EOF
[cluster]
namespace = pgtest
members = 127.0.0.1:$P1, 127.0.0.1:$P2
[node]
data_dir = $TMP/n$i
[storage]
provider = postgres
conninfo = host=127.0.0.1 port=$PGP user=moonpool dbname=moonpool_test
[timeouts]
shutdown = 3s
EOF
done

start_both() {
    local want=$1
    start_node "$TMP/node1.conf" "$TMP/node1.log" 1; PID1=$NODE_PID
    start_node "$TMP/node2.conf" "$TMP/node2.log" 2; PID2=$NODE_PID
    wait_log "$TMP/node1.log" "ready:.*incarnation=$want storage=postgres" 1 "$PID1" 30 || fail "node 1 start"
    wait_log "$TMP/node2.log" "ready:.*incarnation=$want storage=postgres" 1 "$PID2" 30 || fail "node 2 start"
}

start_both 1
C="$TMP/node1.conf"
for k in 1 2 3 4 5 6; do
    expect_status 0 "deposit acct$k" "$MP" call --cluster "$C" BankAccount/acct$k deposit "{\"op\":\"d$k\",\"amount\":${k}00}"
done
expect_status 0 "transfer" "$MP" call --cluster "$C" BankAccount/acct6 transfer '{"op":"t1","to":"acct1","amount":50}'
pass "6 accounts written through the cluster"

for p in $PID1 $PID2; do kill -KILL "$p"; wait "$p" 2>/dev/null; done
PIDS=""
start_both 2
pass "both nodes SIGKILLed and restarted (incarnation 2)"

for k in 1 2 3 4 5 6; do
    want=$((k * 100))
    [ $k = 1 ] && want=150
    [ $k = 6 ] && want=550
    expect_status 0 "balance acct$k" "$MP" call --cluster "$C" BankAccount/acct$k balance
    expect_in "$TMP/out" "{\"balance\":$want}" "acct$k balance after the crash"
done
pass "every balance survived, read from PostgreSQL"

stop_all $PID1 $PID2
pass "SIGTERM: both exit 0"
