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
