#!/bin/bash
# Cluster test: two nodes that list each other as members but are
# configured with different namespaces refuse each other: their transport
# handshakes fail and each log says why, and calls that need the other node
# fail (exit 1) instead of silently mixing two clusters' actors.
set -u
. "$(dirname "$0")/lib.sh" "${1:-}"

PA=$(free_port) && PB=$(free_port) || fail "no free ports"
[ "$PA" != "$PB" ] || PB=$(free_port)
A=127.0.0.1:$PA
B=127.0.0.1:$PB
for n in alpha beta; do
    cat >"$TMP/$n.conf" <<EOF
[cluster]
namespace = $n
members = $A, $B
[node]
data_dir = $TMP/$n
[storage]
provider = memory
[timeouts]
call = 3s
shutdown = 2s
EOF
done
start_node "$TMP/alpha.conf" "$TMP/alpha.log" 1; PIDA=$NODE_PID
start_node "$TMP/beta.conf" "$TMP/beta.log" 2; PIDB=$NODE_PID
wait_log "$TMP/alpha.log" "moonpool node ready:" 1 "$PIDA" 20 || fail "alpha did not start"
wait_log "$TMP/beta.log" "moonpool node ready:" 1 "$PIDB" 20 || fail "beta did not start"
pass "two nodes up: alpha at $A, beta at $B"

# Each node tries to reach the other (load reports every 500 ms); both
# refuse, and say so.
wait_log "$TMP/alpha.log" "MP_ENAMESPACE" 1 "$PIDA" 20 || fail "alpha's log does not mention the namespace"
wait_log "$TMP/beta.log" "MP_ENAMESPACE" 1 "$PIDB" 20 || fail "beta's log does not mention the namespace"
{ grep -h "MP_ENAMESPACE" "$TMP/alpha.log" | head -n 1; grep -h "MP_ENAMESPACE" "$TMP/beta.log" | head -n 1; } | sed 's/^/     /'
pass "both logs say why they refuse each other"

# Through alpha's cluster file: actors whose directory partition or
# placement is beta's cannot be reached. Keys are tried until one fails
# (all 20 hashing to alpha has probability ~1e-6); a failure is exit 1
# with the namespace error, never a reply from the other cluster.
fails=0
oks=0
for k in $(seq 1 20); do
    st=0
    timeout 60 "$MP" call --cluster "$TMP/alpha.conf" --timeout 1000 BankAccount/k$k balance \
        >"$TMP/out" 2>"$TMP/err" || st=$?
    case $st in
    0) oks=$((oks + 1)) ;;
    1) fails=$((fails + 1)); cp "$TMP/err" "$TMP/last_err"; break ;;
    *) cat "$TMP/err" >&2; fail "call exit status $st (expected 0 or 1)" ;;
    esac
done
echo "   calls through alpha: $oks answered before the first failure:"
sed 's/^/     /' "$TMP/last_err" 2>/dev/null || true
[ "$fails" -ge 1 ] || fail "every call succeeded: the nodes did not refuse each other"
pass "a call that needs the other namespace's node fails with exit 1"

# A client of namespace beta aimed at alpha only is refused by alpha too.
printf '[cluster]\nnamespace = beta\nmembers = %s\n' "$A" >"$TMP/beta-client.conf"
expect_status 1 "beta client to alpha" "$MP" call --cluster "$TMP/beta-client.conf" --timeout 1000 BankAccount/x balance
expect_in "$TMP/err" "MP_ENAMESPACE" "the client is told why"
pass "a client of another namespace is refused (exit 1)"

stop_all $PIDA $PIDB
pass "SIGTERM: both exit 0"
