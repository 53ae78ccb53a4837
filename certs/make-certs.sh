#!/usr/bin/env bash
# Makes a local CA, a server credential and a client certificate for trying SIMPLE and
# MUTUAL TLS with the shipped example, laid out as MeshConfig `credentialsDir` expects:
#
#   DIR/ca/ca.crt, ca.key             the local CA (its key never leaves ca/)
#   DIR/example/tls.crt, tls.key      the server's credential (`credentialName: example`):
#   DIR/example/ca.crt                  certificate, key, and the CA that MUTUAL servers
#                                       verify client certificates against
#   DIR/client/tls.crt, tls.key       a client certificate (CN=client, SAN
#   DIR/client/ca.crt                   URI spiffe://meshgate.local/client) and the CA
#                                       to verify the server with (curl --cacert)
#
# Usage: certs/make-certs.sh [DIR [HOST...]]
#   DIR    default: conf/certs of this checkout (the shipped conf/meshgate.yaml's
#          `credentialsDir: certs`), or /etc/meshgate/certs for an installed package.
#   HOST   extra names or IP addresses for the server certificate; it always has
#          localhost, 127.0.0.1 and ::1.
#
# An existing DIR/ca is reused (clients that trust it keep working); the server and
# client certificates are issued anew each run, written beside their final names and
# renamed into place, key first, so a running meshgate picks them up within a second.
# Run as root with a `meshgate` user present (the package's), the server credential is
# given to that user, so the service can read its key (mode 0600 either way).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ $# -ge 1 ]; then
  dir="$1"
  shift
elif [ -f "$here/../conf/meshgate.yaml" ]; then
  dir="$here/../conf/certs"
else
  dir=/etc/meshgate/certs
fi
command -v openssl >/dev/null 2>&1 || { echo "make-certs.sh: openssl is needed" >&2; exit 1; }

days_ca=3650
days_leaf=365
umask 022
mkdir -p "$dir/ca" "$dir/example" "$dir/client"
# ca/ stays listable (0755; its key is 0600): meshgate reads its config directory
# recursively, and a credentialsDir inside it (conf/certs, /etc/meshgate/certs) with a
# directory the service's user cannot list would make the config unreadable.
chmod 755 "$dir/ca"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Subject alternative names of the server certificate.
san="DNS:localhost,IP:127.0.0.1,IP:::1"
for h in "$@"; do
  if [[ "$h" =~ ^[0-9.]+$ || "$h" == *:* ]]; then san="$san,IP:$h"; else san="$san,DNS:$h"; fi
done

newkey() { # PATH: an ECDSA P-256 key (PKCS#8), mode 0600
  (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null)
}

if [ ! -s "$dir/ca/ca.crt" ] || [ ! -s "$dir/ca/ca.key" ]; then
  newkey "$tmp/ca.key"
  cat >"$tmp/ca.ext" <<'EOF'
basicConstraints = critical, CA:true, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
  openssl req -new -x509 -key "$tmp/ca.key" -subj "/O=meshgate/CN=meshgate local CA" \
    -days "$days_ca" -sha256 -extensions v3_ca -config <(printf '[req]\ndistinguished_name=dn\n[dn]\n[v3_ca]\n'; cat "$tmp/ca.ext") \
    -out "$tmp/ca.crt"
  mv "$tmp/ca.key" "$dir/ca/ca.key"
  mv "$tmp/ca.crt" "$dir/ca/ca.crt"
  echo "make-certs.sh: new CA $dir/ca/ca.crt" >&2
fi

issue() { # NAME CN EXTENSIONS: DIR/NAME/{tls.crt,tls.key,ca.crt}, signed by the CA
  local name="$1" cn="$2" ext="$3"
  newkey "$tmp/$name.key"
  openssl req -new -key "$tmp/$name.key" -subj "/O=meshgate/CN=$cn" -out "$tmp/$name.csr"
  printf '%s\n' "$ext" >"$tmp/$name.ext"
  openssl x509 -req -in "$tmp/$name.csr" -CA "$dir/ca/ca.crt" -CAkey "$dir/ca/ca.key" \
    -CAcreateserial -CAserial "$tmp/ca.srl" -days "$days_leaf" -sha256 \
    -extfile "$tmp/$name.ext" -out "$tmp/$name.crt" 2>/dev/null
  cp "$dir/ca/ca.crt" "$tmp/$name.ca.crt"
  # Key first, then the certificate: a reader never pairs a new certificate with an old key.
  mv "$tmp/$name.key" "$dir/$name/tls.key.new" && mv "$dir/$name/tls.key.new" "$dir/$name/tls.key"
  mv "$tmp/$name.crt" "$dir/$name/tls.crt.new" && mv "$dir/$name/tls.crt.new" "$dir/$name/tls.crt"
  mv "$tmp/$name.ca.crt" "$dir/$name/ca.crt.new" && mv "$dir/$name/ca.crt.new" "$dir/$name/ca.crt"
}

issue example localhost "basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = $san"
issue client client "basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectAltName = URI:spiffe://meshgate.local/client"

# The packaged service runs as `meshgate`: let it read the server's key.
if [ "$(id -u)" = 0 ] && id meshgate >/dev/null 2>&1; then
  chown -R meshgate:meshgate "$dir/example"
fi

openssl verify -CAfile "$dir/ca/ca.crt" "$dir/example/tls.crt" "$dir/client/tls.crt" >/dev/null
echo "make-certs.sh: server credential $dir/example (SAN $san), client $dir/client" >&2
echo "$dir"
