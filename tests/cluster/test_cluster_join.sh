#!/bin/bash
# Cluster test (issue 13): a member joins while a client runs. Three nodes
# in table mode (one SQLite file), a client loop depositing into accounts
# through them, then a 4th node starts whose config lists the three seeds
# plus itself (theirs do not list it). It must become active in the table,
# the three must learn it from the table (`moonpool stats --membership`
# shows it live), placement must use it (new accounts activate on it), and
# no call of the client loop may fail across the change.
set -u
. "$(dirname "$0")/lib.sh" "${1:-}"

start_table_cluster 3
for a in $TABLE_ADDRS; do
    wait_member "$TMP/node1.conf" "$a" 1 active 30 || fail "$a never active: $(member_rows "$TMP/node1.conf")"
done
C=$TMP/node1.conf

# The client loop: one deposit at a time, 10 accounts in turn, until told
# to stop; every outcome goes to loop.log.
(
    i=0
    while [ ! -e "$TMP/loop.stop" ]; do
        i=$((i + 1))
        st=0
        out=$(timeout 60 "$MP" call -c "$C" -t 10s "BankAccount/loop$((i % 10))" deposit \
              "{\"op\":\"l$i\",\"amount\":1}" 2>&1) || st=$?
        echo "$i $st $out" >>"$TMP/loop.log"
    done
) &
LOOP=$!
wait_log "$TMP/loop.log" " 0 " 5 "$LOOP" 60 || fail "the client loop did not get going: $(cat "$TMP/loop.log" 2>/dev/null)"
pass "3 nodes active, client loop running"

P4=
for attempt in 1 2 3; do
    P4=$(free_port) || fail "no free port"
    ADDR4=127.0.0.1:$P4
    # shellcheck disable=SC2086
    table_conf "$TMP/node4.conf" "$ADDR4" $TABLE_ADDRS "$ADDR4"
    start_node "$TMP/node4.conf" "$TMP/node4.log"; PID4=$NODE_PID
    wait_log "$TMP/node4.log" "moonpool node ready:" 1 "$PID4" 30 && break
    grep -q "in use" "$TMP/node4.log" || fail "node 4 did not start"
    rm -f "$TMP/node4.log"
done
wait_member "$C" "$ADDR4" 1 active 30 || fail "node 4 never active in the table: $(member_rows "$C")"
for i in 1 2 3; do
    eval "a=\$ADDR$i"
    ok=0
    for t in $(seq 1 300); do
        if timeout 30 "$MP" stats -c "$C" -n "$a" --membership >"$TMP/view" 2>&1 &&
            grep -qE "^ *$ADDR4 +1 +yes +yes" "$TMP/view"; then ok=1; break; fi
        sleep 0.1
    done
    [ $ok = 1 ] || { cat "$TMP/view" >&2; fail "node $i never listed $ADDR4 as live and active"; }
done
pass "node 4 joined: active in the table, live and active in the view of nodes 1-3"

N=40
deposit() { call_bg "$2" -c "$C" -t 10s "BankAccount/new$1" deposit "{\"op\":\"n$1\",\"amount\":$1}"; }
deposited() {
    [ "$(cat "$2.st" 2>/dev/null)" = 0 ] || return 1
    has_balance "$2" "$1" || fail "new account $1 answered $(cat "$2")"
}
until_all 60 deposit deposited $(seq 1 $N) || fail "new accounts not served: $UNTIL_LEFT"
on4=$(bank_activations "$TMP/node4.conf" "$ADDR4")
echo "placement: node 4 hosts ${on4:-?} accounts after $N new ones"
[ "${on4:-0}" -gt 0 ] || fail "node 4 hosts no account after $N new ones: placement ignores it"
pass "placement uses the new node ($on4 of $N new accounts)"

touch "$TMP/loop.stop"
wait "$LOOP" 2>/dev/null || true
calls=$(wc -l <"$TMP/loop.log")
bad=$(awk '$2 != 0' "$TMP/loop.log" | head -n 5)
[ -z "$bad" ] || fail "client calls failed across the join: $bad"
sum=0
for k in $(seq 0 9); do
    expect_status 0 "balance loop$k" "$MP" call -c "$C" -t 10s "BankAccount/loop$k" balance
    b=$(sed -n 's/.*"balance":\([0-9]*\).*/\1/p' "$TMP/out")
    sum=$((sum + ${b:-0}))
done
[ "$sum" = "$calls" ] || fail "the loop's $calls acknowledged deposits add up to $sum"
pass "the client loop: $calls calls across the join, none failed, all $calls deposits present"

stop_all "$PID1" "$PID2" "$PID3" "$PID4"
pass "every node exits 0 on SIGTERM"
