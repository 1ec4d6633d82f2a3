#!/bin/sh
# Installs the Debian packages moonpool needs, and only those that are missing.
# Called by `make` before anything is built. Nothing is ever downloaded from
# anywhere but Debian's package registry.
#
#   scripts/install-deps.sh [GROUP]...        (default: build)
#   scripts/install-deps.sh --list            what each group installs
#
# Groups (what needs them):
#   build     compiler, CMake and the libraries the core links (libuv,
#             jansson, SQLite, OpenSSL): `make`, `make build`, `make demo`,
#             `make install`. No database server, no test framework.
#   test      what only the tests need: cmocka (unit tests), the openssl
#             command (test certificates), libpq (the
#             PostgreSQL provider, built and tested by `make test`), the
#             PostgreSQL server (the tests start a throwaway one) and
#             iptables (a partition fault of a cluster test): `make test`.
#   postgres  the PostgreSQL client library and server alone.
#   fuzz      clang and its libFuzzer runtime: `make fuzz`.
#   valgrind  `make valgrind`.
# (`core` is the old name of build + test.)
set -eu

build="cmake make gcc pkg-config libuv1-dev libjansson-dev libsqlite3-dev libssl-dev"
test="libcmocka-dev openssl libpq-dev postgresql iptables"
postgres="libpq-dev postgresql"
fuzz="clang libclang-rt-14-dev"
valgrind="valgrind"

if [ "${1:-}" = "--list" ]; then
    for g in build test postgres fuzz valgrind; do
        eval "echo \"$g: \$$g\""
    done
    exit 0
fi

want=""
[ $# -eq 0 ] && set -- build
for group in "$@"; do
    case "$group" in
        build) want="$want $build" ;;
        test) want="$want $test" ;;
        core) want="$want $build $test" ;;
        fuzz) want="$want $fuzz" ;;
        postgres) want="$want $postgres" ;;
        valgrind) want="$want $valgrind" ;;
        *) echo "install-deps: unknown group '$group' (build, test, postgres, fuzz, valgrind; --list)" >&2; exit 2 ;;
    esac
done

missing=""
for pkg in $want; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $pkg"
    fi
done

if [ -z "$missing" ]; then
    exit 0
fi

echo "moonpool: installing missing Debian packages for '$*':$missing"
if [ "$(id -u)" -ne 0 ]; then
    echo "moonpool: not root; run as root: apt-get install -y$missing" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
echo "moonpool: packages installed."
