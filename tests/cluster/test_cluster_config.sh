#!/bin/bash
# Cluster test: config mistakes are reported as documented (docs/config.md,
# docs/cluster.md): one message naming the file and the line, exit status 2,
# no node started; an address already taken is exit status 1.
set -u
. "$(dirname "$0")/lib.sh" "${1:-}"

P1=$(free_port) || fail "no free port"
A=127.0.0.1:$P1

# name line-number expected-text config-text
check_bad() {
    local name=$1 want=$2 text=$3
    printf '%s\n' "$text" >"$TMP/$name.conf"
    expect_status 2 "$name" "$MP" node --config "$TMP/$name.conf"
    expect_in "$TMP/err" "$TMP/$name.conf$want" "$name message"
}

check_bad typo ":5: unknown key 'adress' in [node] (did you mean 'address'?)" "[cluster]
namespace = t
members = $A
[node]
adress = $A"
check_bad badtimeout ":5: duration '30' for 'call' needs a unit" "[cluster]
namespace = t
members = $A
[timeouts]
call = 30"
check_bad notmember ":" "[cluster]
namespace = t
members = $A
[node]
address = 127.0.0.1:1"
check_bad nocluster ": missing section [cluster]" "[node]
data_dir = ."
check_bad badns ":2: " "[cluster]
namespace = no spaces allowed
members = $A"
pass "bad config files: file:line message, exit 2"

expect_status 2 "missing file" "$MP" node --config "$TMP/absent.conf"
expect_in "$TMP/err" "$TMP/absent.conf: cannot open config file" "missing file message"
printf '[cluster]\nnamespace = t\nmembers = %s\n[node]\ndata_dir = %s/d\n' "$A" "$TMP" >"$TMP/ok.conf"
expect_status 2 "no address" "$MP" node --config "$TMP/ok.conf"
expect_in "$TMP/err" "no node address" "no address message"
expect_status 2 "--id out of range" "$MP" node --config "$TMP/ok.conf" --id 2
expect_in "$TMP/err" "--id 2: the cluster has 1 members" "--id range message"
expect_status 2 "--id not a member" "$MP" node --config "$TMP/ok.conf" --id 127.0.0.1:2
expect_status 2 "no --config" "$MP" node
expect_status 2 "unknown flag" "$MP" node --config "$TMP/ok.conf" --bogus
expect_status 2 "call with a bad cluster file" "$MP" call --cluster "$TMP/typo.conf" BankAccount/a balance
expect_in "$TMP/err" "typo.conf:5: unknown key" "call names the line too"
[ ! -e "$TMP/d" ] || fail "a node with a bad command line created its data directory"
pass "missing file, address, --id and flags: exit 2"

# A listen address already in use is not a config error: exit 1. The
# two-member cluster makes the node listen (a one-member node opens no
# transport).
P2=$(free_port) || fail "no free port"
B=127.0.0.1:$P2
printf '[cluster]\nnamespace = t\nmembers = %s, %s\n[node]\ndata_dir = %s/a\n[storage]\nprovider = memory\n' \
    "$A" "$B" "$TMP" >"$TMP/two.conf"
start_node "$TMP/two.conf" "$TMP/first.log" 1; FIRST=$NODE_PID
wait_log "$TMP/first.log" "moonpool node ready:" 1 "$FIRST" 20 || fail "first node did not start"
sed "s#$TMP/a#$TMP/b#" "$TMP/two.conf" >"$TMP/two-b.conf"
expect_status 1 "address in use" "$MP" node --config "$TMP/two-b.conf" --id 1
expect_in "$TMP/err" "cannot start on $A" "address in use message"
stop_node "$FIRST"
[ "$STOP_STATUS" = 0 ] || fail "first node exit status $STOP_STATUS"
PIDS=""
pass "listen address in use: exit 1 with the reason"
