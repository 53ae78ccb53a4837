#!/usr/bin/env bash
# Memory per idle HTTP/1.1 keep-alive connection: N clients each send one request through
# the proxy (to a tiny nginx upstream), then hold their connections open; the proxy's RSS
# growth divided by N, for nginx (one worker, upstream keepalive) and meshgate, in the same
# run. Prints KiB per idle connection.
#
#   [MG_BIN=./target/release/meshgate] bench/idle.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-5000}
command -v nginx >/dev/null || {
  sudo=""; [ "$(id -u)" != 0 ] && sudo=sudo
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nginx-light >/dev/null
}
[ -n "${MG_BIN:-}" ] || { cargo build --release -q; MG_BIN=./target/release/meshgate; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" -lt $((n * 2 + 200)) ]; then
  echo "open-file limit $(ulimit -n) is too low for $n connections" >&2; exit 1
fi

work=$(mktemp -d)
up=18180 ngx=18181 mg=18182 admin=18190
cleanup() {
  for p in "$work"/*.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null || true; done
  [ -n "${mgpid:-}" ] && kill "$mgpid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
conf() { # name listen body
  cat > "$work/$1.conf" <<CONF
worker_processes 1;
daemon on;
pid $work/$1.pid;
error_log $work/$1.err warn;
events { worker_connections $((n + 500)); }
http {
  access_log off;
  keepalive_timeout 600s;
  keepalive_requests 100000;
  upstream up { server 127.0.0.1:$up; keepalive 128; }
  server { listen 127.0.0.1:$2; $3 }
}
CONF
}
conf up "$up" 'location / { return 200 "ok\n"; }'
conf ngx "$ngx" 'location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }'
mkdir -p "$work/tmp" "$work/conf"
nginx -p "$work/tmp" -c "$work/up.conf" 2>/dev/null
nginx -p "$work/tmp" -c "$work/ngx.conf" 2>/dev/null
cat > "$work/conf/all.yaml" <<YAML
apiVersion: meshgate.io/v1alpha1
kind: MeshConfig
metadata: {name: m}
spec: {defaultBindAddress: 127.0.0.1, adminAddress: "127.0.0.1:$admin", maxConnections: $((n + 500))}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: $mg, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: up}
spec:
  hosts: [up.internal]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: $up}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: up}
spec:
  hosts: ["*"]
  gateways: [gw]
  http: [{route: [{destination: {host: up.internal}}]}]
YAML
"$MG_BIN" run --config "$work/conf" >"$work/mg.log" 2>&1 &
mgpid=$!
for _ in $(seq 100); do curl -fs "127.0.0.1:$admin/ready" >/dev/null 2>&1 && break; sleep 0.1; done
ngxworker=$(pgrep -P "$(cat "$work/ngx.pid")" | head -1)
read -r ngx_kib _ <<<"$(python3 bench/tools/idle_conns.py "$ngx" "$ngxworker" "$n")"
read -r mg_kib _ <<<"$(python3 bench/tools/idle_conns.py "$mg" "$mgpid" "$n" || tail -3 "$work/mg.log" >&2)"
echo "RSS per idle keep-alive connection ($n clients, one request each), $(date -u +%F), $(nproc) cores:"
printf '  %-10s %8s KiB\n' nginx "$ngx_kib" meshgate "$mg_kib"
