#!/bin/bash
# Cluster test (issue 13): a member killed for good never takes its actors
# with it. Three nodes in table mode share one SQLite file (heartbeat 200ms,
# peer_timeout 1s: lease 500ms), 30 BankAccount actors get one deposit
# each, one node is SIGKILLed and never restarted, then every account is
# polled with `moonpool call` until all answer, each with its deposit. The
# 60 s give-up only bounds the test; the measured failover time (kill to
# the end of the round in which the last account answered) is printed, not
# asserted (the machine is shared). The victim must have hosted some of
# the accounts, or the test would show nothing.
set -u
. "$(dirname "$0")/lib.sh" "${1:-}"

N=30
start_table_cluster 3
for a in $TABLE_ADDRS; do
    wait_member "$TMP/node1.conf" "$a" 1 active 30 || fail "$a never active in the table: $(member_rows "$TMP/node1.conf")"
done
pass "3 nodes active in the table"

C=$TMP/node1.conf
deposit() { call_bg "$2" -c "$C" -t 5s "BankAccount/f$1" deposit "{\"op\":\"d$1\",\"amount\":$1}"; }
deposited() {
    [ "$(cat "$2.st" 2>/dev/null)" = 0 ] || return 1
    has_balance "$2" "$1" || fail "deposit $1 answered $(cat "$2")"
}
until_all 60 deposit deposited $(seq 1 $N) || fail "deposits not acknowledged: $UNTIL_LEFT ($(cat "$TMP/call.${UNTIL_LEFT%% *}.err"))"
pass "$N deposits acknowledged"

victim=$(bank_activations "$C" "$ADDR3")
[ "${victim:-0}" -gt 0 ] || fail "node 3 hosts no account (stats: '${victim}'): nothing to fail over"

kill -KILL "$PID3"
t0=$(now_ms)
wait "$PID3" 2>/dev/null || true
balance() { call_bg "$2" -c "$C" -t 1s "BankAccount/f$1" balance; }
intact() {
    [ "$(cat "$2.st" 2>/dev/null)" = 0 ] || return 1
    has_balance "$2" "$1" || fail "account f$1 answered $(cat "$2") after the failover, its deposit was $1"
}
until_all 60 balance intact $(seq 1 $N) ||
    fail "accounts still unavailable 60 s after the kill: $UNTIL_LEFT ($(cat "$TMP/call.${UNTIL_LEFT%% *}.err"))"
t1=$(now_ms)
echo "failover: node 3 hosted $victim of $N accounts; all $N answered with their deposit $((t1 - t0)) ms after SIGKILL ($UNTIL_ROUNDS rounds of calls, 1 s call timeout)"
wait_member "$C" "$ADDR3" 1 dead 30 || fail "the killed node is not dead in the table: $(member_rows "$C")"
pass "every account callable again with its balance; the killed member is dead in the table"

stop_all "$PID1" "$PID2"
pass "the survivors exit 0 on SIGTERM"
