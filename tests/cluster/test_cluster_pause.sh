#!/bin/bash
# Cluster test (issue 13): a node paused (SIGSTOP) longer than its lease
# serves nothing stale when it wakes, and rejoins with a new incarnation.
# Three nodes in table mode (one SQLite file, lease 500ms); 30 accounts get
# 10 each; node 3 (hosting some of them) is stopped; every account then
# gets 5 more through nodes 1 and 2, which can only happen once node 3 was
# declared dead and its accounts taken over. Balance calls through every
# node right after SIGCONT: any answer must be 15, never the stale 10. Node 3 then learns it is dead, restarts itself in the same process
# (re-exec) as incarnation 2, the table shows incarnation 1 dead and 2
# active, and through node 3 every account answers 15.
set -u
. "$(dirname "$0")/lib.sh" "${1:-}"

N=30
start_table_cluster 3
for a in $TABLE_ADDRS; do
    wait_member "$TMP/node1.conf" "$a" 1 active 30 || fail "$a never active: $(member_rows "$TMP/node1.conf")"
done
C=$TMP/node1.conf
table_conf "$TMP/via12.conf" - "$ADDR1" "$ADDR2"   # clients: gateways 1 and 2
table_conf "$TMP/via3.conf" - "$ADDR3"             # client: gateway 3 only

AMOUNT=10
deposit() { call_bg "$2" -c "$DEP_CONF" -t 5s "BankAccount/p$1" deposit "{\"op\":\"$DEP_OP$1\",\"amount\":$AMOUNT}"; }
balance() { call_bg "$2" -c "$BAL_CONF" -t 5s "BankAccount/p$1" balance; }
# An answer must be the expected balance; errors mean "not yet".
answers() {
    [ "$(cat "$2.st" 2>/dev/null)" = 0 ] || return 1
    has_balance "$2" "$WANT" || fail "account p$1 answered $(cat "$2") through $BAL_CONF, expected balance $WANT (a stale read or a lost deposit)"
}
DEP_CONF=$C DEP_OP=a WANT=10 BAL_CONF=$C
until_all 60 deposit answers $(seq 1 $N) || fail "first deposits not acknowledged: $UNTIL_LEFT"
on3=$(bank_activations "$C" "$ADDR3")
[ "${on3:-0}" -gt 0 ] || fail "node 3 hosts no account (stats: '$on3'): nothing would be stale"
pass "$N accounts at 10, node 3 hosts $on3 of them"

kill -STOP "$PID3"
t0=$(now_ms)
AMOUNT=5 DEP_CONF=$TMP/via12.conf DEP_OP=b WANT=15 BAL_CONF=$TMP/via12.conf
until_all 60 deposit answers $(seq 1 $N) ||
    fail "deposits through nodes 1-2 while node 3 is stopped: $UNTIL_LEFT ($(cat "$TMP/call.${UNTIL_LEFT%% *}.err"))"
echo "pause: every account took its second deposit $(($(now_ms) - t0)) ms after SIGSTOP"
wait_member "$C" "$ADDR3" 1 dead 30 || fail "stopped node 3 not dead in the table: $(member_rows "$C")"
pass "node 3 stopped past its lease: declared dead, its accounts taken over and at 15"

# Reads through every node right after SIGCONT. (Calls sent through node 3
# while it is stopped never reach it: the client finds the gateway
# unreachable when its handshake gets no answer. The woken node learns it
# is dead from its first table read, within a millisecond of waking here,
# so the moment between is covered by unit.test_membership_node's
# test_pause_past_lease in the simulator.)
WANT=15
kill -CONT "$PID3"
for k in $(seq 1 $N); do
    call_bg "$TMP/woke.$k" -c "$TMP/via12.conf" -t 5s "BankAccount/p$k" balance
    call_bg "$TMP/woke3.$k" -c "$TMP/via3.conf" -t 5s "BankAccount/p$k" balance
done
wait_calls
served=0
for k in $(seq 1 $N); do
    for f in "$TMP/woke.$k" "$TMP/woke3.$k"; do
        if [ "$(cat "$f.st")" = 0 ]; then
            has_balance "$f" 15 || fail "p$k answered $(cat "$f") right after node 3 woke: stale"
            served=$((served + 1))
        fi
    done
done
echo "pause: right after SIGCONT, $served of $((2 * N)) reads through nodes 1-2 and node 3 answered (all 15), the others failed (not served)"
pass "nothing stale right after the wake"

wait_log "$TMP/node3.log" "declared dead by the cluster \(paused or cut off past its lease\): restarting with a new incarnation" 1 "$PID3" 30 ||
    fail "node 3 never logged that it was declared dead"
wait_log "$TMP/node3.log" "moonpool node ready: address=$ADDR3 .*incarnation=2 .*pid=$PID3\$" 1 "$PID3" 30 ||
    fail "node 3 did not come back as incarnation 2 in the same process"
wait_member "$C" "$ADDR3" 2 active 30 || fail "incarnation 2 never active: $(member_rows "$C")"
wait_member "$C" "$ADDR3" 1 dead 1 || fail "incarnation 1 not listed dead: $(member_rows "$C")"
pass "node 3 rejoined: re-executed as incarnation 2 (same pid), the table shows 1 dead and 2 active"

BAL_CONF=$TMP/via3.conf
until_all 60 balance answers $(seq 1 $N) || fail "through the rejoined node 3: $UNTIL_LEFT"
pass "through the rejoined node 3 every account answers 15"

stop_all "$PID1" "$PID2" "$PID3"
pass "every node exits 0 on SIGTERM"
