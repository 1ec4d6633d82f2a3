#!/bin/bash
# Cluster test: the demo leaves no process behind when it is stopped from
# outside. SIGINT (Ctrl-C) mid-workload: it stops its nodes in order and
# exits 1. SIGKILL (no chance to clean up): the kernel's parent-death
# signal takes its nodes down anyway.
set -u
. "$(dirname "$0")/lib.sh" "${1:-}"

nodes_left() { ps -eo args | grep -F -- "$1/node" | grep -v grep | grep -c "moonpool" || true; }

run_and_stop() {
    local sig=$1 dir=$TMP/$1 pid st=0 i
    "$MP" demo --data "$dir" --accounts 300 --ops 100000000 --seconds 100 \
        --concurrency 50 >"$TMP/$sig.out" 2>&1 &
    pid=$!
    PIDS="$PIDS $pid"
    wait_log "$TMP/$sig.out" "workload" 1 "$pid" 60 || fail "the demo did not reach its workload"
    [ "$(nodes_left "$dir")" = 3 ] || fail "expected 3 node processes before SIG$sig"
    kill -"$sig" "$pid"
    wait "$pid" 2>/dev/null || st=$?
    STATUS=$st
    # The parent-death signal and the reaping are immediate, but give the
    # kernel a bounded moment to deliver them.
    for i in $(seq 1 100); do
        [ "$(nodes_left "$dir")" = 0 ] && return 0
        sleep 0.05
    done
    ps -eo pid,args | grep -F -- "$dir/node" | grep -v grep >&2
    fail "node processes left behind after SIG$sig"
}

run_and_stop INT
[ "$STATUS" = 1 ] || { cat "$TMP/INT.out" >&2; fail "demo exit status $STATUS after SIGINT (expected 1)"; }
expect_in "$TMP/INT.out" "demo interrupted" "interrupt reported"
expect_in "$TMP/INT.out" "node 3 exited with status 0 (clean)" "nodes stopped in order"
pass "SIGINT: the demo stops its nodes cleanly and exits 1"

run_and_stop KILL
[ "$STATUS" = 137 ] || fail "demo exit status $STATUS after SIGKILL (expected 137)"
pass "SIGKILL of the demo: its nodes die with it"
