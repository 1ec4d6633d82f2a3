#!/bin/sh
# Proves the lint can fail, on temporary trees:
#  1. copy the runtime sources, plant a time(NULL) call in one runtime file,
#     and expect the determinism check to name it;
#  2. a small src/ whose folders include each other in a ring a -> b -> c -> a
#     must fail and name the cycle, and the same tree without the closing
#     edge must pass;
#  3. a tools/ file including from tests/ must fail.
# (Checks 1 looks only at determinism findings, so it holds whatever include
# cycle the real tree has.)
set -eu
src=$1
lint="$src/scripts/lint.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# 1. determinism: a planted clock call is reported (file:line: ...).
mkdir "$tmp/t1"
cp -r "$src/src" "$tmp/t1/src"
if "$lint" "$tmp/t1" 2>/dev/null | grep -q '^src/'; then
    echo "lint reports determinism findings on the clean tree"
    exit 1
fi
victim=$(cd "$tmp/t1" && find src -path src/env -prune -o -name '*.c' -print | sort | head -n 1)
printf '\nstatic long planted(void) { return (long)time(NULL); }\n' >> "$tmp/t1/$victim"
if "$lint" "$tmp/t1" >"$tmp/out1" 2>&1 || ! grep -q "^$victim:.*time" "$tmp/out1"; then
    echo "lint missed a planted time(NULL) in $victim"
    exit 1
fi
echo "lint catches a planted time(NULL): ok"

# 2. include cycles between folders.
t2="$tmp/t2"
mkdir -p "$t2/src/a" "$t2/src/b" "$t2/src/c"
printf '#include "b/b.h"\n#include "moonpool/env.h"\n' > "$t2/src/a/a.c"
printf '#include "c/c.h"\n' > "$t2/src/b/b.h"
printf '#include <stdint.h>\n' > "$t2/src/c/c.h"
if ! "$lint" "$t2" >"$tmp/out2" 2>&1; then
    echo "lint fails on an acyclic tree:"; cat "$tmp/out2"
    exit 1
fi
printf '#include "a/a.h"\n' >> "$t2/src/c/c.h"
if "$lint" "$t2" >"$tmp/out2" 2>&1; then
    echo "lint missed a planted include cycle a -> b -> c -> a"
    exit 1
fi
if ! grep -q 'include cycle.*a -> b -> c -> a' "$tmp/out2"; then
    echo "lint failed on a planted cycle but did not name it:"; cat "$tmp/out2"
    exit 1
fi
echo "lint catches a planted include cycle: ok"

# 3. shipped code including from tests/.
t3="$tmp/t3"
mkdir -p "$t3/src/a" "$t3/tools"
printf 'int x;\n' > "$t3/src/a/a.c"
printf '#include "../tests/sim/workloads.h"\n' > "$t3/tools/cmd.c"
if "$lint" "$t3" >/dev/null 2>&1; then
    echo "lint missed a tools/ file including from tests/"
    exit 1
fi
echo "lint catches shipped code including tests/: ok"
