#!/bin/bash
# Cluster test: TLS on every link, on real processes (docs/security.md).
#   - three nodes with certificates of one cluster CA ([security] tls_cert,
#     tls_key, tls_ca) serve `moonpool call` and `stats` over TLS;
#   - the bytes on the wire are not plain moonpool frames (no "MPOL" magic,
#     no namespace) for a stranger that sends a ClientHello... and a plain
#     client that speaks moonpool gets nothing it can read;
#   - a client holding a certificate of another CA is refused;
#   - one key file without the other two, or a key others can read, is
#     refused at start (exit 2).
set -u
. "$(dirname "$0")/lib.sh" "${1:-}"
command -v openssl >/dev/null || { echo "skip: no openssl command"; exit 77; }
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

P1=$(free_port) && P2=$(free_port) && P3=$(free_port) || fail "no free ports"
A=127.0.0.1:$P1
B=127.0.0.1:$P2
C=127.0.0.1:$P3
[ "$A" != "$B" ] && [ "$B" != "$C" ] && [ "$A" != "$C" ] || fail "port clash, rerun"

"$ROOT/scripts/make-certs.sh" "$TMP/pki" n1 n2 n3 client >/dev/null || fail "make-certs.sh failed"
"$ROOT/scripts/make-certs.sh" "$TMP/rogue" client >/dev/null || fail "make-certs.sh (rogue) failed"
conf() { # conf NAME CERT KEY CA
    {
        printf '[cluster]\nnamespace = sealed.ns\nmembers = %s, %s, %s\n' "$A" "$B" "$C"
        printf '[node]\ndata_dir = %s/%s\n' "$TMP" "$1"
        printf '[storage]\nprovider = memory\n[timeouts]\ncall = 3s\nshutdown = 2s\n'
        printf '[security]\ntls_cert = %s\ntls_key = %s\ntls_ca = %s\n' "$2" "$3" "$4"
    } >"$TMP/$1.conf"
}
PIDS_UP=""
for i in 1 2 3; do
    conf "n$i" "$TMP/pki/n$i.pem" "$TMP/pki/n$i.key" "$TMP/pki/ca.pem"
    start_node "$TMP/n$i.conf" "$TMP/n$i.log" "$i"
    PIDS_UP="$PIDS_UP $NODE_PID"
done
i=1
for p in $PIDS_UP; do
    wait_log "$TMP/n$i.log" "moonpool node ready:" 1 "$p" 20 || fail "node $i did not start"
    i=$((i + 1))
done
expect_in "$TMP/n1.log" "tls on every link" "start-up says TLS is on"
pass "three nodes with certificates of one CA are up"

conf client "$TMP/pki/client.pem" "$TMP/pki/client.key" "$TMP/pki/ca.pem"
for k in 1 2 3 4 5 6; do
    expect_status 0 "call over TLS $k" "$MP" call --cluster "$TMP/client.conf" \
        BankAccount/acct$k deposit "{\"op\":\"d$k\",\"amount\":5}"
done
expect_status 0 "balance over TLS" "$MP" call --cluster "$TMP/client.conf" BankAccount/acct3 balance
expect_in "$TMP/out" "5" "the deposit is there"
expect_status 0 "stats over TLS" "$MP" stats --cluster "$TMP/client.conf" --node 2 --raw
expect_in "$TMP/out" '"namespace":"sealed.ns"' "stats answered"
pass "moonpool call (6 accounts over 3 nodes) and stats over TLS"

# A plain moonpool client (no TLS) learns nothing: the node waits for a
# ClientHello and drops it at the handshake timeout or at its first bytes.
conf plain "" "" ""
sed -i '/^\[security\]/,$d' "$TMP/plain.conf"
expect_status 1 "plain client" "$MP" call --cluster "$TMP/plain.conf" --timeout 2000 BankAccount/acct1 balance
pass "a client without TLS gets no answer (exit 1)"
timeout 15 bash -c "exec 3<>/dev/tcp/127.0.0.1/$P1; printf 'MPOL' >&3; cat <&3" >"$TMP/raw.bin" 2>/dev/null || true
for s in MPOL sealed hello "$P2"; do
    if grep -qaF -- "$s" "$TMP/raw.bin"; then fail "a plain socket read '$s'"; fi
done
pass "a plain socket reads no frame, namespace or address ($(stat -c %s "$TMP/raw.bin") bytes: a TLS alert at most)"

conf rogue "$TMP/rogue/client.pem" "$TMP/rogue/client.key" "$TMP/pki/ca.pem"
expect_status 1 "client with another CA's certificate" "$MP" call --cluster "$TMP/rogue.conf" \
    --timeout 2000 BankAccount/acct1 balance
wait_log "$TMP/n1.log" "tls: handshake from" 1 "" 10 ||
    wait_log "$TMP/n2.log" "tls: handshake from" 1 "" 1 ||
    wait_log "$TMP/n3.log" "tls: handshake from" 1 "" 1 || fail "no node logged the refused handshake"
grep -h "tls: handshake from" "$TMP"/n?.log | head -n 1 | sed 's/^/     /'
pass "a client whose certificate another CA signed is refused, and the node logs why"

stop_all $PIDS_UP
pass "SIGTERM: all three exit 0"

# Start-up refusals.
printf '[cluster]\nnamespace = x\nmembers = %s\n[node]\ndata_dir = %s/x\n[storage]\nprovider = memory\n[security]\ntls_cert = %s\n' \
    "$A" "$TMP" "$TMP/pki/n1.pem" >"$TMP/half.conf"
expect_status 2 "tls_cert alone" "$MP" node --config "$TMP/half.conf" --id 1
expect_in "$TMP/err" "go together" "the error says the three keys go together"
pass "tls_cert without tls_key and tls_ca is refused (exit 2)"
chmod 644 "$TMP/pki/n1.key"
expect_status 2 "world-readable key" "$MP" node --config "$TMP/n1.conf" --id 1
expect_in "$TMP/err" "n1.key" "the error names the key file"
sed 's/^/     /' "$TMP/err"
pass "a key file others can read is refused at start (exit 2)"
