#!/usr/bin/env bash
# Builds the Debian package: installs what the build needs (tests/setup.sh: cmake, and
# cargo-deb when missing), then `cargo deb` (a release build, into ./target), and prints
# the path of the .deb. The debug symbols go to a meshgate-dbgsym .ddeb beside it.
#
#   packaging/build-deb.sh [OUTDIR]      default OUTDIR: target/deb
#   sudo apt install ./target/deb/meshgate_*_amd64.deb
#
# Extra arguments after OUTDIR go to cargo deb (e.g. --deb-revision 2, --fast).
set -euo pipefail
cd "$(dirname "$0")/.."

out="${1:-target/deb}"
shift || true
./tests/setup.sh
mkdir -p "$out"
# Not cargo-deb's default target/debian: each `cargo deb` run (tests/packaging.rs
# makes one) deletes the .debs it finds there.
deb=$(cargo deb --locked -o "$out" "$@" | grep '\.deb$' | tail -n 1)
if [ -z "$deb" ] || [ ! -f "$deb" ]; then
  echo "build-deb.sh: cargo deb made no .deb" >&2
  exit 1
fi
dpkg-deb -I "$deb" | sed -n 's/^ \(Package\|Version\|Architecture\|Installed-Size\): /  \1: /p' >&2
echo "$deb"
