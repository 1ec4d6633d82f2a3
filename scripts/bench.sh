#!/bin/sh
# `make bench`: the benchmark table grows with the runtime (issue 7). Today it
# measures the simulator's speed and the wire codec.
set -eu
build=${1:-build}
echo "== simulator speed: pingpong, 100 seeds =="
"$build/moonpool" sim --workload pingpong --seeds 1..100 | tail -n 2
if [ -x "$build/tests/test_wire" ]; then
    echo "== wire codec (100-byte payloads) =="
    MP_WIRE_BENCH=1 "$build/tests/test_wire" 2>&1 | grep -i -E 'encode|decode' || true
fi
