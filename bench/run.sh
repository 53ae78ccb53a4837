#!/usr/bin/env bash
# Throughput and tail latency on loopback with wrk: straight to a fast upstream (the
# ceiling), through nginx configured for the same route, and through meshgate; then the
# same two proxies terminating TLS (keep-alive clients, so mostly record encryption). The proxy
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
up=18080 ngx=18081 mg=18082 ngxs=18083 mgs=18084 admin=18090
cleanup() {
  [ -f "$work/up.pid" ] && kill "$(cat "$work/up.pid")" 2>/dev/null || true
  [ -f "$work/ngx.pid" ] && kill "$(cat "$work/ngx.pid")" 2>/dev/null || true
  [ -n "${mgpid:-}" ] && kill "$mgpid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/cert"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj /CN=bench.example.com -addext subjectAltName=DNS:bench.example.com \
  -keyout "$work/cert/tls.key" -out "$work/cert/tls.crt" 2>/dev/null

nginx_conf() { # name listen body [tls listen]
  local tls=""
  [ -n "${4:-}" ] && tls="server { listen 127.0.0.1:$4 ssl; ssl_certificate $work/cert/tls.crt; ssl_certificate_key $work/cert/tls.key; $3 }"
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
  $tls
}
CONF
}
nginx_conf up "$up" 'location / { return 200 "ok\n"; }'
nginx_conf ngx "$ngx" 'location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }' "$ngxs"
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
  - port: {number: $mgs, name: https, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, serverCertificate: $work/cert/tls.crt, privateKey: $work/cert/tls.key}
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
curl -skf "https://127.0.0.1:$mgs/" >/dev/null || { echo "meshgate not serving TLS:"; cat "$work/mg.log"; exit 1; }

run() { # label port [scheme] → "rps p99_ms"
  local out rps p99
  out=$(taskset -c 1 wrk -t1 -c"$conns" -d"${duration}s" --latency "${3:-http}://127.0.0.1:$2/" 2>&1)
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
read -r ns_rps ns_p99 < <(run nginx-tls "$ngxs" https)
read -r ms_rps ms_p99 < <(run mg-tls "$mgs" https)
awk -v m="$ms_rps" -v n="$ns_rps" -v mp="$ms_p99" -v np="$ns_p99" 'BEGIN {
  printf "TLS: meshgate/nginx throughput: %.2f   p99 latency: %.2f\n", m/n, mp/np }'
