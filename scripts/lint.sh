#!/bin/sh
# Determinism lint: runtime code reaches time, randomness, network, files and
# sleeping only through mp_env. Only the env backends (src/env/) and storage
# providers (src/storage/) and the process host (src/host/) may talk to the OS. The simulator's replay of a seed
# is worthless the day one runtime file calls time(NULL), so this runs in
# `make test`.
#
#   scripts/lint.sh [ROOT]     exit 0 clean, 1 with findings listed
set -eu
root=${1:-.}
cd "$root"

dirs=""
for d in src examples; do [ -d "$d" ] && dirs="$dirs $d"; done
[ -n "$dirs" ] || { echo "lint: nothing to check"; exit 0; }

calls='(^|[^.>_[:alnum:]])(time|clock_gettime|clock|gettimeofday|rand|srand|random|srandom|rand_r|drand48|lrand48|getrandom|arc4random|socket|connect|accept|bind|listen|sleep|usleep|nanosleep|fopen|freopen|open|openat|creat|opendir|getenv|uv_hrtime|uv_now)[[:space:]]*\('
headers='#[[:space:]]*include[[:space:]]*<(time\.h|sys/time\.h|sys/socket\.h|netinet/[a-z_]+\.h|arpa/inet\.h|uv\.h|fcntl\.h|dirent\.h|sqlite3\.h|libpq-fe\.h)>'

# Files allowed to reach the OS: the env backends, the storage providers and
# the process host (src/host/: config file, signals, incarnation file, the
# shell that mp_node_run wraps around a node). Everything they touch is
# outside the simulated world by design.
allowed='^src/(env|storage|host)/'

status=0
files=$(find $dirs -name '*.[ch]' | sort | grep -Ev "$allowed" || true)
for f in $files; do
    # Strip // and /* */ comments and string literals so prose cannot trip it.
    hits=$(sed -e 's#//.*$##' -e 's#/\*.*\*/##g' -e 's#"[^"]*"#""#g' "$f" |
           grep -nE "$calls|$headers" | grep -Ev '^[0-9]+:[[:space:]]*\*' || true)
    if [ -n "$hits" ]; then
        echo "$hits" | sed "s#^#$f:#"
        status=1
    fi
done
if [ $status -ne 0 ]; then
    echo "lint: runtime code must use mp_env (include/moonpool/env.h) for time," >&2
    echo "lint: randomness, network, files and sleeping; see ARCHITECTURE Principle 1." >&2
else
    echo "lint: ok ($(echo "$files" | wc -w) files)"
fi
exit $status
