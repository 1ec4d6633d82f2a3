#!/bin/sh
# `make demo`: a real 3-node moonpool cluster on this machine (issue 6).
#
# `moonpool demo` starts three node processes on 127.0.0.1 (free ports,
# SQLite under ./demo-data/), drives the bank workload through them with a
# live progress line, checks that no money was created or lost, kills one
# node with SIGKILL, restarts it, reads every account again, and shuts the
# cluster down; it leaves no process behind. Extra arguments go to
# `moonpool demo` (see `moonpool demo --help`).
set -eu
build=${1:-build}
[ $# -gt 0 ] && shift
exec "$build/moonpool" demo "$@"
