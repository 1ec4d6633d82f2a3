#!/bin/sh
# `make demo`: shows what moonpool does today. Until the node process and the
# real-cluster demo land (issue 6), the demo is the simulator: a 5-node
# pingpong cluster run under injected faults (partitions, resets, clogs,
# kills and restarts, buggify), seed after seed, each replayable exactly.
set -eu
build=${1:-build}
bin="$build/moonpool"
echo "== moonpool demo: a simulated 5-node cluster under faults =="
echo "   (each seed draws its own fault mix; the same seed replays the same run)"
echo
"$bin" sim --workload pingpong --nodes 5 --workers 3 --seeds 1..10 -v
echo
echo "== the same seed twice gives the same trace (determinism check) =="
"$bin" sim --workload pingpong --nodes 5 --seeds 42..42 --check-determinism -v
