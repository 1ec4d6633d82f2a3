#!/bin/sh
# Installs the Debian packages moonpool needs, and only those that are missing.
# Called by `make` before anything is built. Nothing is ever downloaded from
# anywhere but Debian's package registry.
#
#   scripts/install-deps.sh [core|fuzz|postgres|valgrind]...   (default: core)
set -eu

core="cmake make gcc pkg-config libuv1-dev libcmocka-dev libjansson-dev libsqlite3-dev libpq-dev libssl-dev postgresql iptables"
fuzz="clang libclang-rt-14-dev"
postgres="postgresql"
valgrind="valgrind"

want=""
[ $# -eq 0 ] && set -- core
for group in "$@"; do
    case "$group" in
        core) want="$want $core" ;;
        fuzz) want="$want $fuzz" ;;
        postgres) want="$want $postgres" ;;
        valgrind) want="$want $valgrind" ;;
        *) echo "install-deps: unknown group '$group' (core, fuzz, postgres, valgrind)" >&2; exit 2 ;;
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

echo "moonpool: installing missing Debian packages:$missing"
if [ "$(id -u)" -ne 0 ]; then
    echo "moonpool: not root; run as root: apt-get install -y$missing" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
echo "moonpool: packages installed."
