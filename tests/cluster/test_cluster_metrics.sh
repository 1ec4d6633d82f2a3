#!/bin/bash
# Cluster test: the operations endpoint of a real node process (issue 14).
# One node with MOONPOOL_METRICS_ADDRESS set is scraped over plain TCP
# (bash /dev/tcp; no curl needed): /metrics answers Prometheus text whose
# call counter moves with `moonpool call`, /healthz and /readyz answer 200,
# unknown paths 404, an oversized request head 431, a 17th open
# connection is closed unanswered; the node logs
# wall-clock RFC 3339 lines, and MOONPOOL_LOG_FORMAT=json gives one JSON
# object per line; SIGTERM still exits 0.
set -u
. "$(dirname "$0")/lib.sh" "${1:-}"

# http_get PATH [REQUEST]: the whole answer of one HTTP/1.0 exchange on
# stdout (the server closes after answering); bounded by timeout.
http_get() {
    local req=${2:-"GET $1 HTTP/1.0\r\n\r\n"}
    timeout 10 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0" || exit 1
                        printf "$1" >&3; cat <&3' "$MPORT" "$req"
}

# metric NAME: the value of an unlabelled sample in the last scrape.
metric() { sed -n "s/^$1 //p" "$TMP/scrape" | tr -d '\r'; }

start_one() {
    local fmt=$1 attempt
    for attempt in 1 2 3; do
        P=$(free_port) && MPORT=$(free_port) || fail "no free ports"
        [ "$P" != "$MPORT" ] || continue
        cat >"$TMP/node.conf" <<EOF
[cluster]
namespace = ctest
members = 127.0.0.1:$P

[node]
address = 127.0.0.1:$P
data_dir = $TMP/n
log_level = info

[storage]
provider = memory
EOF
        rm -f "$TMP/node.log"
        MOONPOOL_METRICS_ADDRESS=127.0.0.1:$MPORT MOONPOOL_LOG_FORMAT=$fmt \
            start_node "$TMP/node.conf" "$TMP/node.log"
        PID=$NODE_PID
        if wait_log "$TMP/node.log" "moonpool node ready:" 1 "$PID" 20; then return 0; fi
        if grep -q "in use" "$TMP/node.log"; then
            kill -KILL "$PID" 2>/dev/null; wait "$PID" 2>/dev/null
            continue
        fi
        fail "the node did not become ready"
    done
    fail "could not find free ports in 3 attempts"
}

start_one text
C="$TMP/node.conf"

http_get /metrics >"$TMP/scrape" || fail "scrape /metrics"
expect_in "$TMP/scrape" "HTTP/1.0 200 OK" "/metrics status"
expect_in "$TMP/scrape" "Content-Type: text/plain; version=0.0.4" "/metrics content type"
expect_in "$TMP/scrape" "# TYPE moonpool_calls_in_total counter" "TYPE line"
expect_in "$TMP/scrape" "moonpool_node_info{address=\"127.0.0.1:$P\",namespace=\"ctest\",incarnation=\"1\"} 1" "node_info"
expect_in "$TMP/scrape" "# TYPE moonpool_call_latency_seconds histogram" "call latency histogram"
expect_in "$TMP/scrape" "moonpool_calls_completed_total{outcome=\"may_have_executed\"} " "calls by outcome"
expect_in "$TMP/scrape" "moonpool_call_latency_seconds_bucket{le=\"+Inf\"}" "call latency +Inf bucket"
expect_in "$TMP/scrape" "moonpool_build_info{version=\"$("$MP" --version | awk '{print $2}')\"} 1" "build_info"
before=$(metric moonpool_calls_in_total)
[ -n "$before" ] || fail "no moonpool_calls_in_total sample"
pass "/metrics answers Prometheus text"

for i in 1 2 3; do
    expect_status 0 "deposit $i" "$MP" call --cluster "$C" BankAccount/alice deposit "{\"op\":\"d$i\",\"amount\":5}"
done
http_get /metrics >"$TMP/scrape" || fail "scrape /metrics again"
after=$(metric moonpool_calls_in_total)
[ "$after" -ge $((before + 3)) ] || fail "calls_in_total went from $before to $after after 3 calls"
[ "$(metric moonpool_activations)" -ge 1 ] || fail "no live activation after the calls"
pass "calls_in_total moved from $before to $after with 3 calls"

http_get /healthz >"$TMP/h" || fail "GET /healthz"
expect_in "$TMP/h" "HTTP/1.0 200 OK" "/healthz"
http_get /readyz >"$TMP/h" || fail "GET /readyz"
expect_in "$TMP/h" "HTTP/1.0 200 OK" "/readyz"
http_get /nope >"$TMP/h" || fail "GET /nope"
expect_in "$TMP/h" "HTTP/1.0 404" "unknown path"
big="GET /metrics HTTP/1.0\r\nX-Pad: $(head -c 5000 /dev/zero | tr '\0' a)\r\n\r\n"
http_get /metrics "$big" >"$TMP/h" || fail "oversized request"
expect_in "$TMP/h" "HTTP/1.0 431" "oversized request head"
pass "healthz, readyz, 404, 431"

# The connection cap: 16 idle connections held open, a 17th is closed
# without an answer; once the 16 close, requests are answered again.
for fd in $(seq 10 25); do
    eval "exec $fd<>/dev/tcp/127.0.0.1/$MPORT" || fail "connection $fd"
done
http_get /healthz >"$TMP/h" || true
[ ! -s "$TMP/h" ] || { cat "$TMP/h" >&2; fail "a 17th connection was answered"; }
for fd in $(seq 10 25); do eval "exec $fd<&-"; done
ok=0
for i in $(seq 1 100); do
    http_get /healthz >"$TMP/h" 2>/dev/null || true
    if grep -q "HTTP/1.0 200" "$TMP/h"; then ok=1; break; fi
    sleep 0.05
done
[ $ok = 1 ] || fail "no answer after the idle connections closed"
pass "at most 16 connections; the 17th is closed unanswered"

# Wall-clock RFC 3339 UTC timestamps with milliseconds on log lines.
grep -qE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z 127\.0\.0\.1:[0-9]+ info: ' \
    "$TMP/node.log" || fail "no wall-clock stamped log line"
pass "log lines carry wall-clock time"

stop_node "$PID"
[ "$STOP_STATUS" = 0 ] || fail "SIGTERM: exit status $STOP_STATUS"
PIDS=""

start_one json
grep -E '^\{"ts":"[0-9-]{10}T[0-9:.]{12}Z","level":"info","node":"127\.0\.0\.1:[0-9]+","msg":".*"\}$' \
    "$TMP/node.log" >/dev/null || fail "no JSON log line"
if command -v python3 >/dev/null 2>&1; then
    grep '^{' "$TMP/node.log" | python3 -c 'import json,sys
for l in sys.stdin: json.loads(l)' || fail "a JSON log line does not parse"
fi
stop_node "$PID"
[ "$STOP_STATUS" = 0 ] || fail "SIGTERM (json): exit status $STOP_STATUS"
PIDS=""
pass "MOONPOOL_LOG_FORMAT=json gives one JSON object per line"
