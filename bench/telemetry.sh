#!/usr/bin/env bash
# The cost of telemetry per request: CPU time of the proxy process per request served, and
# throughput and p99 from wrk, for these contenders, measured in the same run in an order
# rotated round by round:
#   nginx       one worker, keep-alive upstream (as bench/run.sh): the yardstick
#   pingora     bench/bare_pingora.rs, a stock Pingora proxy with nothing added, one thread:
#               "Pingora as it comes", so meshgate's own cost shows (PINGORA=0 leaves it out)
#   base        $BASE_BIN, if given: a meshgate without telemetry (e.g. built at 11e4f25)
#   mg          $NEW_BIN (default ./target/release/meshgate): metrics only, no access log
#   mg-json     the same with accessLogFile: <tmpdir>/access.log, accessLogEncoding: JSON
# Each meshgate measurement starts a fresh process (so the access log file starts empty);
# nginx is started once. Every measurement is a 1 s warm-up, then DURATION s measured. The
# proxy has core 0 (meshgate then runs one worker), wrk and the nginx upstream (tiny body)
# core 1; config as bench/run.sh's plain-HTTP part.
#
# CPU µs/req = (utime+stime delta of the proxy process, all threads, from /proc/PID/stat,
# ticks of `getconf CLK_TCK`) / requests wrk completed in the window. It is the figure that
# tells on a noisy shared machine: req/s moves with whatever else runs on core 1, CPU per
# request much less. Read the "vs base" ratios (medians, and the median of the per-round
# paired ratios with how many rounds were higher); "vs nginx" puts them on a known scale.
# For mg-json the script checks one log line per request (lines >= requests - 1%) and
# prints meshgate_access_log_dropped_total. Spread = (max-min)/median across rounds.
#
# CLOSE=1 makes every request open a new connection (wrk with `Connection: close`): the
# accept path's cost instead of the request path's.
#
#   [BASE_BIN=...] [NEW_BIN=...] [CLOSE=1] bench/telemetry.sh [DURATION_SECONDS] [CONNECTIONS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-8}
conns=${2:-64}
rounds=${3:-3}

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || need+=(nginx-light)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" != 0 ] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
./tests/setup.sh
if [ -z "${NEW_BIN:-}" ]; then
  cargo build --release -q
  NEW_BIN=$PWD/target/release/meshgate
fi
if [ "${PINGORA:-1}" = 1 ]; then
  cargo build --release -q --example bare_pingora
  PINGORA_BIN=$PWD/target/release/examples/bare_pingora
fi
busy=$(pgrep -x 'cargo|rustc' || true)
[ -n "$busy" ] && echo "WARNING: cargo/rustc running (pids $(echo $busy)): figures will be noisy" >&2

wrk_close=()
[ "${CLOSE:-}" = 1 ] && wrk_close=(-H "Connection: close")

work=$(mktemp -d)
up=18180 ngx=18181 mg=18182 bare=18183 admin=18190
hz=$(getconf CLK_TCK)
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
sleep 0.2
ngx_worker=$(pgrep -P "$(cat "$work/ngx.pid")" | head -1)
curl -sf "http://127.0.0.1:$ngx/" >/dev/null || { echo "nginx not serving"; cat "$work/ngx.err"; exit 1; }

conf() { # dir [mesh config extra]
  mkdir -p "$work/$1"
  cat > "$work/$1/bench.yaml" <<YAML
apiVersion: meshgate.io/v1alpha1
kind: MeshConfig
metadata: {name: bench}
spec: {defaultBindAddress: 127.0.0.1${2:-}}
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
}
conf plain
conf json ", accessLogFile: $work/access.log, accessLogEncoding: JSON"
log=$work/access.log

start_mg() { # binary confdir → mgpid
  rm -f "$log"
  taskset -c 0 "$1" run --config "$work/$2" --admin "127.0.0.1:$admin" 2>"$work/mg.log" &
  mgpid=$!
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$admin/ready" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -sf "http://127.0.0.1:$mg/" >/dev/null || { echo "meshgate ($1) not serving:"; cat "$work/mg.log"; exit 1; }
}
start_bare() { # → mgpid (stopped as meshgate is)
  taskset -c 0 "$PINGORA_BIN" "127.0.0.1:$bare" "127.0.0.1:$up" 1 2>"$work/bare.log" &
  mgpid=$!
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$bare/" >/dev/null 2>&1 && return
    sleep 0.1
  done
  echo "bare pingora not serving:"; cat "$work/bare.log"; exit 1
}
# SIGINT: a fast stop (SIGTERM would drain for drainDuration first).
stop_mg() { kill -INT "$mgpid"; wait "$mgpid" 2>/dev/null || true; mgpid=""; }
ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
lines() { [ -f "$log" ] && wc -l <"$log" || echo 0; }

measure() { # name round
  local name=$1 pid port=$mg out t0 t1 req rps p99 l0=0 l1=0 extra=""
  case $name in
    nginx) pid=$ngx_worker port=$ngx ;;
    pingora) start_bare; pid=$mgpid port=$bare ;;
    base) start_mg "$BASE_BIN" plain; pid=$mgpid ;;
    mg) start_mg "$NEW_BIN" plain; pid=$mgpid ;;
    mg-json) start_mg "$NEW_BIN" json; pid=$mgpid ;;
  esac
  taskset -c 1 wrk -t1 -c"$conns" -d1s "${wrk_close[@]}" "http://127.0.0.1:$port/" >/dev/null 2>&1
  sleep 0.5
  l0=$(lines); t0=$(ticks "$pid")
  out=$(taskset -c 1 wrk -t1 -c"$conns" -d"${duration}s" --latency "${wrk_close[@]}" "http://127.0.0.1:$port/" 2>&1)
  sleep 0.5 # the access-log thread's last flush counts too
  t1=$(ticks "$pid"); l1=$(lines)
  req=$(awk '/requests in/ {print $1}' <<<"$out")
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}' <<<"$out")
  grep -qE 'Non-2xx|Socket errors' <<<"$out" && extra+=" [$(grep -E 'Non-2xx|Socket errors' <<<"$out" | tr -s ' ' | tr '\n' ' ')]"
  if [ "$name" = mg-json ]; then
    local got=$((l1 - l0)) dropped
    dropped=$(curl -s "http://127.0.0.1:$admin/stats/prometheus" | awk '/^meshgate_access_log_dropped_total/ {print $2}')
    extra+=" log lines $got/$req requests, dropped ${dropped:-?}"
    [ "$got" -ge $((req - req / 100)) ] || extra+=" LINES MISSING"
  fi
  [ -n "${mgpid:-}" ] && stop_mg
  local cpu
  cpu=$(awk -v d=$((t1 - t0)) -v hz="$hz" -v r="$req" 'BEGIN {printf "%.2f", d * 1e6 / hz / r}')
  printf 'round %d %-8s %9s req/s  p99 %7s ms  CPU %6s us/req (%d%% of a core)%s\n' \
    "$2" "$name" "$rps" "$p99" "$cpu" $(((t1 - t0) * 100 / hz / duration)) "$extra" >&2
  echo "$name $2 $rps $cpu $p99" >>"$work/results"
}

names=(nginx)
[ -n "${PINGORA_BIN:-}" ] && names+=(pingora)
[ -n "${BASE_BIN:-}" ] && names+=(base)
names+=(mg mg-json)
n=${#names[@]}
echo "wrk -t1 -c$conns -d${duration}s x $rounds rounds; proxy on core 0, upstream and wrk on core 1; new: $NEW_BIN${BASE_BIN:+, base: $BASE_BIN}" >&2
for r in $(seq 1 "$rounds"); do
  for i in $(seq 0 $((n - 1))); do measure "${names[$(((i + r - 1) % n))]}" "$r"; done
done

# Table: medians and spread per contender, then each meshgate variant against nginx and base.
awk -v order="${names[*]}" '
function med(a, k,   i, j, t, b) { for (i = 1; i <= k; i++) b[i] = a[i]
  for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (b[j] < b[i]) { t = b[i]; b[i] = b[j]; b[j] = t }
  lo = b[1]; hi = b[k]; return k % 2 ? b[(k + 1) / 2] : (b[k / 2] + b[k / 2 + 1]) / 2 }
function spread(a, k,   m) { m = med(a, k); return 100 * (hi - lo) / m }
{ k[$1]++; rps[$1, k[$1]] = $3; cpu[$1, k[$1]] = $4; p99[$1, k[$1]] = $5; byround[$1, $2] = $4; R[$2] = 1 }
END {
  nn = split(order, names, " ")
  printf "\n%-8s %10s %7s %10s %7s %9s %7s\n", "", "req/s", "spread", "CPU us/req", "spread", "p99 ms", "spread"
  for (i = 1; i <= nn; i++) { c = names[i]
    for (j = 1; j <= k[c]; j++) { a[j] = rps[c, j]; b[j] = cpu[c, j]; d[j] = p99[c, j] }
    M[c, "rps"] = med(a, k[c]); s1 = spread(a, k[c]); M[c, "cpu"] = med(b, k[c]); s2 = spread(b, k[c])
    M[c, "p99"] = med(d, k[c]); s3 = spread(d, k[c])
    printf "%-8s %10.0f %6.1f%% %10.2f %6.1f%% %9.2f %6.1f%%\n", c, M[c, "rps"], s1, M[c, "cpu"], s2, M[c, "p99"], s3 }
  printf "\n"
  for (i = 1; i <= nn; i++) { c = names[i]; if (c !~ /^mg/ && c != "pingora") continue
    printf "%-8s vs nginx: CPU/req %.3f  req/s %.3f", c, M[c, "cpu"] / M["nginx", "cpu"], M[c, "rps"] / M["nginx", "rps"]
    if (k["pingora"] && c != "pingora") printf "   vs bare pingora: CPU/req %.3f", M[c, "cpu"] / M["pingora", "cpu"]
    if (k["base"] && c != "pingora") {
      np = 0; up = 0
      for (r in R) if ((c, r) in byround && ("base", r) in byround) { q[++np] = byround[c, r] / byround["base", r]; if (q[np] > 1) up++ }
      printf "   vs base: CPU/req %.3f (%+.2f us)  req/s %.3f  paired CPU/req %.3f, higher in %d of %d rounds", \
        M[c, "cpu"] / M["base", "cpu"], M[c, "cpu"] - M["base", "cpu"], M[c, "rps"] / M["base", "rps"], med(q, np), up, np }
    printf "\n" }
}' "$work/results"
