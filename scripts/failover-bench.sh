#!/bin/bash
# Failover time of a real member, and the database load of membership
# (issue 13). Not part of `make test` (minutes, and a measurement).
#
#   scripts/failover-bench.sh [path/to/moonpool] [KILLS]
#   CALL_TIMEOUT=20s SETTINGS=tuned scripts/failover-bench.sh ...
#
# For each of two settings, default timeouts (heartbeat 1s, peer_timeout
# 10s: lease 5s) and tuned ones (heartbeat 200ms, peer_timeout 1s: lease
# 500ms): 3 nodes in table mode on one SQLite file; first the membership
# agent's table reads and writes per node per second over 10 quiet seconds
# (the stats' membership.table_reads / table_writes); then KILLS times
# (default 20): deposit into 30 fresh accounts, SIGKILL a member that hosts
# some of them (the nodes in turn), and poll all 30 with `moonpool call`
# (rounds of parallel calls, CALL_TIMEOUT each, default 1s as in
# cluster.failover; give up after 120 s) until each answers with its
# deposit; the time from the kill to the end of that
# round is one failover time (it includes starting the `moonpool call`
# processes, tens of ms; a longer CALL_TIMEOUT leaves the waiting to the
# client's own retries, and measured longer: see docs/membership.md).
# SETTINGS: which settings to run (default "default tuned"). The killed member is then restarted (a new
# incarnation: a new member) so that the cluster keeps 3. Prints every
# time, then p50 and max per setting.
#
# Uses the cluster tests' helpers (tests/cluster/lib.sh).
set -u
here=$(cd "$(dirname "$0")" && pwd)
MPBIN=${1:-$here/../build/moonpool}
KILLS=${2:-20}
. "$here/../tests/cluster/lib.sh" "$MPBIN"

N=30
CALL_TIMEOUT=${CALL_TIMEOUT:-1s}
deposit() { call_bg "$2" -c "$C" -t 10s "BankAccount/$ROUND-$1" deposit "{\"op\":\"d$1\",\"amount\":$1}"; }
balance() { call_bg "$2" -c "$C" -t "$CALL_TIMEOUT" "BankAccount/$ROUND-$1" balance; }
answered() {
    [ "$(cat "$2.st" 2>/dev/null)" = 0 ] || return 1
    has_balance "$2" "$1" || fail "$ROUND-$1 answered $(cat "$2"), its deposit was $1"
}
counter() { # counter STATS_FILE NAME
    sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p" "$1" | head -n 1
}

run_setting() {
    local name=$1 i k victim on t0 t1 inc
    rm -rf "$TMP"/node*.log "$TMP"/cluster.db* "$TMP"/d_* "$TMP"/call.*
    start_table_cluster 3
    for a in $TABLE_ADDRS; do
        wait_member "$TMP/node1.conf" "$a" 1 active 60 || fail "$a never active"
    done
    C=$TMP/node1.conf
    # Database load: two samples of every node's counters, 10 s apart.
    for i in 1 2 3; do eval "timeout 30 \"$MP\" stats -c \"$C\" -n \"\$ADDR$i\" --raw >\"$TMP/s0.$i\""; done
    t0=$(now_ms)
    sleep 10
    for i in 1 2 3; do eval "timeout 30 \"$MP\" stats -c \"$C\" -n \"\$ADDR$i\" --raw >\"$TMP/s1.$i\""; done
    t1=$(now_ms)
    for i in 1 2 3; do
        local r0 r1 w0 w1 c0 c1
        r0=$(counter "$TMP/s0.$i" table_reads); r1=$(counter "$TMP/s1.$i" table_reads)
        w0=$(counter "$TMP/s0.$i" table_writes); w1=$(counter "$TMP/s1.$i" table_writes)
        c0=$(counter "$TMP/s0.$i" table_conflicts); c1=$(counter "$TMP/s1.$i" table_conflicts)
        awk -v n="$name" -v i="$i" -v r=$((r1 - r0)) -v w=$((w1 - w0)) -v c=$((c1 - c0)) \
            -v ms=$((t1 - t0)) 'BEGIN { printf "%s: node %d: %.1f table reads/s, %.1f table writes/s, %.1f conflicts/s (over %.1f s)\n", n, i, r * 1000 / ms, w * 1000 / ms, c * 1000 / ms, ms / 1000 }'
    done

    : >"$TMP/times.$name"
    for k in $(seq 1 "$KILLS"); do
        ROUND="$name$k"
        until_all 120 deposit answered $(seq 1 $N) || fail "deposits of round $k: $UNTIL_LEFT"
        # The victim: the next node in turn that hosts some of them.
        victim=""
        for i in $(( (k - 1) % 3 + 1 )) $(( k % 3 + 1 )) $(( (k + 1) % 3 + 1 )); do
            eval "on=\$(bank_activations \"\$C\" \"\$ADDR$i\")"
            if [ "${on:-0}" -gt 0 ]; then victim=$i; break; fi
        done
        [ -n "$victim" ] || fail "round $k: no node reports activations"
        eval "pid=\$PID$victim; addr=\$ADDR$victim"
        kill -KILL "$pid"
        t0=$(now_ms)
        wait "$pid" 2>/dev/null
        until_all 120 balance answered $(seq 1 $N) || fail "round $k: not callable after 120 s: $UNTIL_LEFT"
        t1=$(now_ms)
        echo "$name: kill $k: node $victim ($addr, $on BankAccount activations): all $N callable after $((t1 - t0)) ms ($UNTIL_ROUNDS rounds of $CALL_TIMEOUT calls)"
        echo $((t1 - t0)) >>"$TMP/times.$name"
        # Back as a new member (next incarnation), active before the next kill.
        local ready
        ready=$(grep -c "moonpool node ready:" "$TMP/node$victim.log")
        start_node "$TMP/node$victim.conf" "$TMP/node$victim.log"
        eval "PID$victim=$NODE_PID"
        wait_log "$TMP/node$victim.log" "moonpool node ready:" $((ready + 1)) "$NODE_PID" 60 ||
            fail "restart of node $victim"
        inc=$(sed -n 's/.*moonpool node ready: .*incarnation=\([0-9]*\) .*/\1/p' "$TMP/node$victim.log" | tail -n 1)
        wait_member "$C" "$addr" "$inc" active 60 || fail "node $victim incarnation $inc never active"
    done
    sort -n "$TMP/times.$name" | awk -v n="$name" '{ t[NR] = $1 } END {
        printf "%s: %d kills: failover p50 %d ms, max %d ms\n", n, NR, t[int((NR + 1) / 2)], t[NR] }' |
        tee -a "$TMP/summary"
    stop_all $PID1 $PID2 $PID3
}

for s in ${SETTINGS:-default tuned}; do
    case $s in
    default) TABLE_HEARTBEAT="" TABLE_PEER_TIMEOUT="" run_setting default ;;
    tuned) TABLE_HEARTBEAT=200ms TABLE_PEER_TIMEOUT=1s run_setting tuned ;;
    *) echo "$0: unknown setting '$s' (default, tuned)" >&2; exit 2 ;;
    esac
done
echo "summary:"
cat "$TMP/summary"
