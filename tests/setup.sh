#!/usr/bin/env bash
# Installs what building and testing meshgate needs on a fresh Debian machine that has
# only the Rust toolchain. Idempotent: installs nothing that is already there.
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

# Telemetry tests parse /stats/prometheus with the Prometheus Python client's own parser.
if ! python3 -c 'import prometheus_client' >/dev/null 2>&1; then
  echo "tests/setup.sh: installing prometheus_client (pip)" >&2
  python3 -m pip install -q prometheus_client 2>/dev/null \
    || python3 -m pip install -q --break-system-packages prometheus_client
fi
