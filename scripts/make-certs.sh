#!/bin/sh
# Make a cluster CA and one node certificate it signs, for TLS between
# moonpool nodes ([security] tls_cert, tls_key, tls_ca; docs/security.md).
#
#   scripts/make-certs.sh DIR [NAME...]
#
# writes DIR/ca.pem and DIR/ca.key (keep ca.key offline in production),
# and for each NAME (default: node) DIR/NAME.pem and DIR/NAME.key (mode
# 600). ECDSA P-256, valid 365 days. Needs the openssl command.
set -eu
[ $# -ge 1 ] || { echo "usage: $0 DIR [NAME...]" >&2; exit 2; }
dir=$1; shift
[ $# -ge 1 ] || set -- node
command -v openssl >/dev/null || { echo "$0: the openssl command is missing (apt-get install openssl)" >&2; exit 1; }
mkdir -p "$dir"
cd "$dir"
umask 077
ec="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
if [ ! -f ca.pem ]; then
    openssl req -x509 $ec -keyout ca.key -out ca.pem -days 365 -subj /CN=moonpool-cluster-ca 2>/dev/null
fi
for n in "$@"; do
    openssl req $ec -keyout "$n.key" -out "$n.csr" -subj "/CN=$n" 2>/dev/null
    openssl x509 -req -in "$n.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
        -out "$n.pem" -days 365 2>/dev/null
    rm -f "$n.csr"
    chmod 600 "$n.key"
    echo "$dir/$n.pem, $dir/$n.key (CA $dir/ca.pem)"
done
