#!/bin/bash
# Cluster test: cluster authentication on real processes (docs/security.md).
#   - three nodes sharing a secret file work, and `moonpool call` / `stats`
#     with the same secret get answers;
#   - a client with another secret is refused (exit 1, MP_EAUTH), the node
#     logs why;
#   - a stranger's socket receives only the node's HELLO (no namespace, no
#     address) before it is closed;
#   - a secret file that group or others may read is refused at start
#     (exit 2, naming the path and mode); so are an empty one and a
#     non-loopback address without a secret (protected mode);
#   - max_connections_per_ip: an idle socket at the cap gives its slot to a
#     real client (eviction, logged).
set -u
. "$(dirname "$0")/lib.sh" "${1:-}"

P1=$(free_port) && P2=$(free_port) && P3=$(free_port) || fail "no free ports"
A=127.0.0.1:$P1
B=127.0.0.1:$P2
C=127.0.0.1:$P3
[ "$A" != "$B" ] && [ "$B" != "$C" ] && [ "$A" != "$C" ] || fail "port clash, rerun"

umask 077
printf 'correct horse battery staple\n' >"$TMP/secret"
printf 'another secret\n' >"$TMP/wrong"
conf() { # conf NAME SECRET_FILE [EXTRA...]
    local name=$1 secret=$2
    shift 2
    {
        printf '[cluster]\nnamespace = hushed.ns\nmembers = %s, %s, %s\n' "$A" "$B" "$C"
        printf '[node]\ndata_dir = %s/%s\n' "$TMP" "$name"
        printf '[storage]\nprovider = memory\n[timeouts]\ncall = 3s\nshutdown = 2s\n'
        [ -n "$secret" ] && printf '[security]\nsecret_file = %s\n' "$secret"
        for x in "$@"; do printf '%s\n' "$x"; done
    } >"$TMP/$name.conf"
}
conf cluster "$TMP/secret"
PIDS_UP=""
for i in 1 2 3; do
    start_node "$TMP/cluster.conf" "$TMP/n$i.log" "$i"
    PIDS_UP="$PIDS_UP $NODE_PID"
done
i=1
for p in $PIDS_UP; do
    wait_log "$TMP/n$i.log" "moonpool node ready:" 1 "$p" 20 || fail "node $i did not start"
    i=$((i + 1))
done
expect_in "$TMP/n1.log" "cluster authentication on" "start-up says authentication is on"
pass "three nodes with a shared secret are up"

for k in 1 2 3 4 5 6; do
    expect_status 0 "authenticated call $k" "$MP" call --cluster "$TMP/cluster.conf" \
        BankAccount/acct$k deposit "{\"op\":\"d$k\",\"amount\":5}"
done
expect_status 0 "authenticated stats" "$MP" stats --cluster "$TMP/cluster.conf" --node 2 --raw
expect_in "$TMP/out" '"namespace":"hushed.ns"' "stats answered"
pass "moonpool call (6 accounts over 3 nodes) and stats with the secret"

expect_status 1 "call with the wrong secret" "$MP" call --cluster "$TMP/cluster.conf" \
    --secret-file "$TMP/wrong" --timeout 2000 BankAccount/acct1 balance
expect_in "$TMP/err" "MP_EAUTH" "the client is told it was not authenticated"
sed 's/^/     /' "$TMP/err" | head -n 3
wait_log "$TMP/n1.log" "authentication failed" 1 "" 10 ||
    wait_log "$TMP/n2.log" "authentication failed" 1 "" 1 ||
    wait_log "$TMP/n3.log" "authentication failed" 1 "" 1 || fail "no node logged the failure"
grep -h "authentication failed" "$TMP"/n?.log | head -n 1 | sed 's/^/     /'
pass "a client with another secret is refused (exit 1, MP_EAUTH) and the node logs it"
counted=0
for k in 1 2 3; do
    expect_status 0 "stats of node $k" "$MP" stats --cluster "$TMP/cluster.conf" --node $k --raw
    grep -qE '"auth_failures": ?[1-9]' "$TMP/out" && counted=1
done
[ "$counted" = 1 ] || fail "no node's stats count the authentication failure"
pass "moonpool stats counts it (transport.auth_failures)"

# A stranger that connects and says nothing: what it reads before the
# node closes the socket (handshake timeout, 5 s) is the node's HELLO only.
timeout 20 bash -c "exec 3<>/dev/tcp/127.0.0.1/$P1; cat <&3" >"$TMP/raw.bin" 2>/dev/null || true
size=$(stat -c %s "$TMP/raw.bin")
[ "$size" -gt 0 ] || fail "the stranger read nothing (expected the node's HELLO)"
grep -qa "hello" "$TMP/raw.bin" || fail "no HELLO in what the stranger read"
for s in hushed "$P1" "$P2" "$P3" 127.0.0.1; do
    if grep -qaF -- "$s" "$TMP/raw.bin"; then fail "the stranger read '$s' before authenticating"; fi
done
pass "a stranger reads $size bytes (the HELLO: version, mode, nonce): no namespace, no address"

stop_all $PIDS_UP
pass "SIGTERM: all three exit 0"

# Start-up refusals.
chmod 640 "$TMP/secret"
conf bad "$TMP/secret"
expect_status 2 "group-readable secret" "$MP" node --config "$TMP/bad.conf" --id 1
expect_in "$TMP/err" "$TMP/secret' has mode 0640" "the error names the file and its mode"
sed 's/^/     /' "$TMP/err"
pass "a group-readable secret file is refused (exit 2)"
chmod 600 "$TMP/secret"
: >"$TMP/empty"
conf bad "$TMP/empty"
expect_status 2 "empty secret" "$MP" node --config "$TMP/bad.conf" --id 1
expect_in "$TMP/err" "is empty" "an empty secret is named"
pass "an empty secret file is refused (exit 2)"

PX=$(free_port) || fail "no free port"
printf '[cluster]\nnamespace = open\nmembers = 192.0.2.1:%s\n[node]\ndata_dir = %s/open\n[storage]\nprovider = memory\n' \
    "$PX" "$TMP" >"$TMP/open.conf"
expect_status 2 "non-loopback without a secret" "$MP" node --config "$TMP/open.conf" --id 1
expect_in "$TMP/err" "not a loopback address and no [security] secret_file" "protected mode says why"
sed 's/^/     /' "$TMP/err"
pass "a non-loopback address without a secret is refused (protected mode, exit 2)"

# Without a secret on loopback: runs, and says so once.
printf '[cluster]\nnamespace = open\nmembers = 127.0.0.1:%s\n[node]\ndata_dir = %s/open\n[storage]\nprovider = memory\n[timeouts]\nshutdown = 2s\n[limits]\nmax_connections_per_ip = 1\n' \
    "$PX" "$TMP" >"$TMP/open.conf"
start_node "$TMP/open.conf" "$TMP/open.log" 1; PIDO=$NODE_PID
wait_log "$TMP/open.log" "moonpool node ready:" 1 "$PIDO" 20 || fail "the open node did not start"
[ "$(grep -c "no \[security\] secret_file: loopback only" "$TMP/open.log")" = 1 ] ||
    fail "the loopback-only line is not logged exactly once"
pass "no secret on loopback: runs and logs 'loopback only' once"

# max_connections_per_ip = 1 with an idle socket holding the one slot: the
# socket is still in handshake, so it gives its slot to the next
# connection and the call gets in. (Refusal, when every connection of the
# IP is past its handshake, is in test_transport_uv: test_connection_caps.)
exec 4<>"/dev/tcp/127.0.0.1/$PX"
expect_status 0 "a call past an idle socket" "$MP" call --cluster "$TMP/open.conf" BankAccount/z balance
exec 4<&-
wait_log "$TMP/open.log" "closing the oldest to admit new ones" 1 "$PIDO" 10 || fail "no eviction logged"
pass "max_connections_per_ip = 1: an idle socket gives its slot to a real client"
stop_all $PIDO
pass "SIGTERM: exit 0"
