#!/bin/bash
# The README's commands work as written.
#
#   tests/readme/readme_test.sh SOURCE_DIR BUILD_DIR
#
# README.md marks what this checks with an HTML comment before a fenced block:
#   <!-- readme: FILE -->                 the block must equal FILE (no drift)
#   <!-- readme: run -->                  the block runs with bash -e and exits 0
#   <!-- readme: run expect=TEXT -->      ... and its output contains TEXT
# Blocks run in a fresh temporary directory in which `build` is the build
# directory under test and `examples` the source tree's, so the commands are
# exactly the README's. Every process a block leaves behind is killed.
set -u
src=$(cd "$1" && pwd)
build=$(cd "$2" && pwd)
readme=$src/README.md
work=$(mktemp -d)
fail=0
checked=0

cleanup() {
    # Anything a block started in the background and did not stop.
    pkill -KILL -f "$work" 2>/dev/null || true
    pkill -KILL -f "examples/cluster/node[0-9].conf" -P $$ 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# Split the README into numbered blocks: block N's body in $work/blocks/N,
# its marker in $work/blocks/N.mark (absent: an unmarked block).
mkdir -p "$work/blocks"
awk -v dir="$work/blocks" '
    /^<!-- readme: .* -->$/ { mark = $0; sub(/^<!-- readme: /, "", mark); sub(/ -->$/, "", mark); next }
    /^```/ && !inblock { inblock = 1; n++; if (mark != "") { print mark > (dir "/" n ".mark"); close(dir "/" n ".mark") } mark = ""; printf "" > (dir "/" n); next }
    /^```/ && inblock { inblock = 0; close(dir "/" n); next }
    inblock { print > (dir "/" n) }
    !inblock && NF { mark = "" }
' "$readme"

for markfile in "$work"/blocks/*.mark; do
    [ -e "$markfile" ] || continue
    block=${markfile%.mark}
    mark=$(cat "$markfile")
    name="README block $(basename "$block") ($mark)"
    checked=$((checked + 1))
    case $mark in
    run*)
        expect=
        case $mark in *expect=*) expect=${mark#*expect=} ;; esac
        rundir=$work/run$(basename "$block")
        mkdir -p "$rundir"
        ln -s "$build" "$rundir/build"
        ln -s "$src/examples" "$rundir/examples"
        if ! out=$(cd "$rundir" && timeout 240 bash -e "$block" 2>&1); then
            echo "FAIL: $name exited non-zero; its output:"
            echo "$out" | sed 's/^/    /'
            for log in "$rundir"/*.log; do
                [ -e "$log" ] && { echo "  --- $log"; tail -n 20 "$log" | sed 's/^/    /'; }
            done
            fail=1
        elif [ -n "$expect" ] && ! grep -qF -- "$expect" <<<"$out"; then
            echo "FAIL: $name: output lacks '$expect'; it was:"
            echo "$out" | sed 's/^/    /'
            fail=1
        else
            echo "ok: $name"
        fi
        ;;
    *)
        if ! diff -u "$src/$mark" "$block" >/dev/null; then
            echo "FAIL: $name: the README's copy differs from $mark:"
            diff -u "$src/$mark" "$block" | head -n 20
            fail=1
        else
            echo "ok: $name matches $mark"
        fi
        ;;
    esac
done
if [ "$checked" -lt 3 ]; then
    echo "FAIL: only $checked marked README blocks found (markers lost?)"
    fail=1
fi
exit $fail
