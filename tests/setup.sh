#!/usr/bin/env bash
# Installs what building and testing meshgate needs on a fresh Debian machine that has
# only the Rust toolchain. Idempotent: installs nothing that is already there.
# `tests/setup.sh build` installs only what building needs (the README's first command:
# running the gateway); with no argument, everything the tests need too.
set -euo pipefail

need=()
# pingora-core's zlib-ng build needs cmake.
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v cc >/dev/null 2>&1 || need+=(gcc)
# Tests drive the gateway with curl too (h2c, HTTPS, HTTP/2 over TLS, client certificates).
command -v curl >/dev/null 2>&1 || need+=(curl)
# TLS tests make their certificates at run time with the openssl command.
command -v openssl >/dev/null 2>&1 || need+=(openssl)

if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  echo "tests/setup.sh: installing ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

[ "${1:-}" = build ] && exit 0

# Telemetry tests parse /stats/prometheus with the Prometheus Python client's own parser;
# the egress CONNECT tests use Python's `requests` as an application behind HTTPS_PROXY.
for module in prometheus_client requests; do
  if ! python3 -c "import $module" >/dev/null 2>&1; then
    echo "tests/setup.sh: installing $module (pip)" >&2
    python3 -m pip install -q "$module" 2>/dev/null \
      || python3 -m pip install -q --break-system-packages "$module"
  fi
done

# Packaging (packaging/build-deb.sh, tests/packaging.rs): cargo-deb builds the .deb
# (strip/objcopy from binutils); systemd-analyze verifies the unit and scores its
# hardening; strace shows which system calls the binary makes, against the unit's filter.
pkg_need=()
command -v objcopy >/dev/null 2>&1 || pkg_need+=(binutils)
command -v systemd-analyze >/dev/null 2>&1 || pkg_need+=(systemd)
command -v strace >/dev/null 2>&1 || pkg_need+=(strace)
if [ ${#pkg_need[@]} -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  echo "tests/setup.sh: installing ${pkg_need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${pkg_need[@]}" >/dev/null
fi
# Major version 3 (the one packaging/ is written and tested against).
if ! cargo deb --version 2>/dev/null | grep -q '^cargo-deb 3\.'; then
  echo "tests/setup.sh: installing cargo-deb 3 (cargo install, a few minutes)" >&2
  cargo install cargo-deb --version '^3' --locked --quiet
fi
