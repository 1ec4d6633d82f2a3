#!/bin/bash
# Cluster test: at most once with real processes (the counterpart of the
# simulator's exec workload, workloads/exec_record.c).
#
# 3 node processes share one SQLite file; `moonpool journal-load` keeps 16
# appends of unique op ids in flight over 20 Journal actors (a type that
# does NOT deduplicate: a call executed twice is an op id stored twice) and
# records each call's status, while this script, in turn: SIGKILLs a node
# and restarts it, SIGTERMs one and restarts it, SIGSTOPs one for 3 s
# (longer than peer_timeout 1 s) then SIGCONTs it, and, where iptables
# works, cuts one node's port on loopback for 3 s (at 2, 7, 12 and 18 s of
# load; LOAD_SECONDS, default 24, in all). After each fault it waits
# for the load to make progress again. Then the load stops, every call
# ends, the stored journals are read until two reads agree, and:
#   - no op id is stored twice (across keys too), and none is stored that
#     the client never sent, or under another key;
#   - every op acknowledged MP_OK is stored exactly once;
#   - every op whose error means "not executed" (include/moonpool/node.h)
#     is stored zero times; "may have executed" (MP_EINDOUBT, MP_ETIMEDOUT,
#     ...) allows 0 or 1.
set -u
. "$(dirname "$0")/lib.sh" "${1:-}"
T0=$(date +%s)

start_cluster() {
    local attempt i pid
    for attempt in 1 2 3; do
        P1=$(free_port) && P2=$(free_port) && P3=$(free_port) || fail "no free ports"
        [ "$P1" != "$P2" ] && [ "$P2" != "$P3" ] && [ "$P1" != "$P3" ] || continue
        ADDR1=127.0.0.1:$P1 ADDR2=127.0.0.1:$P2 ADDR3=127.0.0.1:$P3
        for i in 1 2 3; do
            cat >"$TMP/node$i.conf" <<EOF
[cluster]
namespace = amo
members = $ADDR1, $ADDR2, $ADDR3

[node]
data_dir = $TMP/n$i
log_level = info

[storage]
provider = sqlite
path = $TMP/state.db

[timeouts]
call = 3s
shutdown = 5s
heartbeat = 200ms
peer_timeout = 1s
EOF
        done
        for i in 1 2 3; do
            start_node "$TMP/node$i.conf" "$TMP/node$i.log" "$i"
            eval "PID$i=\$NODE_PID"
        done
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

# restart I: start node I again, wait for its next ready line.
restart() {
    local i=$1 n
    n=$(grep -c "moonpool node ready:" "$TMP/node$i.log")
    start_node "$TMP/node$i.conf" "$TMP/node$i.log" "$i"
    eval "PID$i=\$NODE_PID"
    wait_log "$TMP/node$i.log" "moonpool node ready:" $((n + 1)) "$NODE_PID" 20 ||
        fail "node $i did not come back after its restart"
}

# progress N: wait until the load recorded N more outcomes (the cluster
# serves again after a fault), bounded.
progress() {
    local want=$(($(wc -l <"$TMP/ops") + $1))
    wait_log "$TMP/ops" "." "$want" "$LOAD" 30 || fail "the load made no progress (${2:-})"
}

# at SECS: let the load run until SECS seconds after it started, so the
# faults are spread over the run (a schedule, not a wait for an event).
at() {
    while [ $(($(date +%s) - LOAD_T0)) -lt "$1" ]; do
        kill -0 "$LOAD" 2>/dev/null || fail "the load client ended early"
        sleep 0.2
    done
}

start_cluster
pass "3 nodes ready (shared SQLite, heartbeat 200ms, peer_timeout 1s)"

C="$TMP/node1.conf"
"$MP" journal-load --cluster "$C" --out "$TMP/ops" --seconds 90 --concurrency 16 \
    --keys 20 --timeout 3000 >"$TMP/load.log" 2>&1 &
LOAD=$!
PIDS="$PIDS $LOAD"
LOAD_T0=$(date +%s)
wait_log "$TMP/load.log" "journal-load: started" 1 "$LOAD" 20 || fail "the load client did not start"
progress 200 "start"

# Fault 1: SIGKILL node 2, restart it at once.
at 2
kill -KILL "$PID2"; wait "$PID2" 2>/dev/null
echo "fault: SIGKILL node 2 ($(wc -l <"$TMP/ops") ops so far)"
restart 2
progress 200 "after SIGKILL + restart"

# Fault 2: SIGTERM node 3 (graceful), restart it.
at 7
echo "fault: SIGTERM node 3 ($(wc -l <"$TMP/ops") ops so far)"
stop_node "$PID3"
[ "$STOP_STATUS" = 0 ] || fail "node 3 exit status $STOP_STATUS after SIGTERM under load"
restart 3
progress 200 "after SIGTERM + restart"

# Fault 3: SIGSTOP node 1 for longer than peer_timeout. The 3 s are the
# fault's length, not a wait for something to happen.
at 12
echo "fault: SIGSTOP node 1 for 3 s ($(wc -l <"$TMP/ops") ops so far)"
kill -STOP "$PID1"
sleep 3
kill -CONT "$PID1"
progress 200 "after SIGSTOP/SIGCONT"

# Fault 4: cut node 2's port on loopback for 3 s (root + iptables only).
if [ "$(id -u)" = 0 ] && command -v iptables >/dev/null 2>&1 && iptables -L -n >/dev/null 2>&1; then
    # Dropped, not rejected: the peers see silence, as with a pulled cable.
    RULE_IN="INPUT -i lo -p tcp --dport $P2 -j DROP"
    RULE_OUT="INPUT -i lo -p tcp --sport $P2 -j DROP"
    drop_rules() {
        while iptables -D $RULE_IN 2>/dev/null; do :; done
        while iptables -D $RULE_OUT 2>/dev/null; do :; done
    }
    EXTRA_CLEANUP=drop_rules # removed on every exit path (lib.sh cleanup)
    at 18
    echo "fault: iptables DROP of port $P2 for 3 s ($(wc -l <"$TMP/ops") ops so far)"
    iptables -A $RULE_IN || fail "iptables -A $RULE_IN"
    iptables -A $RULE_OUT || fail "iptables -A $RULE_OUT"
    sleep 3
    drop_rules
    progress 200 "after the partition"
else
    echo "notice: iptables not usable here (not root, not installed or no permission): partition fault skipped"
fi

# Keep the load going for LOAD_SECONDS in all (the faults take less when
# the cluster recovers quickly), then stop it: it starts nothing new and waits for every call to end
# (each bounded by its 3 s timeout).
at "${LOAD_SECONDS:-24}"
echo "stopping the load after $(($(date +%s) - LOAD_T0)) s ($(wc -l <"$TMP/ops") ops)"
kill -TERM "$LOAD"
st=0
for i in $(seq 1 400); do kill -0 "$LOAD" 2>/dev/null || break; sleep 0.05; done
kill -0 "$LOAD" 2>/dev/null && fail "the load client did not stop within 20 s"
wait "$LOAD" || st=$?
[ "$st" = 0 ] || fail "load client exit status $st"
cat "$TMP/load.log"

# Settle: a request still in flight somewhere could start its turn until its
# deadline plus about two heartbeats; read until two reads agree (bounded).
prev=""
for i in $(seq 1 20); do
    "$MP" journal-load --cluster "$C" --list --keys 20 >"$TMP/stored" 2>"$TMP/list.err" ||
        { cat "$TMP/list.err" >&2; fail "cannot read the journals back"; }
    cur=$(sort "$TMP/stored" | md5sum)
    [ "$cur" = "$prev" ] && break
    prev=$cur
    sleep 0.5
done
[ "$cur" = "$prev" ] || fail "the stored journals kept changing after the load ended"

# The verdict. ops: "op key STATUS [sync]"; stored: "key op".
awk -v OPS="$TMP/ops" '
BEGIN {
    n = split("MP_EUNAVAIL MP_EQUEUEFULL MP_EINVAL MP_ENOTYPE MP_ENOMETHOD MP_ETOOBIG " \
              "MP_EACTIVATION MP_EDEADLOCK MP_EFORWARDS MP_ENAMESPACE MP_EVERSION", a, " ")
    for (i = 1; i <= n; i++) notexec[a[i]] = 1
    while ((getline line < OPS) > 0) {
        split(line, f, " ")
        if (f[1] in st) { print "BAD: op " f[1] " recorded twice by the client"; bad++ }
        ops++
        st[f[1]] = f[3]; key[f[1]] = f[2]
        if (f[3] == "MP_OK") { ok++; cls[f[1]] = "ok" }
        else if ((f[3] in notexec) || (f[4] == "sync" && (f[3] == "MP_ECLOSED" || f[3] == "MP_ENOMEM"))) {
            ne++; cls[f[1]] = "ne"
        } else { doubt++; cls[f[1]] = "doubt" }
        byst[f[3] (f[4] == "sync" ? "(sync)" : "")]++
    }
}
{
    stored++; cnt[$2]++
    if (!($2 in st)) { print "BAD: stored op " $2 " (key " $1 ") was never sent"; bad++ }
    else if (key[$2] != $1) { print "BAD: op " $2 " sent to " key[$2] " stored under " $1; bad++ }
}
END {
    for (o in cnt) if (cnt[o] > 1) { dups++; print "BAD: op " o " stored " cnt[o] " times (status " st[o] ")"; bad++ }
    for (o in cls) {
        c = (o in cnt) ? cnt[o] : 0
        if (cls[o] == "ok" && c != 1) { print "BAD: op " o " acknowledged MP_OK but stored " c " times"; bad++ }
        if (cls[o] == "ne" && c != 0) { print "BAD: op " o " answered " st[o] " (not executed) but stored " c " times"; bad++ }
        if (cls[o] == "doubt" && c == 1) doubt_stored++
    }
    printf "ops %d, ok %d, in doubt %d (%d of them stored), not executed %d, stored %d, duplicates %d\n",
           ops, ok, doubt, doubt_stored, ne, stored, dups
    printf "statuses:"; for (s in byst) printf " %s=%d", s, byst[s]; printf "\n"
    if (ops < 1000 || ok < 500) { print "BAD: too little load to mean anything"; bad++ }
    exit bad ? 1 : 0
}' "$TMP/stored" >"$TMP/verdict" || { cat "$TMP/verdict"; fail "at most once violated (see BAD lines)"; }
cat "$TMP/verdict"
pass "at most once held under SIGKILL, SIGTERM, SIGSTOP$([ -n "$EXTRA_CLEANUP" ] && echo ", partition")"

stop_all $PID1 $PID2 $PID3
pass "SIGTERM: every node exits 0 ($(($(date +%s) - T0)) s in all)"
