#!/bin/sh
# The source lint, run by `make lint` and `make test`. Three checks:
#
# 1. Determinism: runtime code (src/, examples/, workloads/) reaches time,
#    randomness, network, files and sleeping only through mp_env. Only the
#    env backends (src/env/) and storage providers (src/storage/) and the
#    process host (src/host/) may talk to the OS. The simulator's replay of a
#    seed is worthless the day one runtime file calls time(NULL).
# 2. Direction of includes between the folders of src/: the graph of
#    `#include "folder/..."` lines (folder = first path component under src/;
#    "moonpool/..." is the public API, not a folder of src/) must have no
#    cycle. A cycle is reported with the files that make each edge.
# 3. Boundaries: nothing under tools/, examples/ or workloads/ includes a
#    file of tests/, and the public headers (include/moonpool/) include only
#    each other and system headers.
#
#   scripts/lint.sh [ROOT]     exit 0 clean, 1 with findings listed
set -eu
root=${1:-.}
cd "$root"

dirs=""
for d in src examples workloads; do [ -d "$d" ] && dirs="$dirs $d"; done
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
fi
nfiles=$(echo "$files" | wc -w)

# ---- 2. include cycles between the folders of src/ --------------------------
# Edges "from to file" for every `#include "to/..."` in src/from/, where `to`
# is another folder of src/. Then, for every edge a -> b, a breadth-first
# search from b looking for a path back to a; each cycle is printed once
# (keyed by its set of folders).
if [ -d src ]; then
    folders=$(find src -mindepth 1 -maxdepth 1 -type d | sed 's#^src/##' | sort)
    edges=$(find src -mindepth 2 -name '*.[ch]' | sort | while read -r f; do
        from=$(echo "$f" | cut -d/ -f2)
        sed -n 's#^[[:space:]]*\#[[:space:]]*include[[:space:]]*"\([^/"]*\)/.*#\1#p' "$f" |
            while read -r to; do
                [ "$to" = "$from" ] && continue
                echo "$folders" | grep -qx "$to" || continue
                echo "$from $to $f"
            done
    done)
    cycles=$(echo "$edges" | awk '
        NF == 3 {
            key = $1 " " $2
            if (!(key in via)) { via[key] = $3; n[$1]++; adj[$1, n[$1]] = $2;
                                 ne++; ea[ne] = $1; eb[ne] = $2 }
        }
        END {
            for (e = 1; e <= ne; e++) {
                a = ea[e]; b = eb[e]
                # BFS from b to a.
                split("", seen); split("", parent)
                head = 1; tail = 1; q[1] = b; seen[b] = 1; found = 0
                while (head <= tail && !found) {
                    u = q[head++]
                    for (i = 1; i <= n[u]; i++) {
                        v = adj[u, i]
                        if (v in seen) continue
                        seen[v] = 1; parent[v] = u; q[++tail] = v
                        if (v == a) { found = 1; break }
                    }
                }
                if (!found) continue
                # Path b ... a, rebuilt backwards from a.
                m = 0; v = a
                while (v != b) { path[++m] = v; v = parent[v] }
                path[++m] = b
                cyc = a; nodes[1] = a; k = 1
                for (i = m; i >= 1; i--) { cyc = cyc " -> " path[i]; nodes[++k] = path[i] }
                # Key: the sorted set of folders (path[] ends with a again).
                for (i = 2; i <= k; i++) { x = nodes[i]; j = i - 1
                    while (j >= 1 && nodes[j] > x) { nodes[j + 1] = nodes[j]; j-- }
                    nodes[j + 1] = x }
                setkey = ""
                for (i = 1; i <= k; i++) if (i == 1 || nodes[i] != nodes[i - 1]) setkey = setkey " " nodes[i]
                if (setkey in done) continue
                done[setkey] = 1
                print "lint: include cycle between folders of src/: " cyc
                prev = a
                for (i = m; i >= 1; i--) {
                    print "lint:   " prev " -> " path[i] " (e.g. " via[prev " " path[i]] ")"
                    prev = path[i]
                }
            }
        }')
    if [ -n "$cycles" ]; then
        echo "$cycles"
        echo "lint: a folder of src/ must not include from a folder that includes it back;" >&2
        echo "lint: move the shared declarations down into a folder both can include." >&2
        status=1
    fi
fi

# ---- 3. boundaries: nothing shipped includes tests/; public headers -------
for d in tools examples workloads; do
    [ -d "$d" ] || continue
    hits=$(find "$d" -name '*.[ch]' | sort | xargs grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]([./]*/)?tests/' /dev/null || true)
    if [ -n "$hits" ]; then
        echo "$hits"
        echo "lint: $d/ is shipped code and must not include anything from tests/" >&2
        status=1
    fi
done
if [ -d include/moonpool ]; then
    hits=$(grep -nHE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' include/moonpool/*.h |
           grep -vE '#[[:space:]]*include[[:space:]]*"moonpool/[a-z_]+\.h"' || true)
    if [ -n "$hits" ]; then
        echo "$hits"
        echo "lint: public headers include only \"moonpool/...\" and system headers" >&2
        status=1
    fi
fi

[ $status -eq 0 ] && echo "lint: ok ($nfiles files; no include cycle between folders of src/)"
exit $status
