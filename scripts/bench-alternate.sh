#!/bin/sh
# Compare two moonpool binaries on this machine by alternating them, so
# that both see the same machine phases (docs/bench.md compares binaries so).
#
#   scripts/bench-alternate.sh BEFORE AFTER [ROUNDS] [MATCH]
#
# Runs `BIN bench --only remote --quick --reps 1 --match MATCH` for BEFORE
# then AFTER, ROUNDS times (default 5; MATCH default 'payload=16B'), and
# prints each run's calls/s by in-flight count, then the medians.
set -eu
[ $# -ge 2 ] || { echo "usage: $0 BEFORE AFTER [ROUNDS] [MATCH]" >&2; exit 2; }
before=$1 after=$2 rounds=${3:-5} match=${4:-payload=16B}
for b in "$before" "$after"; do
    [ -x "$b" ] || { echo "$0: '$b' is not an executable" >&2; exit 2; }
done
out=$(mktemp)
trap 'rm -f "$out"' EXIT
r=1
while [ "$r" -le "$rounds" ]; do
    for side in before after; do
        if [ "$side" = before ]; then bin=$before; else bin=$after; fi
        "$bin" bench --only remote --quick --reps 1 --match "$match" 2>/dev/null |
            awk -v s="$side" -v r="$r" '$2 == "calls/s" {
                for (i = 1; i <= NF; i++) if ($i ~ /^inflight=/) f = $i
                print s, r, f, $3 }' >>"$out"
    done
    r=$((r + 1))
done
cat "$out"
echo "medians:"
sort -k3,3 -k1,1 -k4,4n "$out" | awk '
    { k = $3 " " $1; v[k, ++n[k]] = $4 }
    END { for (k in n) { m = n[k]; printf "%s %s\n", k, v[k, int((m + 1) / 2)] } }' | sort
