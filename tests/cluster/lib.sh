# Shared helpers of the cluster tests (sourced by tests/cluster/test_*.sh).
#
# Real processes, real TCP on 127.0.0.1, real SQLite, data in a mktemp dir.
# Rules every test follows through these helpers:
#   - every node is started with a parent-death signal (setpriv
#     --pdeathsig KILL), so even a test killed by ctest's timeout leaves no
#     node behind; the EXIT trap SIGKILLs and reaps whatever is left;
#   - waiting is for a condition (a "ready" line, a log message), polled
#     with a bound, never a fixed sleep that assumes a speed;
#   - ports are picked at random in a high range and checked free; a node
#     that still finds its port taken exits 1 and start_cluster retries with
#     other ports.
#
# Usage in a test:  . "$(dirname "$0")/lib.sh" "$MOONPOOL_BINARY"

MP=${1:?usage: test.sh path/to/moonpool}
case $MP in /*) ;; *) MP=$(pwd)/$MP ;; esac
[ -x "$MP" ] || { echo "not executable: $MP" >&2; exit 1; }
TMP=$(mktemp -d "${TMPDIR:-/tmp}/moonpool-cluster.XXXXXX")
PIDS=""
FAILED=0
EXTRA_CLEANUP=""   # a command a test adds (e.g. stop its database server)

cleanup() {
    for p in $PIDS; do kill -KILL "$p" 2>/dev/null || true; done
    for p in $PIDS; do wait "$p" 2>/dev/null || true; done
    if [ -n "$EXTRA_CLEANUP" ]; then eval "$EXTRA_CLEANUP" || true; fi
    if [ "$FAILED" = 1 ] || [ "${KEEP_TMP:-0}" = 1 ]; then
        echo "(test files kept in $TMP)"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; FAILED=1; exit 1' INT TERM

if command -v setpriv >/dev/null 2>&1 && setpriv --pdeathsig KILL true 2>/dev/null; then
    PDEATH="setpriv --pdeathsig KILL"
else
    PDEATH=""
fi

fail() {
    echo "FAIL: $*" >&2
    FAILED=1
    for f in "$TMP"/*.log; do
        [ -f "$f" ] || continue
        echo "---- $f (last 15 lines)" >&2
        tail -n 15 "$f" >&2
    done
    exit 1
}

pass() { echo "ok: $*"; }

# A port nobody listens on, below the kernel's ephemeral range (the ports
# outgoing connections of this and concurrent tests get; one of those could
# take a port between this check and the node's bind).
free_port() {
    local p i lo=32768 hi span
    read -r lo hi </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
    span=$((lo - 10000))
    [ "$span" -ge 1000 ] || span=20000
    for i in $(seq 1 50); do
        p=$((10000 + (RANDOM * 32768 + RANDOM) % span))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

# start_node CONF LOG [ID]: start a node in the background; sets NODE_PID.
start_node() {
    local conf=$1 log=$2 id=${3:-}
    if [ -n "$id" ]; then
        $PDEATH "$MP" node --config "$conf" --id "$id" >>"$log" 2>&1 &
    else
        $PDEATH "$MP" node --config "$conf" >>"$log" 2>&1 &
    fi
    NODE_PID=$!
    PIDS="$PIDS $NODE_PID"
}

# wait_log LOG PATTERN COUNT PID SECONDS: wait until LOG has COUNT lines
# matching PATTERN (grep -E). Returns 1 on timeout, 2 if PID exited first.
wait_log() {
    local log=$1 pat=$2 want=$3 pid=$4 secs=$5 n i
    for i in $(seq 1 $((secs * 20))); do
        n=$(grep -cE -- "$pat" "$log" 2>/dev/null || true)
        [ "${n:-0}" -ge "$want" ] && return 0
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then return 2; fi
        sleep 0.05
    done
    return 1
}

# stop_node PID: SIGTERM and wait (bounded: SIGKILL after 30 s); the exit
# status goes to STOP_STATUS (not printed: a $(...) subshell cannot wait for
# this shell's children).
stop_node() {
    local pid=$1 i
    STOP_STATUS=0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 600); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || STOP_STATUS=$?
}

# stop_all PID...: SIGTERM to all at once (a cluster stops together), then
# wait for each (bounded); fails unless every one exits 0.
stop_all() {
    local p
    for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "$@"; do
        stop_node "$p"
        [ "$STOP_STATUS" = 0 ] || fail "node pid $p exited with status $STOP_STATUS after SIGTERM"
    done
    PIDS=""
}

# expect_status WANT DESCRIPTION CMD...: run CMD (bounded by timeout), its
# stdout in $TMP/out, stderr in $TMP/err; fail unless the status is WANT.
expect_status() {
    local want=$1 what=$2 st=0
    shift 2
    timeout 60 "$@" >"$TMP/out" 2>"$TMP/err" || st=$?
    if [ "$st" != "$want" ]; then
        echo "stdout:" >&2; cat "$TMP/out" >&2
        echo "stderr:" >&2; cat "$TMP/err" >&2
        fail "$what: exit status $st, expected $want"
    fi
}

# expect_in FILE TEXT DESCRIPTION: fixed-string match.
expect_in() {
    grep -qF -- "$2" "$1" || { echo "--- $1:" >&2; cat "$1" >&2; fail "$3: '$2' not found"; }
}

# ---- clusters on the membership table (issue 13) ---------------------------

# table_conf FILE SELF MEMBER...: the config of node SELF (or of a client:
# SELF = -, no [node] section) in a cluster of MEMBERs (its seed list) with
# [membership] mode = table: every node shares the SQLite file
# $TMP/cluster.db (the table and the actors' state), each has its data_dir
# $TMP/d_<its port> (incarnation file). [timeouts] heartbeat and
# peer_timeout are TABLE_HEARTBEAT (default 200ms) and TABLE_PEER_TIMEOUT
# (default 1s), left out when set to ""; TABLE_EXTRA (lines) is appended.
table_conf() {
    local file=$1 self=$2 m members=""
    shift 2
    for m in "$@"; do members="${members:+$members, }$m"; done
    {
        printf '[cluster]\nnamespace = mt\nmembers = %s\n' "$members"
        if [ "$self" != - ]; then
            printf '[node]\naddress = %s\ndata_dir = %s\nlog_level = info\n' \
                "$self" "$TMP/d_${self##*:}"
        fi
        printf '[storage]\nprovider = sqlite\npath = %s\n' "$TMP/cluster.db"
        printf '[timeouts]\ncall = 10s\nshutdown = 5s\n'
        [ -z "${TABLE_HEARTBEAT-200ms}" ] || printf 'heartbeat = %s\n' "${TABLE_HEARTBEAT-200ms}"
        [ -z "${TABLE_PEER_TIMEOUT-1s}" ] || printf 'peer_timeout = %s\n' "${TABLE_PEER_TIMEOUT-1s}"
        printf '[membership]\nmode = table\n'
        [ -z "${TABLE_EXTRA:-}" ] || printf '%s\n' "$TABLE_EXTRA"
    } >"$file"
}

# start_table_cluster N: N nodes on free ports, configs $TMP/nodeI.conf
# (table_conf, every node seeds every other), logs $TMP/nodeI.log; sets
# ADDR1..N, PID1..N and TABLE_ADDRS; waits for every ready line. Retries
# with other ports if one was taken meanwhile.
start_table_cluster() {
    local n=$1 attempt i p a pid ok
    for attempt in 1 2 3; do
        TABLE_ADDRS=""
        for i in $(seq 1 "$n"); do
            p=$(free_port) || fail "no free port"
            TABLE_ADDRS="$TABLE_ADDRS 127.0.0.1:$p"
        done
        [ "$(printf '%s\n' $TABLE_ADDRS | sort -u | wc -l)" = "$n" ] || continue
        i=0
        for a in $TABLE_ADDRS; do
            i=$((i + 1))
            eval "ADDR$i=$a"
            # shellcheck disable=SC2086
            table_conf "$TMP/node$i.conf" "$a" $TABLE_ADDRS
        done
        for i in $(seq 1 "$n"); do
            start_node "$TMP/node$i.conf" "$TMP/node$i.log"
            eval "PID$i=$NODE_PID"
        done
        ok=1
        for i in $(seq 1 "$n"); do
            eval "pid=\$PID$i"
            wait_log "$TMP/node$i.log" "moonpool node ready:" 1 "$pid" 30 || ok=0
        done
        [ $ok = 1 ] && return 0
        if grep -q "in use" "$TMP"/node*.log; then
            for i in $(seq 1 "$n"); do
                eval "pid=\$PID$i"
                kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
            done
            rm -rf "$TMP"/node*.log "$TMP"/cluster.db* "$TMP"/d_*
            continue
        fi
        fail "the nodes did not become ready"
    done
    fail "could not find free ports in 3 attempts"
}

# member_rows CONF: the rows of `moonpool members --raw` (address,
# incarnation, status, ...), or nothing if the table cannot be read now.
member_rows() { timeout 30 "$MP" members --cluster "$1" --raw 2>/dev/null || true; }

# wait_member CONF ADDR INC STATUS SECS: until the table has that row
# (polled, bounded); returns 1 if it never did.
wait_member() {
    local conf=$1 addr=$2 inc=$3 status=$4 secs=$5 i
    for i in $(seq 1 $((secs * 10))); do
        member_rows "$conf" | awk -v a="$addr" -v n="$inc" -v s="$status" \
            '$1 == a && $2 == n && ($3 == s || index($3, s "(") == 1) { f = 1 } END { exit !f }' && return 0
        sleep 0.1
    done
    return 1
}

# call_bg OUT ARGS...: `moonpool call ARGS...` in the background: stdout in
# OUT, stderr in OUT.err, exit status in OUT.st; wait_calls waits for all.
CALL_PIDS=""
call_bg() {
    local out=$1
    shift
    rm -f "$out" "$out.err" "$out.st"
    (
        st=0
        timeout 60 "$MP" call "$@" >"$out" 2>"$out.err" || st=$?
        echo "$st" >"$out.st"
    ) &
    CALL_PIDS="$CALL_PIDS $!"
}
wait_calls() {
    local p
    for p in $CALL_PIDS; do wait "$p" 2>/dev/null || true; done
    CALL_PIDS=""
}

# now_ms: wall-clock milliseconds (for the figures tests print, never for
# an assertion).
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# until_all SECS START_FN CHECK_FN KEY...: rounds of calls, one per key not
# done yet, all at once: START_FN KEY OUT starts it (call_bg OUT ...), then
# CHECK_FN KEY OUT returns 0 when that key is done (it may fail the test on
# a wrong answer). Returns 1 if keys remain after SECS (set in UNTIL_LEFT);
# UNTIL_ROUNDS counts the rounds.
until_all() {
    local secs=$1 start=$2 check=$3 end k left
    shift 3
    end=$(($(now_ms) + secs * 1000))
    left="$*"
    UNTIL_ROUNDS=0
    while [ -n "$left" ]; do
        [ "$(now_ms)" -lt "$end" ] || { UNTIL_LEFT=$left; return 1; }
        UNTIL_ROUNDS=$((UNTIL_ROUNDS + 1))
        for k in $left; do "$start" "$k" "$TMP/call.$k"; done
        wait_calls
        local next=""
        for k in $left; do "$check" "$k" "$TMP/call.$k" || next="$next $k"; done
        left=${next# }
    done
    UNTIL_LEFT=""
    return 0
}

# bank_activations CONF ADDR: the BankAccount activations node ADDR reports
# (`moonpool stats`); empty if it did not answer.
bank_activations() {
    timeout 30 "$MP" stats --cluster "$1" --node "$2" --raw 2>/dev/null |
        sed -n 's/.*"BankAccount":\([0-9]*\).*/\1/p' | head -n 1
}

# has_balance FILE N: FILE holds a BankAccount reply with balance N (a
# retried deposit whose first attempt ran answers {"balance":N,"dup":true}).
has_balance() { grep -qE "\"balance\":$2[,}]" "$1"; }
