#!/usr/bin/env bash
# Throughput and tail latency on loopback with wrk: straight to a fast upstream (the
# ceiling), through nginx configured for the same route, and through meshgate. The proxy
# under test gets core 0 and one worker; the upstream and wrk share core 1. Figures vary
# with the machine: compare the meshgate/nginx ratio, measured in the same run.
#
#   bench/run.sh [DURATION_SECONDS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
conns=${2:-32}

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || need+=(nginx-light)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" != 0 ] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
./tests/setup.sh
cargo build --release -q

work=$(mktemp -d)
up=18080 ngx=18081 mg=18082 admin=18090
cleanup() {
  [ -f "$work/up.pid" ] && kill "$(cat "$work/up.pid")" 2>/dev/null || true
  [ -f "$work/ngx.pid" ] && kill "$(cat "$work/ngx.pid")" 2>/dev/null || true
  [ -n "${mgpid:-}" ] && kill "$mgpid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

nginx_conf() { # name listen body
  cat > "$work/$1.conf" <<CONF
worker_processes 1;
daemon on;
pid $work/$1.pid;
error_log $work/$1.err warn;
events { worker_connections 4096; }
http {
  access_log off;
  upstream up { server 127.0.0.1:$up; keepalive 128; }
  server { listen 127.0.0.1:$2; $3 }
}
CONF
}
nginx_conf up "$up" 'location / { return 200 "ok\n"; }'
nginx_conf ngx "$ngx" 'location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }'
mkdir -p "$work/tmp" && cd "$work"
taskset -c 1 nginx -p "$work/tmp" -c "$work/up.conf" 2>/dev/null
taskset -c 0 nginx -p "$work/tmp" -c "$work/ngx.conf" 2>/dev/null
cd - >/dev/null

mkdir -p "$work/conf"
cat > "$work/conf/bench.yaml" <<YAML
apiVersion: meshgate.io/v1alpha1
kind: MeshConfig
metadata: {name: bench}
spec: {defaultBindAddress: 127.0.0.1}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: bench}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: $mg, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bench}
spec:
  hosts: ["*"]
  gateways: [bench]
  http:
  - match: [{uri: {prefix: /}}]
    route: [{destination: {host: upstream.bench.internal}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: upstream}
spec:
  hosts: [upstream.bench.internal]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: $up}}]
YAML
taskset -c 0 ./target/release/meshgate run --config "$work/conf" --admin "127.0.0.1:$admin" 2>"$work/mg.log" &
mgpid=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$admin/ready" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$mg/" >/dev/null || { echo "meshgate not serving:"; cat "$work/mg.log"; exit 1; }
curl -sf "http://127.0.0.1:$ngx/" >/dev/null || { echo "nginx not serving"; cat "$work/ngx.err"; exit 1; }

run() { # label port → "rps p99_ms"
  local out rps p99
  out=$(taskset -c 1 wrk -t1 -c"$conns" -d"${duration}s" --latency "http://127.0.0.1:$2/" 2>&1)
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}' <<<"$out")
  printf '%-10s %12s req/s   p99 %8s ms\n' "$1" "$rps" "$p99" >&2
  echo "$rps $p99"
}
echo "wrk -t1 -c$conns -d${duration}s, proxy on core 0, upstream and wrk on core 1" >&2
read -r d_rps d_p99 < <(run direct "$up")
read -r n_rps n_p99 < <(run nginx "$ngx")
read -r m_rps m_p99 < <(run meshgate "$mg")
awk -v m="$m_rps" -v n="$n_rps" -v mp="$m_p99" -v np="$n_p99" -v d="$d_rps" 'BEGIN {
  printf "meshgate/nginx throughput: %.2f   p99 latency: %.2f   meshgate/direct: %.2f\n", m/n, mp/np, m/d }'
