#!/bin/bash
# Cluster test: three node processes on 127.0.0.1 with SQLite storage,
# driven by `moonpool call` and `moonpool stats` exactly as a user would:
# replies and exit statuses of call/stats, one activation per actor in the
# whole cluster, a graceful restart coming back with a new incarnation,
# and SIGTERM giving exit status 0 on every node.
set -u
. "$(dirname "$0")/lib.sh" "${1:-}"

# Three per-node files without [node] address (picked by --id), each with
# its own data directory, as docs/cluster.md shows.
start_cluster() {
    local attempt i
    for attempt in 1 2 3; do
        P1=$(free_port) && P2=$(free_port) && P3=$(free_port) || fail "no free ports"
        [ "$P1" != "$P2" ] && [ "$P2" != "$P3" ] && [ "$P1" != "$P3" ] || continue
        ADDR1=127.0.0.1:$P1 ADDR2=127.0.0.1:$P2 ADDR3=127.0.0.1:$P3
        for i in 1 2 3; do
            cat >"$TMP/node$i.conf" <<EOF
[cluster]
namespace = ctest
members = $ADDR1, $ADDR2, $ADDR3

[node]
data_dir = $TMP/n$i
log_level = info

[storage]
provider = sqlite

[timeouts]
call = 10s
shutdown = 5s
EOF
        done
        start_node "$TMP/node1.conf" "$TMP/node1.log" 1; PID1=$NODE_PID
        start_node "$TMP/node2.conf" "$TMP/node2.log" 2; PID2=$NODE_PID
        start_node "$TMP/node3.conf" "$TMP/node3.log" "$ADDR3"; PID3=$NODE_PID
        local ok=1
        for i in 1 2 3; do
            eval "pid=\$PID$i"
            wait_log "$TMP/node$i.log" "moonpool node ready:" 1 "$pid" 20 || ok=0
        done
        [ $ok = 1 ] && return 0
        if grep -q "in use" "$TMP"/node*.log; then
            for p in $PID1 $PID2 $PID3; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
            rm -f "$TMP"/node*.log
            continue
        fi
        fail "the nodes did not become ready"
    done
    fail "could not find free ports in 3 attempts"
}

start_cluster
expect_in "$TMP/node1.log" "address=$ADDR1 namespace=ctest incarnation=1 storage=sqlite" "ready line"
[ -f "$TMP/n1/state.db" ] || fail "node 1 did not create its SQLite database"
pass "3 nodes ready"

C="$TMP/node1.conf"
expect_status 0 "deposit" "$MP" call --cluster "$C" BankAccount/alice deposit '{"op":"d1","amount":50}'
expect_in "$TMP/out" '{"balance":50}' "deposit reply"
expect_status 0 "deposit again with the same op id" "$MP" call --cluster "$C" BankAccount/alice deposit '{"op":"d1","amount":50}'
expect_in "$TMP/out" '"balance":50' "duplicate op applied once"
expect_status 0 "transfer" "$MP" call --cluster "$C" BankAccount/alice transfer '{"op":"t1","to":"bob","amount":20}'
expect_status 0 "balance (default payload)" "$MP" call --cluster "$C" BankAccount/bob balance
expect_in "$TMP/out" '{"balance":20}' "transfer reached bob"
pass "call: deposit, idempotent retry, transfer, balance"

expect_status 1 "overdraft" "$MP" call --cluster "$C" BankAccount/alice withdraw '{"op":"w1","amount":1000}'
expect_in "$TMP/err" "MP_EACTOR" "overdraft error name"
expect_in "$TMP/err" "insufficient funds" "overdraft error message"
expect_status 1 "unknown type" "$MP" call --cluster "$C" NoSuchType/x balance
expect_in "$TMP/err" "MP_ENOTYPE" "unknown type error"
expect_status 1 "unknown method" "$MP" call --cluster "$C" BankAccount/alice fly
expect_in "$TMP/err" "MP_ENOMETHOD" "unknown method error"
expect_status 2 "payload not JSON" "$MP" call --cluster "$C" BankAccount/alice deposit '{"op":'
expect_in "$TMP/err" "not JSON" "bad payload message"
expect_status 2 "target without key" "$MP" call --cluster "$C" BankAccount balance
expect_status 2 "missing cluster file" "$MP" call --cluster "$TMP/nope.conf" BankAccount/a balance
expect_in "$TMP/err" "nope.conf: cannot open config file" "missing file message"
pass "call: errors exit 1 with the status name, usage errors exit 2"

# One flag syntax for every command (getopt): short forms, units in
# --timeout as in config files, the payload from a file or stdin.
expect_status 0 "short flags, timeout with a unit" "$MP" call -c "$C" -t 2s BankAccount/carol deposit '{"op":"c1","amount":7}'
printf '{"op":"c2",\n "amount":3}\n' >"$TMP/payload.json"
expect_status 0 "payload from a file" "$MP" call -c "$C" -f "$TMP/payload.json" BankAccount/carol deposit
expect_status 0 "payload from stdin" sh -c "printf '{}' | '$MP' call --cluster='$C' --timeout=1500 --payload-file - BankAccount/carol balance"
expect_in "$TMP/out" "10" "both deposits landed (7 + 3)"
expect_status 2 "a bad duration" "$MP" call -c "$C" -t 2parsecs BankAccount/carol balance
expect_in "$TMP/err" "want a duration" "the duration error says what it wants"
expect_status 2 "payload twice" "$MP" call -c "$C" -f "$TMP/payload.json" BankAccount/carol deposit '{}'
expect_status 2 "unknown flag" "$MP" call -c "$C" --frobnicate BankAccount/carol balance
expect_in "$TMP/err" "unknown option '--frobnicate'" "the unknown flag is named"
expect_status 2 "stats: unknown flag" "$MP" stats -c "$C" --node 1 --frobnicate
pass "call/stats: -c, -t 2s, -f FILE, -f - (stdin), and clear usage errors (exit 2)"

# Stats from every node; exactly one node hosts alice, one hosts bob.
hosts_alice=0
total=0
for a in $ADDR1 $ADDR2 $ADDR3; do
    expect_status 0 "stats $a" "$MP" stats --cluster "$C" --node "$a"
    expect_in "$TMP/out" "\"addr\": \"$a\"" "stats names the node"
    expect_in "$TMP/out" '"activations_total"' "stats counters"
    n=$(sed -n 's/.*"BankAccount": \([0-9]*\).*/\1/p' "$TMP/out")
    total=$((total + ${n:-0}))
done
[ "$total" = 3 ] || fail "expected 3 BankAccount activations in the cluster (alice, bob, carol), got $total"
expect_status 2 "stats of a non-member" "$MP" stats --cluster "$C" --node 127.0.0.1:1
pass "stats: every node answers; 3 activations in total (single activation)"

# Graceful restart of node 2: exit 0, back with incarnation 2, still serving.
stop_node "$PID2"
[ "$STOP_STATUS" = 0 ] || fail "node 2 exit status $STOP_STATUS after SIGTERM"
start_node "$TMP/node2.conf" "$TMP/node2.log" 2; PID2=$NODE_PID
wait_log "$TMP/node2.log" "moonpool node ready:.*incarnation=2 " 1 "$PID2" 20 || fail "node 2 restart"
expect_status 0 "balance after restart" "$MP" call --cluster "$C" BankAccount/alice balance
expect_in "$TMP/out" '"balance":' "balance after restart"
pass "graceful restart: exit 0, incarnation 2, calls still served"

stop_all $PID1 $PID2 $PID3
pass "SIGTERM: every node exits 0"
