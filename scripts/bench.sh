#!/bin/sh
# `make bench`: run the benchmark table of issue 7 (tools/cmd_bench.c).
# Usage: scripts/bench.sh [BUILD_DIR] [moonpool bench options...]
#   e.g. scripts/bench.sh build --quick --json /tmp/bench.json
# The table goes to stdout (every line starts with the scenario name); the
# column header and progress lines go to stderr. docs/bench.md explains the
# figures.
set -eu
build=${1:-build}
[ $# -gt 0 ] && shift
if [ ! -x "$build/moonpool" ]; then
    echo "bench.sh: $build/moonpool not found; run 'make build' first" >&2
    exit 1
fi
exec "$build/moonpool" bench "$@"
