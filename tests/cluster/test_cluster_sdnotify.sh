#!/bin/bash
# Cluster test: systemd readiness (src/host/sd_notify.c). A node started
# with NOTIFY_SOCKET sends READY=1 once it serves and STOPPING=1 when
# SIGTERM starts its graceful shutdown (contrib/systemd/moonpool@.service
# uses Type=notify); without NOTIFY_SOCKET it runs as before.
set -u
. "$(dirname "$0")/lib.sh" "${1:-}"
command -v python3 >/dev/null || { echo "skip: no python3"; exit 77; }

P=$(free_port) || fail "no free port"
cat >"$TMP/node.conf" <<EOF2
[cluster]
namespace = notify
members = 127.0.0.1:$P
[node]
address = 127.0.0.1:$P
data_dir = $TMP/n
[storage]
provider = memory
[timeouts]
shutdown = 2s
EOF2
# A stand-in for systemd: receives datagrams on the socket, one per line.
python3 - "$TMP/notify.sock" "$TMP/notified" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(60)
with open(sys.argv[2], "a", buffering=1) as out:
    while True:
        try:
            d = s.recv(4096)
        except socket.timeout:
            break
        out.write(d.decode() + "\n")
        if d == b"STOPPING=1":
            break
PY
LISTENER=$!
PIDS="$PIDS $LISTENER"
for i in $(seq 1 100); do [ -S "$TMP/notify.sock" ] && break; sleep 0.05; done
[ -S "$TMP/notify.sock" ] || fail "the stand-in socket did not appear"

NOTIFY_SOCKET="$TMP/notify.sock" start_node "$TMP/node.conf" "$TMP/node.log"
NPID=$NODE_PID
wait_log "$TMP/node.log" "moonpool node ready:" 1 "$NPID" 20 || fail "the node did not start"
wait_log "$TMP/notified" "^READY=1$" 1 "" 10 || fail "no READY=1 on NOTIFY_SOCKET"
pass "READY=1 once the node serves"
grep -q "STOPPING=1" "$TMP/notified" && fail "STOPPING=1 before any shutdown"
stop_node "$NPID"
[ "$STOP_STATUS" = 0 ] || fail "exit status $STOP_STATUS after SIGTERM"
wait_log "$TMP/notified" "^STOPPING=1$" 1 "" 10 || fail "no STOPPING=1 after SIGTERM"
pass "STOPPING=1 when SIGTERM begins the graceful shutdown; exit 0"

NOTIFY_SOCKET="relative/path" start_node "$TMP/node.conf" "$TMP/node2.log"
wait_log "$TMP/node2.log" "moonpool node ready:" 1 "$NODE_PID" 20 || fail "a bad NOTIFY_SOCKET stopped the node"
expect_in "$TMP/node2.log" "READY=1 could not be sent" "a bad NOTIFY_SOCKET is logged, not fatal"
stop_node "$NODE_PID"
pass "a NOTIFY_SOCKET that is not a socket path is logged and the node serves anyway"
