#!/bin/bash
# Cluster test (issue 12): the bounded resources of a node, shown on real
# processes by raw-socket clients (tests/cluster/rawclient.py) that
# misbehave as no moonpool program would. Two nodes on 127.0.0.1 with one
# SQLite file (a one-member node opens no transport). One mode per run:
#
#   noread   a client sends requests and never reads a reply: the output
#            buffer limit cuts it (stats output_limit_closes), the node's
#            VmRSS stays under RSS_BOUND_KB, and the node still serves; the
#            client comes back NOREAD_ROUNDS times (default 3);
#   idle     1,100 idle sockets to each node (more than max_handshakes,
#            1024; both nodes, or the call would simply fail over to the
#            other): a real `moonpool call` still succeeds (slot eviction:
#            stats handshakes_evicted);
#   slow     a frame trickled a byte at a time after the handshake is
#            closed by [timeouts] frame (1s here) before it is whole
#            (stats slow_frames);
#   mailbox  50,000 deposits to one actor with [limits] max_mailbox 64:
#            the excess ends MP_EQUEUEFULL and did not run (the balance is
#            the number of OK replies), stats mailbox_rejected counts it.
#
# Every wait is for an event (a log line, the connection closing, the
# replies), bounded; the figures printed are for the record.
set -u
. "$(dirname "$0")/lib.sh" "${1:-}"
MODE=${2:?usage: test_cluster_limits.sh MOONPOOL noread|idle|slow|mailbox}
RAW="$(dirname "$0")/rawclient.py"
case $RAW in /*) ;; *) RAW=$(pwd)/$RAW ;; esac
command -v python3 >/dev/null 2>&1 || { echo "skip: no python3"; exit 77; }
RSS_BOUND_KB=$((300 * 1024))
# Under AddressSanitizer freed memory waits in a quarantine (256 MB by
# default) before reuse, which is not the node's footprint: keep it small.
if ldd "$MP" 2>/dev/null | grep -q libasan; then
    export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=16"
fi

EXTRA=""
case $MODE in
noread | idle) ;;
slow) EXTRA="[timeouts]
heartbeat = 200ms
frame = 1s" ;;
mailbox) EXTRA="[limits]
max_mailbox = 64" ;;
*) fail "unknown mode '$MODE'" ;;
esac

start_cluster() {
    local attempt i ok pid
    for attempt in 1 2 3; do
        P1=$(free_port) && P2=$(free_port) || fail "no free ports"
        [ "$P1" != "$P2" ] || continue
        ADDR1=127.0.0.1:$P1 ADDR2=127.0.0.1:$P2
        for i in 1 2; do
            cat >"$TMP/node$i.conf" <<EOF
[cluster]
namespace = lim
members = $ADDR1, $ADDR2

[node]
data_dir = $TMP/n$i
log_level = info

[storage]
provider = sqlite
path = $TMP/state.db

$EXTRA
EOF
        done
        start_node "$TMP/node1.conf" "$TMP/node1.log" 1; PID1=$NODE_PID
        start_node "$TMP/node2.conf" "$TMP/node2.log" 2; PID2=$NODE_PID
        ok=1
        for i in 1 2; do
            eval "pid=\$PID$i"
            wait_log "$TMP/node$i.log" "moonpool node ready:" 1 "$pid" 20 || ok=0
        done
        [ $ok = 1 ] && return 0
        if grep -q "in use" "$TMP"/node*.log; then
            for p in $PID1 $PID2; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
            rm -f "$TMP"/node*.log
            continue
        fi
        fail "the nodes did not become ready"
    done
    fail "could not find free ports in 3 attempts"
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# stat_of NODE KEY: one counter of `moonpool stats --raw` (top level or
# under "transport").
stat_of() {
    expect_status 0 "stats of $1" "$MP" stats --cluster "$TMP/node1.conf" --node "$1" --raw
    python3 -c 'import json,sys
o=json.load(open(sys.argv[1])); k=sys.argv[2]
print(o[k] if k in o else o.get("transport", {}).get(k, "missing"))' "$TMP/out" "$2"
}

start_cluster
C="$TMP/node1.conf"
expect_status 0 "a first call" "$MP" call --cluster "$C" BankAccount/warm deposit '{"op":"w","amount":1}'

case $MODE in
noread)
    # NOREAD_ROUNDS clients one after the other (the client comes back each
    # time it is cut); the RSS is read after each cut.
    rounds=${NOREAD_ROUNDS:-3}
    before=$(rss_kb "$PID1")
    max=0
    for r in $(seq 1 "$rounds"); do
        timeout 120 python3 "$RAW" noread "$ADDR1" lim BankAccount 20000000 >"$TMP/raw.out" 2>&1 ||
            { cat "$TMP/raw.out" >&2; fail "the never-reading client was not cut off (round $r)"; }
        after=$(rss_kb "$PID1")
        echo "round $r: $(cat "$TMP/raw.out"); node1 VmRSS ${after} kB"
        [ "$after" -gt "$max" ] && max=$after
        expect_in "$TMP/raw.out" "cut by the node" "never-reading client cut"
        wait_log "$TMP/node1.log" "does not read" "$r" "$PID1" 10 || fail "no 'does not read' log line"
        [ "$after" -lt "$RSS_BOUND_KB" ] || fail "node RSS ${after} kB over the bound"
    done
    closes=$(stat_of "$ADDR1" output_limit_closes)
    echo "node1 VmRSS before ${before} kB, max after a cut ${max} kB (bound ${RSS_BOUND_KB} kB); output_limit_closes=$closes"
    [ "$closes" -ge "$rounds" ] 2>/dev/null || fail "output_limit_closes is $closes"
    expect_status 0 "a call after the cuts" "$MP" call --cluster "$C" BankAccount/warm balance
    pass "a client that never reads is cut off ($rounds times); node RSS at most ${max} kB < ${RSS_BOUND_KB} kB"
    ;;
idle)
    mkfifo "$TMP/hold"
    python3 "$RAW" idle "$ADDR1,$ADDR2" 1100 <"$TMP/hold" >"$TMP/raw.out" 2>&1 &
    RAWPID=$!
    PIDS="$PIDS $RAWPID"
    exec 4>"$TMP/hold"
    wait_log "$TMP/raw.out" "sockets open" 1 "$RAWPID" 120 || { cat "$TMP/raw.out" >&2; fail "idle sockets not opened"; }
    # The call's connection is accepted after the 1,100 (the kernel's
    # accept queue is in order), when 1,024 idle ones hold the slots.
    expect_status 0 "moonpool call during the flood" "$MP" call --cluster "$C" BankAccount/warm balance
    expect_in "$TMP/out" '"balance":1' "call reply during the flood"
    wait_log "$TMP/node1.log" "closing the oldest" 1 "$PID1" 10 ||
        fail "the node never evicted an idle socket"
    wait_log "$TMP/node2.log" "closing the oldest" 1 "$PID2" 10 ||
        fail "node 2 never evicted an idle socket"
    e1=$(stat_of "$ADDR1" handshakes_evicted)
    e2=$(stat_of "$ADDR2" handshakes_evicted)
    exec 4>&-
    wait "$RAWPID" 2>/dev/null || true
    cat "$TMP/raw.out"
    echo "handshakes_evicted node1=$e1 node2=$e2"
    [ "$e1" -ge 76 ] && [ "$e2" -ge 76 ] 2>/dev/null ||
        fail "handshakes_evicted $e1, $e2 (expected at least 76 each)"
    pass "1,100 idle sockets to each node: moonpool call still succeeds ($e1 + $e2 evicted)"
    ;;
slow)
    timeout 60 python3 "$RAW" slow "$ADDR1" lim 100 >"$TMP/raw.out" 2>&1 ||
        { cat "$TMP/raw.out" >&2; fail "the trickled frame was not cut"; }
    cat "$TMP/raw.out"
    expect_in "$TMP/raw.out" "closed by the node" "slowloris closed"
    wait_log "$TMP/node1.log" "stayed incomplete" 1 "$PID1" 10 || fail "no 'stayed incomplete' log line"
    slow=$(stat_of "$ADDR1" slow_frames)
    echo "node1 slow_frames=$slow"
    [ "$slow" -ge 1 ] 2>/dev/null || fail "slow_frames is $slow"
    pass "a trickled frame is closed by [timeouts] frame"
    ;;
mailbox)
    timeout 600 python3 "$RAW" flood "$ADDR1" lim BankAccount/hot 50000 >"$TMP/raw.out" 2>&1 ||
        { cat "$TMP/raw.out" >&2; fail "the flood did not complete"; }
    cat "$TMP/raw.out"
    read -r ok full other <<<"$(sed -n 's/.*: \([0-9]*\) ok, \([0-9]*\) MP_EQUEUEFULL, \([0-9]*\) other.*/\1 \2 \3/p' "$TMP/raw.out")"
    [ "${full:-0}" -ge 1 ] || fail "no call was refused MP_EQUEUEFULL"
    [ "${other:-1}" = 0 ] || fail "$other calls ended with another error"
    expect_status 0 "balance" "$MP" call --cluster "$C" BankAccount/hot balance
    expect_in "$TMP/out" "{\"balance\":$ok}" "refused deposits did not run (balance = OK replies)"
    r1=$(stat_of "$ADDR1" mailbox_rejected)
    r2=$(stat_of "$ADDR2" mailbox_rejected)
    echo "mailbox_rejected node1=$r1 node2=$r2; balance $ok"
    [ $((r1 + r2)) -eq "$full" ] || fail "mailbox_rejected $r1+$r2 != $full refused replies"
    pass "50,000 deposits to one actor: $full refused MP_EQUEUEFULL, not run; $ok ran"
    ;;
esac
stop_all $PID1 $PID2
