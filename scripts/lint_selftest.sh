#!/bin/sh
# Proves the determinism lint can fail: copy the runtime sources, plant a
# time(NULL) call in one runtime file, and expect the lint to reject it.
set -eu
src=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r "$src/src" "$tmp/src"
"$src/scripts/lint.sh" "$tmp" >/dev/null || { echo "lint fails on the clean tree"; exit 1; }
victim=$(find "$tmp/src" -path "$tmp/src/env" -prune -o -name '*.c' -print | sort | head -n 1)
printf '\nstatic long planted(void) { return (long)time(NULL); }\n' >> "$victim"
if "$src/scripts/lint.sh" "$tmp" >/dev/null 2>&1; then
    echo "lint missed a planted time(NULL) in $victim"
    exit 1
fi
echo "lint catches a planted time(NULL): ok"
