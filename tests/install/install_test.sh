#!/bin/bash
# moonpool as a user gets it: install, then build a program outside the tree.
#
#   tests/install/install_test.sh SOURCE_DIR BUILD_DIR C_COMPILER [--no-subdir]
#
# 1. `make install` with PREFIX and DESTDIR into a staging directory, and
#    `cmake --install --prefix` into a second prefix, both under BUILD_DIR;
#    the expected files must be there.
# 2. counter.c (a Counter actor on SQLite, printing its count and the
#    header/library versions) is built with `pkg-config --cflags --libs
#    moonpool` against the first and with find_package(moonpool) (a tiny
#    CMake project, tests/install/CMakeLists.txt: moonpool::moonpool and
#    moonpool::moonpool_static) against the second. Each program runs
#    twice on one database: "count 1", then "count 2".
# 3. The installed libmoonpool.so has its SONAME, exports nothing but the
#    public API (and the provider node), and does not need libpq; the
#    SQLite-only programs do not load libpq. pg_probe.c shows the
#    PostgreSQL provider unreachable without moonpool-postgres (MP_EINVAL)
#    and reached with it (MP_ECONNREFUSED from a port nobody listens on).
# 4. Unless --no-subdir: a project that add_subdirectory()s the source tree
#    builds and runs the same program.
set -euo pipefail
src=$(cd "$1" && pwd)
build=$(cd "$2" && pwd)
cc=$3
subdir=1
[ "${4:-}" = "--no-subdir" ] && subdir=0
work=$(mktemp -d "$build/install-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "install_test: FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }

ver() { sed -n "s/^#define MP_VERSION_$1 \([0-9]*\)$/\1/p" "$src/include/moonpool/version.h"; }
major=$(ver MAJOR) minor=$(ver MINOR) patch=$(ver PATCH)
version=$major.$minor.$patch
if [ "$major" = 0 ]; then soname=libmoonpool.so.0.$minor; else soname=libmoonpool.so.$major; fi

# ---- 1. install ---------------------------------------------------------------
step "make install PREFIX=/opt/moonpool DESTDIR=$work/dest"
make -s -C "$src" install BUILD="$build" PREFIX=/opt/moonpool DESTDIR="$work/dest" \
    >"$work/make-install.log" 2>&1 || { cat "$work/make-install.log"; fail "make install"; }
staged=$work/dest/opt/moonpool
step "cmake --install --prefix $work/prefix"
cmake --install "$build" --prefix "$work/prefix" >"$work/cmake-install.log" ||
    { cat "$work/cmake-install.log"; fail "cmake --install"; }
prefix=$work/prefix
# The manifest of the last install lists every file it wrote (the usual
# uninstall removes what it lists), the systemd unit included.
manifest=$build/install_manifest.txt
grep -q "^$prefix/lib/systemd/system/moonpool@.service$" "$manifest" ||
    fail "$manifest does not list the systemd unit"
while read -r f; do [ -e "$f" ] || fail "$manifest lists $f, not installed"; done <"$manifest"

for root in "$staged" "$prefix"; do
    pc=$(find "$root" -name moonpool.pc -path '*/pkgconfig/*' | sed -n 1p)
    [ -n "$pc" ] || fail "no moonpool.pc under $root"
    libdir=$(dirname "$(dirname "$pc")")
    for f in include/moonpool/moonpool.h include/moonpool/version.h \
             include/moonpool/node.h bin/moonpool share/doc/moonpool/LICENSE; do
        [ -e "$root/$f" ] || fail "not installed: $root/$f"
    done
    for f in libmoonpool.a libmoonpool.so "$soname" "libmoonpool.so.$version" \
             cmake/moonpool/moonpoolConfig.cmake cmake/moonpool/moonpoolConfigVersion.cmake; do
        [ -e "$libdir/$f" ] || fail "not installed: $libdir/$f"
    done
    unit=$root/lib/systemd/system/moonpool@.service
    [ -e "$unit" ] || fail "not installed: $unit"
    want_exec="ExecStart=${root#"$work/dest"}/bin/moonpool node"
    grep -q "^$want_exec" "$unit" || fail "$unit: no '$want_exec' line: $(grep ExecStart "$unit")"
    out=$("$root/bin/moonpool" --version)
    [ "$out" = "moonpool $version" ] || fail "installed moonpool --version says '$out', want 'moonpool $version'"
done
echo "installed: headers, libmoonpool.{a,so}, $soname, bin/moonpool, moonpool.pc, CMake package, LICENSE"

# ---- 3. the installed shared library -------------------------------------------
lib=$prefix/lib/libmoonpool.so.$version
[ -e "$lib" ] || lib=$(find "$prefix" -name "libmoonpool.so.$version" | sed -n 1p)
got=$(readelf -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[ "$got" = "$soname" ] || fail "SONAME of $lib is '$got', want '$soname'"
dyn=$(readelf -d "$lib")
if grep -q 'NEEDED.*libpq' <<<"$dyn"; then fail "libmoonpool.so needs libpq"; fi
# Exports: exactly the names of the version script made from the public
# headers (build/moonpool.map); an internal function (defined in the static
# library, absent from the map) must not be exported.
map=$build/moonpool.map
[ -s "$map" ] || fail "no $map"
sed -n 's/^ *\(mp_[A-Za-z0-9_]*\);$/\1/p' "$map" | sort -u >"$work/allowed"
nm -D --defined-only "$lib" | awk '$2 != "A" { print $3 }' | sed 's/@.*//' | sort -u >"$work/exported"
extra=$(comm -23 "$work/exported" "$work/allowed")
[ -z "$extra" ] || fail "libmoonpool.so exports symbols that are not public API: $extra"
nm --defined-only "$prefix"/lib*/libmoonpool.a 2>/dev/null | awk '$2 == "T" { print $3 }' | sort -u >"$work/internal.all"
hidden=$(comm -23 "$work/internal.all" "$work/allowed" | grep -v '^mp__' | sed -n 1p)
[ -n "$hidden" ] || fail "found no internal function to check hiding with"
grep -qx "$hidden" "$work/exported" && fail "internal $hidden is exported"
grep -qx mp_version "$work/exported" || fail "mp_version is not exported"
echo "$soname: SONAME ok, $(wc -l <"$work/exported") symbols exported (all public), e.g. $hidden hidden, no libpq"

# ---- 2. build and run outside programs ------------------------------------------
run_twice() { # NAME PROGRAM [env...]
    local name=$1 prog=$2 db
    db=$(mktemp -u "$work/$name.XXXXXX.db")
    for want in 1 2; do
        out=$("$prog" "$db") || fail "$name exited $? ($out)"
        echo "$out" | sed "s/^/  $name: /"
        grep -qx "header $version library $version" <<<"$out" || fail "$name: versions: $out"
        grep -qx "count $want" <<<"$out" || fail "$name: want 'count $want', got: $out"
    done
}
# (ldd into a variable first: `ldd | grep -q` fails under pipefail when grep
# stops reading early.)
no_libpq() { # PROGRAM
    local l
    l=$(ldd "$1")
    if grep -q libpq <<<"$l"; then fail "$1 (SQLite only) loads libpq: $(grep libpq <<<"$l")"; fi
}

step "pkg-config (DESTDIR install, relocated .pc)"
export PKG_CONFIG_PATH=$(dirname "$(find "$staged" -name moonpool.pc | sed -n 1p)")
[ "$(pkg-config --modversion moonpool)" = "$version" ] || fail "pkg-config --modversion moonpool"
flags=$(pkg-config --cflags --libs moonpool) || fail "pkg-config --cflags --libs moonpool"
echo "  cc counter.c $flags"
# shellcheck disable=SC2086
"$cc" -Wall -Werror -o "$work/counter_pc" "$src/tests/install/counter.c" $flags ||
    fail "build with pkg-config"
staged_lib=$(dirname "$(find "$staged" -name "$soname" | sed -n 1p)")
ldd_out=$(LD_LIBRARY_PATH=$staged_lib ldd "$work/counter_pc")
grep -q "$soname => $staged_lib/" <<<"$ldd_out" || fail "counter_pc does not load the installed $soname: $ldd_out"
LD_LIBRARY_PATH=$staged_lib no_libpq "$work/counter_pc"
LD_LIBRARY_PATH=$staged_lib run_twice pkg-config "$work/counter_pc"
# The PostgreSQL provider: absent from a program built with moonpool alone
# (MP_EINVAL, no libpq), present with moonpool-postgres (the connection to a
# port where nothing listens is refused: the provider really ran).
probe() { # NAME PROGRAM WANT
    local out
    out=$("$2") || fail "$1 exited $?"
    [ "$out" = "$3" ] || fail "$1: PostgreSQL open says $out, want $3"
    echo "  $1: mp_storage_postgres_open -> $out"
}
# shellcheck disable=SC2086
"$cc" -o "$work/pg_probe_without" "$src/tests/install/pg_probe.c" $flags || fail "build pg_probe"
LD_LIBRARY_PATH=$staged_lib no_libpq "$work/pg_probe_without"
LD_LIBRARY_PATH=$staged_lib probe "pkg-config moonpool" "$work/pg_probe_without" MP_EINVAL
if [ -e "$staged_lib/libmoonpool-postgres.so" ]; then
    pgflags=$(pkg-config --cflags --libs moonpool-postgres) || fail "pkg-config moonpool-postgres"
    # shellcheck disable=SC2086
    "$cc" -o "$work/pg_probe_with" "$src/tests/install/pg_probe.c" $pgflags ||
        fail "build with moonpool-postgres"
    ldd_out=$(LD_LIBRARY_PATH=$staged_lib ldd "$work/pg_probe_with")
    grep -q libpq <<<"$ldd_out" ||
        fail "a program linking moonpool-postgres does not load libpq"
    LD_LIBRARY_PATH=$staged_lib probe "pkg-config moonpool-postgres" "$work/pg_probe_with" MP_ECONNREFUSED
fi
unset PKG_CONFIG_PATH

step "find_package(moonpool) (cmake --install --prefix)"
cmake -S "$src/tests/install" -B "$work/cmake-build" -DCMAKE_C_COMPILER="$cc" \
    -DCMAKE_PREFIX_PATH="$prefix" >"$work/cmake.log" 2>&1 || { cat "$work/cmake.log"; fail "find_package configure"; }
cmake --build "$work/cmake-build" >"$work/cmake-build.log" 2>&1 || { cat "$work/cmake-build.log"; fail "find_package build"; }
ldd_out=$(ldd "$work/cmake-build/counter")
grep -q "$soname => $prefix/" <<<"$ldd_out" || fail "find_package counter does not load the installed $soname"
no_libpq "$work/cmake-build/counter"
run_twice find_package "$work/cmake-build/counter"
ldd_out=$(ldd "$work/cmake-build/counter_static")
if grep -q libmoonpool <<<"$ldd_out"; then fail "counter_static loads libmoonpool.so"; fi
no_libpq "$work/cmake-build/counter_static"
run_twice find_package-static "$work/cmake-build/counter_static"
no_libpq "$work/cmake-build/pg_probe_without"
probe "moonpool::moonpool" "$work/cmake-build/pg_probe_without" MP_EINVAL
if [ -e "$staged_lib/libmoonpool-postgres.so" ]; then
    [ -x "$work/cmake-build/pg_probe_with" ] || fail "find_package found no postgres component"
    probe "moonpool::postgres" "$work/cmake-build/pg_probe_with" MP_ECONNREFUSED
fi

if [ $subdir = 1 ]; then
    step "add_subdirectory(moonpool source tree)"
    cmake -S "$src/tests/install/subdir" -B "$work/subdir-build" -DCMAKE_C_COMPILER="$cc" \
        -DMOONPOOL_SOURCE_DIR="$src" >"$work/subdir.log" 2>&1 || { cat "$work/subdir.log"; fail "add_subdirectory configure"; }
    cmake --build "$work/subdir-build" --target counter -j 2 >"$work/subdir-build.log" 2>&1 ||
        { tail -30 "$work/subdir-build.log"; fail "add_subdirectory build"; }
    no_libpq "$work/subdir-build/counter"
    run_twice add_subdirectory "$work/subdir-build/counter"
fi
echo "install_test: all checks passed"
