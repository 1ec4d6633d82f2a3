#!/bin/sh
# Runs every libFuzzer target for a bounded time on a scratch copy of its
# corpus (the corpus in the repo is only changed by hand, on purpose).
#   scripts/fuzz.sh BUILD_DIR SECONDS
set -eu
build=$1
seconds=$2
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for target in "$build"/fuzz/fuzz_*; do
    [ -x "$target" ] || continue
    name=$(basename "$target")
    mkdir -p "$scratch/$name"
    if [ -d "tests/fuzz/corpus/$name" ]; then
        cp tests/fuzz/corpus/"$name"/* "$scratch/$name/" 2>/dev/null || true
    fi
    echo "fuzz: $name for $seconds s"
    "$target" -max_total_time="$seconds" -print_final_stats=1 \
        -artifact_prefix="$scratch/" "$scratch/$name"
done
