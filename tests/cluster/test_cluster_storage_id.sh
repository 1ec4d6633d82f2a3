#!/bin/bash
# Cluster test (issue 12): the SQLite database's identity. Two nodes share
# one SQLite file. The database carries a random cluster id; each node
# records it in its data dir (storage-id.<address>) at its first start.
#   1. A normal restart finds its database: state kept.
#   2. Deleting the database files under the running nodes is noticed: the
#      next call that persists fails, and the node logs an error, instead
#      of writing into the unlinked file.
#   3. A restarted node refuses to start (exit 1, a message naming the
#      file and the recorded id) and creates no empty database.
#   4. --new-storage creates an empty database; the other node, still
#      recording the old id, refuses it until told the same.
set -u
. "$(dirname "$0")/lib.sh" "${1:-}"

start_cluster() {
    local attempt i ok pid
    for attempt in 1 2 3; do
        P1=$(free_port) && P2=$(free_port) || fail "no free ports"
        [ "$P1" != "$P2" ] || continue
        ADDR1=127.0.0.1:$P1 ADDR2=127.0.0.1:$P2
        for i in 1 2; do
            cat >"$TMP/node$i.conf" <<EOF
[cluster]
namespace = sid
members = $ADDR1, $ADDR2

[node]
data_dir = $TMP/n$i
log_level = info

[storage]
provider = sqlite
path = $TMP/db/state.db

[timeouts]
call = 10s
shutdown = 5s
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

# restart I [FLAGS...]: start node I again (same ports) and wait for ready.
restart() {
    local i=$1 pid before
    shift
    # Counted before the start: a node that is ready at once must not be
    # counted in "before" (the wait would then look for one line too many).
    before=$(grep -c "moonpool node ready:" "$TMP/node$i.log")
    $PDEATH "$MP" node --config "$TMP/node$i.conf" --id "$i" "$@" >>"$TMP/node$i.log" 2>&1 &
    pid=$!
    PIDS="$PIDS $pid"
    eval "PID$i=$pid"
    wait_log "$TMP/node$i.log" "moonpool node ready:" $((before + 1)) "$pid" 20 ||
        fail "node $i did not restart"
}

start_cluster
C="$TMP/node1.conf"
for i in 1 2; do
    [ -f "$TMP/n$i/storage-id.127.0.0.1_$(eval echo \$P$i)" ] || fail "node $i recorded no storage id"
done
ID=$(cat "$TMP/n1/storage-id.127.0.0.1_$P1")
[ "$ID" = "$(cat "$TMP/n2/storage-id.127.0.0.1_$P2")" ] || fail "the two nodes recorded different ids"
echo "cluster database id $ID"
for k in a b c d; do
    expect_status 0 "deposit $k" "$MP" call --cluster "$C" "BankAccount/$k" deposit "{\"op\":\"d-$k\",\"amount\":7}"
done
pass "first start: both nodes recorded database $ID (no flag needed)"

# 1. A normal restart.
stop_all $PID1 $PID2
restart 1
restart 2
expect_status 0 "balance after restart" "$MP" call --cluster "$C" BankAccount/a balance
expect_in "$TMP/out" '{"balance":7}' "state kept across a restart"
pass "restart on the recorded database: state kept"

# 2. Delete the database files under the running nodes.
rm -f "$TMP/db/state.db" "$TMP/db/state.db-wal" "$TMP/db/state.db-shm"
expect_status 1 "a deposit to an active actor after the files were deleted" \
    "$MP" call --cluster "$C" BankAccount/a deposit '{"op":"d-a2","amount":1}'
cat "$TMP/err"
expect_status 1 "a deposit to a new activation after the files were deleted" \
    "$MP" call --cluster "$C" BankAccount/b deposit '{"op":"d-b2","amount":1}'
cat "$TMP/err"
deleted_logged=0
for i in 1 2; do
    grep -q "was deleted or replaced while the node ran" "$TMP/node$i.log" && deleted_logged=1
done
[ $deleted_logged = 1 ] || fail "no node logged the deleted database"
[ ! -e "$TMP/db/state.db" ] || fail "a running node created a new database file"
grep -h "deleted or replaced while the node ran" "$TMP"/node*.log | head -1
pass "a running node notices the deleted database: the persisting call fails, an error is logged"

# 3. A restart refuses to serve empty state.
stop_node $PID1
stop_node $PID2
PIDS=""
expect_status 1 "restart on a deleted database" "$MP" node --config "$TMP/node1.conf" --id 1
cat "$TMP/err"
expect_in "$TMP/err" "the SQLite database '$TMP/db/state.db' is missing, but this node ran on cluster database $ID" "missing database message"
expect_in "$TMP/err" "--new-storage" "the message names the way out"
[ ! -e "$TMP/db/state.db" ] || fail "the refused start created a database"
pass "restart on a deleted database: exit 1 with a clear message, nothing created"

# 4. --new-storage begins an empty database; node 2 refuses it until told.
restart 1 --new-storage
NEW=$(cat "$TMP/n1/storage-id.127.0.0.1_$P1")
[ "$NEW" != "$ID" ] || fail "--new-storage kept the old id"
expect_status 1 "node 2 on the new database" "$MP" node --config "$TMP/node2.conf" --id 2
cat "$TMP/err"
expect_in "$TMP/err" "holds cluster database $NEW, but this node ran on $ID" "other database message"
restart 2 --new-storage
expect_status 0 "balance on the new database" "$MP" call --cluster "$C" BankAccount/a balance
expect_in "$TMP/out" '{"balance":0}' "the new database is empty"
pass "--new-storage: a new database ($NEW), accepted node by node"
stop_all $PID1 $PID2
