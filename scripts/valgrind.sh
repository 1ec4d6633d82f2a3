#!/bin/sh
# Runs every unit-test binary of a build under valgrind memcheck (leaks,
# invalid reads and writes, uninitialised values); any report fails the run.
# Not part of `make test` (it takes several minutes); `make valgrind` runs it.
#   scripts/valgrind.sh BUILD_DIR
set -eu
build=$1
supp="$(cd "$(dirname "$0")/.." && pwd)/tests/valgrind/libuv.supp"
if ! command -v valgrind >/dev/null 2>&1; then
    echo "valgrind: not installed (apt-get install valgrind)" >&2
    exit 2
fi
failed=0
for t in "$build"/tests/test_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    log=$(mktemp)
    if valgrind -q --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite,possible \
        --suppressions="$supp" "$t" >"$log" 2>&1; then
        echo "valgrind: $name clean"
    else
        echo "valgrind: $name FAILED; its output:"
        sed 's/^/    /' "$log"
        failed=1
    fi
    rm -f "$log"
done
[ "$failed" = 0 ] && echo "valgrind: every test binary is clean"
exit "$failed"
