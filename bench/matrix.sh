#!/usr/bin/env bash
# A benchmark matrix in one command: nginx, HAProxy, stock Pingora, a tokio floor and
# meshgate, cell by cell, measured in the same run, in an order rotated round by round; prints a markdown
# table (one row per cell, one column per contender, each figure with its ratio to nginx
# and, for meshgate, to pingora) and writes the raw results to a file it names.
#
# Contenders, each proxy on core 0 with ONE worker/thread (taskset); the load generator and
# the upstreams on core 1:
#   nginx     one worker, upstream keepalive 128 (as bench/telemetry.sh); keepalive_requests
#             raised so clients and the upstream pool are not recycled every 1000 requests;
#             proxy_max_temp_file_size 0 so a 1 MiB body streams instead of going to disk
#   haproxy   Debian's haproxy, nbthread 1, mode http, http-reuse always, started by this
#             script as a daemon (not the system service); h2c by preface detection
#   pingora   bench/bare_pingora.rs, a stock Pingora proxy, one thread (no TLS, no h2c: "–")
#   floor     bench/tokio_floor.rs, the least an HTTP/1 proxy on tokio spends: one thread,
#             an upstream connection per client connection, heads forwarded as they came
#             (the plain HTTP/1 keep-alive rows, idle RSS and in-flight memory: "–" elsewhere;
#             it has no upstream pool, so a new client connection is a new upstream connection
#             and 10,000 idle clients would need 20,000 descriptors). Not a gateway: the floor
#             under Pingora and meshgate, so a ratio to nginx reads as runtime or proxy cost
#   meshgate  `meshgate run`, one worker (core 0 only), Gateway HTTP + HTTPS (credentialName)
# Each measurement starts a fresh proxy process (so memory rows start from scratch) and
# stops it after. Upstream: nginx on core 1 answering / with "ok\n", /16k and /1m with
# 16 KiB and 1 MiB files; bench/tools/matrix_hold.py on core 1 for the in-flight row.
#
# Rows (CELLS picks a subset by these names; default all):
#   tiny      tiny body, keep-alive, wrk -t1 -c64: CPU µs/request, req/s, p99, and the
#             user-space part of the CPU (the rest is the kernel's)
#   16k, 1m   16 KiB and 1 MiB bodies, keep-alive: CPU µs/request, MiB/s (bytes wrk read / s)
#   close     a new connection per request (wrk -H 'Connection: close'): CPU µs/request
#   tls       TLS keep-alive (wrk over https, ECDSA P-256 certificate made at run time):
#             CPU µs/request; the protocol/cipher openssl s_client negotiates, once each
#   tls-full  new TLS connections/s, FULL handshakes, TLS 1.3 and 1.2 rows (TLS12=0: 1.3
#             only): bench/tools/matrix_tls.c (compiled here; matrix_tls.py if it cannot
#             be) with 8 client processes, one request per connection: CPU µs/connection.
#             The OpenSSL client costs more per handshake than the proxies do, so core 1 is
#             the bottleneck (the row shows how busy the proxy and core 1 were): read the CPU
#             per connection, not conn/s
#   tls-resume  the same with resumed handshakes (each client offers its newest session);
#             every connection is checked with SSL_session_reused and flagged if not resumed
#   c1000, c10000  1,000 and 10,000 concurrent keep-alive connections (wrk -c, --timeout
#             10s; QUICK: 2,000). Loaded, a proxy holds an upstream connection per request
#             in flight, so the big row needs 2 descriptors per client: it is capped at
#             (open-file limit - 2000) / 2, i.e. 9,000 where the hard limit is 20,000 (nginx
#             runs out of worker_connections and drops connections above that)
#   h2        HTTP/2 downstream, h2load -c16 -m10: h2c (prior knowledge) on the plain port,
#             else h2 over TLS (ALPN), else "–": CPU µs/request
#   idle      idle RSS after start (proxy process after one request), and RSS per idle
#             keep-alive connection with 10,000 clients (bench/tools/idle_conns.py, as
#             bench/idle.sh)
#   inflight  RSS per in-flight request: 1,000 requests held by the upstream at once,
#             (RSS during - RSS before) / 1,000 (bench/tools/matrix_inflight.py)
#   scale     bench/scale.sh 10000 with MESHGATE (SCALE=0 leaves it out; QUICK: 1000)
#
# CPU µs = (utime+stime delta of the proxy process, all threads, /proc/PID/stat, ticks of
# `getconf CLK_TCK`; for nginx the worker process) / requests (or connections) the load
# tool completed in the measured window; each window follows a 1 s warm-up. Wrong states
# are flagged (⚠) in the table and listed below it: non-2xx answers, socket errors, short
# bodies, TLS connections that did not resume (or did when they should not), a wrong TLS
# version, requests not all held, tools that failed. The machine is shared: figures are
# noisy; the ratios, CPU per request above all, are what to read.
#
# The open-file limit is raised to the hard limit; if that is under what a row needs, the
# row runs with fewer connections (said in its label). HAProxy runs with `no strict-limits`
# (it wants 2 x maxconn descriptors and would refuse to start). Each load tool's output and
# the proxies' logs are kept in RESULTS' .logs/ directory; the table also goes to its .md.
#
#   [MESHGATE=...] [PINGORA_BIN=...] [FLOOR_BIN=...] [DURATION=5] [ROUNDS=1] [QUICK=1] [CELLS="tiny tls-full"]
#   [SCALE=0] [TLS12=0] [CONTENDERS="nginx haproxy pingora floor meshgate"] [RESULTS=file] bench/matrix.sh
# Ports 18600-18699.
set -euo pipefail
cd "$(dirname "$0")/.."
cmdline="$(for v in MESHGATE PINGORA_BIN FLOOR_BIN WORK_STEALING RUNTIME DURATION ROUNDS QUICK CELLS SCALE TLS12 CONTENDERS RESULTS; do
  if [ -n "${!v:-}" ]; then printf '%s=%q ' "$v" "${!v}"; fi; done)bench/matrix.sh $*"
started=$(date +%s)

quick=${QUICK:-0}
if [ "$quick" = 1 ]; then duration=${DURATION:-1}; big=2000; idle_n=2000; hold_s=8; scale_n=1000
else duration=${DURATION:-5}; big=10000; idle_n=10000; hold_s=8; scale_n=10000; fi
rounds=${ROUNDS:-1}
inflight_n=1000
contenders=(${CONTENDERS:-nginx haproxy pingora floor meshgate})
all_cells="tiny 16k 1m close tls tls-full tls-resume c1000 c10000 h2 idle inflight"
[ "${SCALE:-1}" = 1 ] && all_cells+=" scale"
read -r -a cells <<<"${CELLS:-$all_cells}"
results=${RESULTS:-/tmp/meshgate-matrix-$(date +%Y%m%d-%H%M%S).txt}

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || need+=(nginx-light)
command -v haproxy >/dev/null || need+=(haproxy)
command -v h2load >/dev/null || need+=(nghttp2-client)
command -v curl >/dev/null || need+=(curl)
command -v openssl >/dev/null || need+=(openssl)
command -v cc >/dev/null || need+=(gcc)
[ -f /usr/include/openssl/ssl.h ] || need+=(libssl-dev)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" != 0 ] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
# Debian's package may have started its own haproxy service: ours is a separate process on
# other ports, so it is left alone.
if [ -z "${MESHGATE:-}" ]; then
  cargo build --release -q
  MESHGATE=$PWD/target/release/meshgate
fi
if [ -z "${PINGORA_BIN:-}" ]; then
  cargo build --release -q --example bare_pingora
  PINGORA_BIN=$PWD/target/release/examples/bare_pingora
fi
if [ -z "${FLOOR_BIN:-}" ] && [[ " ${contenders[*]} " == *" floor "* ]]; then
  cargo build --release -q --example tokio_floor
  FLOOR_BIN=$PWD/target/release/examples/tokio_floor
fi
busy=$(pgrep -x 'cargo|rustc|cc1|cc1plus|ld' || true)
[ -n "$busy" ] && echo "WARNING: compilers running (pids $(echo $busy)): figures will be noisy" >&2

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
nofile=$(ulimit -n)
# Under load a proxy holds an upstream connection per request in flight, so the many-
# connection row needs two descriptors per client connection; idle clients need one.
fit() { # wanted, descriptors per connection → what the limit allows
  local max=$(((nofile - 2000) / $2))
  [ "$1" -le "$max" ] && echo "$1" || echo "$max"
}
want_big=$big
big=$(fit "$big" 2); idle_n=$(fit "$idle_n" 1)
maxconn=$((big > idle_n ? big + 100 : idle_n + 100))

work=$(mktemp -d)
chmod 755 "$work" # nginx workers (user nobody) read the upstream files under it
up=18600 hold=18601
ngx=18610 ngxs=18611 ngx2=18612
hap=18620 haps=18621
bare=18630 floor=18635
mg=18640 mgs=18641 admin=18649
scale_port=18680 scale_admin=18681
hz=$(getconf CLK_TCK)
cpid="" cstop="" holdpid=""
cleanup() {
  stop_contender 2>/dev/null || true
  [ -f "$work/up.pid" ] && kill "$(cat "$work/up.pid")" 2>/dev/null || true
  [ -n "$holdpid" ] && kill "$holdpid" 2>/dev/null || true
  # bench/scale.sh's meshgate, if it was interrupted: the one process on its admin port.
  local p
  p=$(ss -ltnpH "sport = :$scale_admin" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | head -1 || true)
  [ -n "$p" ] && kill "$p" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- certificate, content, upstreams ----------------------------------------------------
mkdir -p "$work/cert" "$work/creds/bench" "$work/www" "$work/ngxp/logs" "$work/upp/logs"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj /CN=bench.example.com -addext subjectAltName=DNS:bench.example.com \
  -keyout "$work/cert/tls.key" -out "$work/cert/tls.crt" 2>/dev/null
cp "$work/cert/tls.crt" "$work/cert/tls.key" "$work/creds/bench/"
chmod 600 "$work/creds/bench/tls.key" "$work/cert/tls.key"
cat "$work/cert/tls.crt" "$work/cert/tls.key" >"$work/cert/haproxy.pem"
head -c 16384 /dev/urandom >"$work/www/16k"
head -c 1048576 /dev/urandom >"$work/www/1m"

ngx_preamble() { # NAME: the lines the upstream's and the contender's nginx configs share
  cat <<CONF
worker_processes 1;
worker_rlimit_nofile $nofile;
daemon on;
pid $work/$1.pid;
error_log $work/$1.err warn;
events { worker_connections $((nofile - 500)); }
http {
  access_log off;
  keepalive_timeout 600s;
  keepalive_requests 1000000;
CONF
}
{ ngx_preamble up; cat <<CONF
  sendfile on;
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:$up backlog=4096;
    root $work/www;
    location / { return 200 "ok\n"; }
    location = /16k { }
    location = /1m { }
  }
}
CONF
} >"$work/up.conf"
(cd "$work" && taskset -c 1 nginx -p "$work/upp" -c "$work/up.conf" 2>/dev/null)
taskset -c 1 python3 bench/tools/matrix_hold.py "$hold" "$hold_s" 2>"$work/hold.log" &
holdpid=$!

# --- contenders' configs ---------------------------------------------------------------
locations='location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_max_temp_file_size 0; }
    location /hold { proxy_pass http://hold; proxy_http_version 1.1; proxy_set_header Connection ""; }'
{ ngx_preamble ngx; cat <<CONF
  upstream up { server 127.0.0.1:$up; keepalive 128; keepalive_requests 1000000; }
  upstream hold { server 127.0.0.1:$hold; keepalive 128; }
  ssl_certificate $work/cert/tls.crt;
  ssl_certificate_key $work/cert/tls.key;
  ssl_protocols TLSv1.2 TLSv1.3;
  server {
    listen 127.0.0.1:$ngx backlog=4096;
    listen 127.0.0.1:$ngxs ssl http2 backlog=4096;
    $locations
  }
  server {
    listen 127.0.0.1:$ngx2 http2 backlog=4096;
    $locations
  }
}
CONF
} >"$work/ngx.conf"

cat >"$work/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn $maxconn
  daemon
  # It would fail to start where it cannot raise its descriptor limit to 2 x maxconn.
  no strict-limits
defaults
  mode http
  option http-keep-alive
  http-reuse always
  timeout connect 5s
  timeout client 600s
  timeout server 60s
  timeout http-request 10s
  timeout http-keep-alive 600s
frontend fe
  bind 127.0.0.1:$hap
  bind 127.0.0.1:$haps ssl crt $work/cert/haproxy.pem alpn h2,http/1.1 ssl-min-ver TLSv1.2
  use_backend hold if { path_beg /hold }
  default_backend up
backend up
  server up 127.0.0.1:$up
backend hold
  server hold 127.0.0.1:$hold
CONF
haproxy -c -q -f "$work/haproxy.cfg" 2>"$work/haproxy.check" || { echo "haproxy config:"; cat "$work/haproxy.check"; exit 1; }

mkdir -p "$work/mg"
cat >"$work/mg/bench.yaml" <<YAML
apiVersion: meshgate.io/v1alpha1
kind: MeshConfig
metadata: {name: bench}
spec: {defaultBindAddress: 127.0.0.1, maxConnections: $maxconn, credentialsDir: $work/creds}
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
    tls: {mode: SIMPLE, credentialName: bench}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bench}
spec:
  hosts: ["*"]
  gateways: [bench]
  http:
  - match: [{uri: {prefix: /hold}}]
    route: [{destination: {host: hold.bench.internal}}]
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
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: hold}
spec:
  hosts: [hold.bench.internal]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: $hold}}]
YAML
"$MESHGATE" validate --quiet --config "$work/mg" 2>"$work/mg.validate" || { echo "meshgate validate:"; cat "$work/mg.validate"; exit 1; }

# The TLS connection-rate client: C if it compiles, else Python.
if cc -O2 -o "$work/matrix_tls" bench/tools/matrix_tls.c -lssl -lcrypto 2>"$work/cc.log"; then
  tls_client=("$work/matrix_tls")
else
  echo "WARNING: bench/tools/matrix_tls.c did not compile ($(head -1 "$work/cc.log")); using matrix_tls.py (slower client)" >&2
  tls_client=(python3 bench/tools/matrix_tls.py)
fi

# --- starting and stopping a contender ----------------------------------------------
# start_contender NAME [pingora's upstream port] → cpid (the process measured), ports
alive() { [ -n "$1" ] && [ "$(awk '{ sub(/.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null || echo Z)" != Z ]; } # and not a zombie
gone() { for _ in $(seq 1 100); do alive "$1" || return 0; sleep 0.05; done; kill -KILL "$1" 2>/dev/null || true; }
ready() { # URL: up to 10 s for a 200, while the contender lives
  for _ in $(seq 1 100); do
    curl -sf -o /dev/null "$1" 2>/dev/null && return 0
    alive "$cpid" || return 1
    sleep 0.1
  done
  return 1
}
start_contender() {
  local name=$1 p
  cpid="" cstop=""
  case $name in
    nginx)
      rm -f "$work/ngx.pid"
      (cd "$work" && taskset -c 0 nginx -p "$work/ngxp" -c "$work/ngx.conf" 2>>"$work/ngx.err") || return 1
      for _ in $(seq 1 100); do [ -s "$work/ngx.pid" ] && break; sleep 0.05; done
      p=$(cat "$work/ngx.pid")
      cstop="nginx $p"
      for _ in $(seq 1 100); do cpid=$(pgrep -P "$p" | head -1 || true); [ -n "$cpid" ] && break; sleep 0.05; done
      port=$ngx tport=$ngxs h2url=http://127.0.0.1:$ngx2/ ;;
    haproxy)
      rm -f "$work/haproxy.pid"
      taskset -c 0 haproxy -f "$work/haproxy.cfg" -D -p "$work/haproxy.pid" 2>>"$work/haproxy.err" || return 1
      for _ in $(seq 1 100); do [ -s "$work/haproxy.pid" ] && break; sleep 0.05; done
      cpid=$(head -1 "$work/haproxy.pid")
      cstop="haproxy $cpid"
      port=$hap tport=$haps h2url=http://127.0.0.1:$hap/ ;;
    pingora)
      taskset -c 0 "$PINGORA_BIN" "127.0.0.1:$bare" "127.0.0.1:${2:-$up}" 1 >>"$work/pingora.log" 2>&1 &
      cpid=$!
      cstop="pingora $cpid"
      port=$bare tport="" h2url=http://127.0.0.1:$bare/ ;;
    floor)
      taskset -c 0 "$FLOOR_BIN" "127.0.0.1:$floor" "127.0.0.1:${2:-$up}" >>"$work/floor.log" 2>&1 &
      cpid=$!
      cstop="floor $cpid"
      port=$floor tport="" h2url="" ;;
    meshgate)
      taskset -c 0 "$MESHGATE" run --config "$work/mg" --admin "127.0.0.1:$admin" --log-level warn >>"$work/mg.log" 2>&1 &
      cpid=$!
      cstop="meshgate $cpid"
      ready "http://127.0.0.1:$admin/ready" || true
      port=$mg tport=$mgs h2url=http://127.0.0.1:$mg/ ;;
  esac
  [ -n "$cpid" ] && ready "http://127.0.0.1:$port/"
}
# nginx and haproxy: SIGTERM (fast stop); pingora, floor and meshgate: SIGINT (fast; SIGTERM drains).
stop_contender() {
  [ -n "$cstop" ] || return 0
  local name=${cstop%% *} p=${cstop##* }
  cstop="" cpid=""
  case $name in
    nginx | haproxy) kill -TERM "$p" 2>/dev/null || true; gone "$p" ;;
    *) kill -INT "$p" 2>/dev/null || true; gone "$p"; wait "$p" 2>/dev/null || true ;;
  esac
}

# --- measuring ----------------------------------------------------------------------
ticks() { awk '{ sub(/.*\) /, ""); split($0, f, " "); print f[12] + f[13] }' "/proc/$1/stat" 2>/dev/null || echo 0; }
cpu_ticks() { awk '{ sub(/.*\) /, ""); split($0, f, " "); print f[12], f[12] + f[13] }' "/proc/$1/stat" 2>/dev/null || echo 0 0; } # user, user+system
core1() { awk '$1 == "cpu1" {print $2 + $3 + $4 + $7 + $8 " " $2 + $3 + $4 + $5 + $6 + $7 + $8}' /proc/stat; } # busy total
busy() { # "busy0 total0" "busy1 total1" → percent
  awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " "); printf "%.0f", 100 * (y[1] - x[1]) / (y[2] - x[2]) }'
}
pct() { awk -v d="$1" -v hz="$hz" -v s="$2" 'BEGIN { printf "%.0f", 100 * d / hz / s }'; } # ticks seconds → % of a core
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
warm_up() { timeout 30 taskset -c 1 wrk -t1 -c16 -d1s "http://127.0.0.1:$port/" >/dev/null 2>&1 || true; }
settle() { # until the proxy's RSS holds still for 1 s (at most 6 s): memory rows start from a quiet process
  local a b last="" seen=""
  a=$(rss "$cpid")
  for _ in $(seq 1 12); do
    sleep 0.5; b=$(rss "$cpid"); seen+=" $b"
    [ "$a" = "$b" ] && [ "$last" = "$b" ] && break
    last=$a; a=$b
  done
  echo "RSS every 0.5 s until still (KiB):$seen"
}
lastlog() { # the last lines of contender $c's own log
  local f=$work/ngx.err
  case $c in haproxy) f=$work/haproxy.err ;; pingora) f=$work/pingora.log ;; floor) f=$work/floor.log ;; meshgate) f=$work/mg.log ;; esac
  tail -3 "$f" 2>/dev/null | tr -s '\n' ' ' | head -c 300 || true
}
commas() { sed ':a; s/\B[0-9]\{3\}\>/,&/; ta' <<<"$1"; }
keep() { printf '%s\n' "$1" >"$logs/$row-$c-$r.txt"; } # a load tool's output, for the record
record() { printf 'R\t%s\t%s\t%s\t%s\n' "$row" "$c" "$r" "$*" >>"$results"; }
flag() { # the idle cell's flags go to its second row
  local fr=$row; [ "$fr" = idle ] && fr=idle-conn
  printf 'F\t%s\t%s\t%s\t%s\n' "$fr" "$c" "$r" "$*" >>"$results"; echo "  ⚠ $fr/$c: $*" >&2
}
label() { printf 'L\t%s\t%s\n' "$1" "$2" >>"$results"; }
cpu_per() { awk -v d="$1" -v hz="$hz" -v n="$2" 'BEGIN { if (n > 0) printf "%.2f", d * 1e6 / hz / n; else print "nan" }'; }
# wrk's output → "requests secs bytes rps p99_ms non2xx socket_errors"
parse_wrk() {
  awk '
  function bytes(s,   n, u) { n = s + 0; u = s; sub(/^[0-9.]+/, "", u)
    return n * (u == "KB" ? 1024 : u == "MB" ? 1048576 : u == "GB" ? 1073741824 : u == "TB" ? 1099511627776 : 1) }
  / requests in / { req = $1; secs = $4; sub(/s,$/, "", secs); b = bytes($5) }
  /^Requests\/sec/ { rps = $2 }
  $1 == "99%" { v = $2; if (v ~ /us$/) { sub(/us/, "", v); v /= 1000 } else if (v ~ /ms$/) sub(/ms/, "", v); else if (v ~ /m$/) { sub(/m/, "", v); v *= 60000 } else if (v ~ /s$/) { sub(/s/, "", v); v *= 1000 }; p99 = v }
  /Non-2xx or 3xx/ { non = $NF }
  /Socket errors/ { $1 = $2 = ""; gsub(/^ +/, ""); gsub(/ /, "_"); sock = $0 }
  END { printf "%s %s %s %s %s %s %s\n", req + 0, secs + 0, b + 0, rps + 0, p99 == "" ? "nan" : p99, non + 0, sock == "" ? "-" : sock }'
}

run_wrk() { # conns url body_bytes [wrk args]: warm-up, measured window, record
  local conns=$1 url=$2 body=$3 out t0 t1 u0 u1 k0 k1 req secs bytes rps p99 non sock
  shift 3
  timeout 60 taskset -c 1 wrk -t1 -c"$conns" -d1s --timeout 10s "$@" "$url" >/dev/null 2>&1 || true
  sleep 0.3
  read -r u0 t0 < <(cpu_ticks "$cpid")
  k0=$(core1)
  out=$(timeout $((duration + 60)) taskset -c 1 wrk -t1 -c"$conns" -d"${duration}s" --timeout 10s --latency "$@" "$url" 2>&1) || true
  read -r u1 t1 < <(cpu_ticks "$cpid")
  k1=$(core1)
  keep "$out"
  read -r req secs bytes rps p99 non sock < <(parse_wrk <<<"$out")
  if [ "$req" = 0 ]; then flag "wrk completed no request: $(grep -E 'Socket errors|requests in|unable|error' <<<"$out" | tr -s ' \n' ' ')"; return; fi
  [ "$non" != 0 ] && flag "non-2xx/3xx answers: $non of $req"
  [ "$sock" != - ] && flag "socket errors: $sock (of $req requests)"
  if [ "$body" -gt 0 ]; then # wrk also counts the bytes of answers cut off at the end: up to one per connection
    awk -v b="$bytes" -v n="$req" -v c="$conns" -v body="$body" 'BEGIN { exit !(b < n * body * 0.99 || b > (n + c) * (body + 2048)) }' &&
      flag "bytes per answer $(awk -v b="$bytes" -v n="$req" 'BEGIN { printf "%.0f", b / n }'), body is $body"
  fi
  record "cpu=$(cpu_per $((t1 - t0)) "$req") user=$(cpu_per $((u1 - u0)) "$req") rps=$rps p99=$p99 mibs=$(awk -v b="$bytes" -v s="$secs" 'BEGIN { printf "%.1f", b / s / 1048576 }') requests=$req ticks=$((t1 - t0)) proxy_pct=$(pct $((t1 - t0)) "$secs") core1_pct=$(busy "$k0" "$k1")${extra_kv:+ $extra_kv}"
}

run_tls_rate() { # mode version
  local mode=$1 ver=$2 out t0 t1 k0 k1 conns
  timeout 60 taskset -c 1 "${tls_client[@]}" "$tport" 1 "$mode" "$ver" 8 >/dev/null 2>&1 || true
  sleep 0.3
  t0=$(ticks "$cpid") k0=$(core1)
  out=$(timeout $((duration + 60)) taskset -c 1 "${tls_client[@]}" "$tport" "$duration" "$mode" "$ver" 8 2>&1) || true
  t1=$(ticks "$cpid") k1=$(core1)
  keep "$out"
  kv() { grep -o "\b$1=[^ ]*" <<<"$out" | head -1 | cut -d= -f2 || true; }
  conns=$(kv conns)
  if [ -z "$conns" ] || [ "$conns" = 0 ]; then flag "TLS client completed no connection: $(head -c 300 <<<"$out")"; return; fi
  [ "$(kv errors)" != 0 ] && flag "$(kv errors) failed connections (first: $(kv first_error))"
  [ "$(kv bad)" != 0 ] && flag "non-2xx answers: $(kv bad) of $conns"
  [ "$(kv wrongversion)" != 0 ] && flag "$(kv wrongversion) of $conns connections not TLS $ver"
  if [ "$mode" = resume ] && [ "$(kv full)" != 0 ]; then flag "NOT RESUMED: $(kv full) of $conns handshakes were full"; fi
  if [ "$mode" = new ] && [ "$(kv resumed)" != 0 ]; then flag "$(kv resumed) of $conns handshakes resumed (full asked)"; fi
  record "cpu=$(cpu_per $((t1 - t0)) "$conns") rate=$(kv rate) resumed=$(awk -v a="$(kv resumed)" -v n="$conns" 'BEGIN { printf "%.1f", 100 * a / n }') conns=$conns cipher=$(kv cipher) ticks=$((t1 - t0)) proxy_pct=$(pct $((t1 - t0)) "$(kv secs)") core1_pct=$(busy "$k0" "$k1")"
}

run_h2() {
  local url=$h2url mode=h2c out t0 t1 k0 k1 done
  if ! timeout 10 h2load -n1 -c1 "$url" 2>&1 | grep -q '1 succeeded'; then
    if [ -n "$tport" ] && timeout 10 h2load -n1 -c1 "https://127.0.0.1:$tport/" 2>&1 | grep -q '1 succeeded'; then
      url=https://127.0.0.1:$tport/ mode=h2-TLS
    else
      printf 'N\t%s\t%s\n' "$row" "$c" >>"$results"; return
    fi
  fi
  timeout 60 taskset -c 1 h2load -t1 -c16 -m10 -D 1 "$url" >/dev/null 2>&1 || true
  sleep 0.3
  t0=$(ticks "$cpid") k0=$(core1)
  out=$(timeout $((duration + 60)) taskset -c 1 h2load -t1 -c16 -m10 -D "$duration" "$url" 2>&1) || true
  t1=$(ticks "$cpid") k1=$(core1)
  keep "$out"
  # "requests: T total, S started, D done, OK succeeded, F failed, E errored, TO timeout";
  # the streams still open when the duration ends (at most 16 x 10) count as errored.
  done=$(awk '/^requests:/ {print $8}' <<<"$out")
  if [ -z "$done" ] || [ "$done" = 0 ]; then flag "h2load completed no request: $(tail -3 <<<"$out" | tr '\n' ' ')"; return; fi
  awk '/^requests:/ { exit !($12 > 160 || $14 > 0) }' <<<"$out" && flag "h2load: $(grep '^requests:' <<<"$out")"
  awk '/^status codes:/ { exit !($5 + $7 + $9 > 0) }' <<<"$out" && flag "h2load: $(grep '^status codes:' <<<"$out")"
  record "cpu=$(cpu_per $((t1 - t0)) "$done") rps=$(awk '/^finished in/ {print $4}' <<<"$out") mode=$mode requests=$done ticks=$((t1 - t0)) proxy_pct=$(pct $((t1 - t0)) "$duration") core1_pct=$(busy "$k0" "$k1")"
}

applies() { # row contender: whether the contender is measured on the row
  case $2 in
    pingora) [[ $1 != tls* ]] ;;
    floor) [[ $1 != tls* && $1 != h2 && $1 != close ]] ;;
    *) true ;;
  esac
}

measure() { # row contender round
  row=$1 c=$2 r=$3
  local upstream=$up
  if ! applies "$row" "$c"; then printf 'N\t%s\t%s\n' "$row" "$c" >>"$results"; return; fi
  [ "$row" = inflight ] && upstream=$hold
  if ! start_contender "$c" "$upstream"; then
    flag "did not start or answer: $(lastlog)"
    stop_contender; return
  fi
  echo "round $r  $row  $c" >&2
  case $row in
    tiny) run_wrk 64 "http://127.0.0.1:$port/" 0 ;;
    16k) run_wrk 64 "http://127.0.0.1:$port/16k" 16384 ;;
    1m) run_wrk 64 "http://127.0.0.1:$port/1m" 1048576 ;;
    close) run_wrk 64 "http://127.0.0.1:$port/" 0 -H "Connection: close" ;;
    c1000) run_wrk 1000 "http://127.0.0.1:$port/" 0 ;;
    c10000) run_wrk "$big" "http://127.0.0.1:$port/" 0 ;;
    tls)
      local info
      info=$(timeout 5 openssl s_client -connect "127.0.0.1:$tport" -servername bench.example.com -brief </dev/null 2>&1 || true)
      proto=$(awk -F': ' '/^Protocol version/ {p = $2} /^Ciphersuite/ {s = $2} /^(Server|Peer) Temp Key/ {k = $2; sub(/,.*/, "", k)} END {print p "/" s "/" k}' <<<"$info")
      [ "$proto" = // ] && flag "openssl s_client did not connect: $(head -c 200 <<<"$info")"
      extra_kv="proto=${proto// /_}" run_wrk 64 "https://127.0.0.1:$tport/" 0 ;;
    tls13-full) run_tls_rate new 1.3 ;;
    tls13-resume) run_tls_rate resume 1.3 ;;
    tls12-full) run_tls_rate new 1.2 ;;
    tls12-resume) run_tls_rate resume 1.2 ;;
    h2) run_h2 ;;
    idle)
      # Idle RSS once it holds still after start; then a 1 s wrk warm-up (the allocator
      # returns what start-up freed only once traffic runs) and, settled again, the
      # clients: their growth is the connections' own.
      local series rss0 out kib base after
      series=$(settle); rss0=${series##* }
      warm_up
      series+=$'\n'"after a 1 s wrk -c16 warm-up: $(settle)"
      row=idle-rss record "rss=$(awk -v k="$rss0" 'BEGIN { printf "%.1f", k / 1024 }') kib=$rss0"
      if [ "$c" = floor ]; then # no upstream pool: 10,000 clients, 20,000 descriptors
        keep "$series"; printf 'N\tidle-conn\t%s\n' "$c" >>"$results"
      else
        out=$(timeout 300 taskset -c 1 python3 bench/tools/idle_conns.py "$port" "$cpid" "$idle_n" 2>&1) || true
        keep "$series"$'\n'"$out"
        read -r kib base after <<<"$(tail -1 <<<"$out")"
        if [[ ! ${kib:-} =~ ^[0-9.]+$ ]]; then flag "idle_conns.py: $(tail -2 <<<"$out" | tr '\n' ' ')"
        else row=idle-conn record "kib=$kib base=$base after=$after n=$idle_n"; fi
      fi ;;
    inflight)
      local series out kib base during held ok
      warm_up
      series="after a 1 s wrk -c16 warm-up: $(settle)"
      out=$(timeout $((hold_s + 60)) taskset -c 1 python3 bench/tools/matrix_inflight.py "$port" "$cpid" "$inflight_n" "$hold" $((hold_s - 2)) 2>&1) || true
      keep "$series"$'\n'"$out"
      read -r kib base during held ok <<<"$(tail -1 <<<"$out")"
      if [[ ! ${ok:-} =~ ^[0-9]+$ ]]; then flag "matrix_inflight.py: $(tail -2 <<<"$out" | tr '\n' ' ')"
      else
        [ "$held" -lt "$inflight_n" ] && flag "only $held of $inflight_n requests held at once (RSS read at the peak)"
        [ "$ok" -lt "$inflight_n" ] && flag "only $ok of $inflight_n requests answered 2xx"
        record "kib=$kib base=$base during=$during held=$held ok=$ok"
      fi ;;
  esac
  alive "$cpid" || flag "the proxy process exited during the measurement: $(lastlog)"
  stop_contender
}

# --- the run ------------------------------------------------------------------------
rows=()
for cell in "${cells[@]}"; do
  case $cell in
    tls-full) rows+=(tls13-full); [ "${TLS12:-1}" = 1 ] && rows+=(tls12-full) ;;
    tls-resume) rows+=(tls13-resume); [ "${TLS12:-1}" = 1 ] && rows+=(tls12-resume) ;;
    idle | tiny | 16k | 1m | close | tls | tls13-full | tls13-resume | tls12-full | tls12-resume | c1000 | c10000 | h2 | inflight | scale) rows+=("$cell") ;;
    *) echo "unknown cell $cell (known: $all_cells tls13-full tls13-resume tls12-full tls12-resume)" >&2; exit 2 ;;
  esac
done
: >"$results"
logs=${results%.txt}.logs
rm -rf "$logs" && mkdir -p "$logs"
for row in "${rows[@]}"; do
  case $row in
    tiny) label tiny 'tiny body, keep-alive (wrk -c64): CPU/req; req/s; p99; user-space CPU/req' ;;
    16k) label 16k '16 KiB body, keep-alive (wrk -c64): CPU/req; MiB/s; req/s' ;;
    1m) label 1m '1 MiB body, keep-alive (wrk -c64): CPU/req; MiB/s; req/s' ;;
    close) label close 'new connection per request (wrk -c64, Connection: close): CPU/req; req/s; p99' ;;
    tls) label tls 'TLS keep-alive (wrk https -c64): CPU/req; req/s; protocol/cipher/group' ;;
    tls13-full) label tls13-full 'new TLS 1.3 conns, FULL handshake, 1 req each: CPU/conn; conn/s; resumed' ;;
    tls13-resume) label tls13-resume 'new TLS 1.3 conns, RESUMED handshake, 1 req each: CPU/conn; conn/s; resumed' ;;
    tls12-full) label tls12-full 'new TLS 1.2 conns, FULL handshake, 1 req each: CPU/conn; conn/s; resumed' ;;
    tls12-resume) label tls12-resume 'new TLS 1.2 conns, RESUMED handshake, 1 req each: CPU/conn; conn/s; resumed' ;;
    c1000) label c1000 '1,000 concurrent keep-alive conns (wrk -c1000): CPU/req; req/s; p99' ;;
    c10000) label c10000 "$(commas "$big") concurrent keep-alive conns (wrk -c$big$([ "$big" = "$want_big" ] || echo ", not $(commas "$want_big"): open-file limit $nofile")): CPU/req; req/s; p99" ;;
    h2) label h2 'HTTP/2 downstream (h2load -c16 -m10): CPU/req; req/s; h2c or h2 over TLS' ;;
    idle) label idle-rss 'idle RSS after start (one request served, RSS still for 1 s)'
          label idle-conn "RSS per idle keep-alive conn ($(commas "$idle_n") clients)" ;;
    inflight) label inflight "RSS per in-flight request ($(commas "$inflight_n") held by the upstream); held at peak" ;;
    scale) label scale "config scale (bench/scale.sh $scale_n: $(commas "$scale_n") VirtualServices): validate, run to /ready (time / peak RSS), reload" ;;
  esac
done

cpu_model=$(lscpu | awk -F': +' '/^Model name/ {print $2; exit}')
header="$(date -u '+%F %T UTC'), kernel $(uname -r), CPU $cpu_model ($(nproc) cores), load $(cut -d' ' -f1-3 /proc/loadavg)
command: $cmdline
duration ${duration}s, rounds $rounds, proxies on core 0 (one worker), load and upstreams on core 1; open files $nofile
nginx $(nginx -v 2>&1 | sed 's/.*\///'), HAProxy $(haproxy -v | awk 'NR == 1 {print $3}'), h2load $(h2load --version | awk '{print $2}'), $("$MESHGATE" version 2>/dev/null | head -1), pingora: $PINGORA_BIN${FLOOR_BIN:+, floor: $FLOOR_BIN}"
echo "$header" >&2
n=${#contenders[@]}
for r in $(seq 1 "$rounds"); do
  for row in "${rows[@]}"; do
    [ "$row" = scale ] && continue
    for i in $(seq 0 $((n - 1))); do measure "$row" "${contenders[$(((i + r - 1) % n))]}" "$r"; done
  done
done

scale_out=""
if [[ " ${rows[*]} " == *" scale "* ]]; then
  echo "bench/scale.sh $scale_n" >&2
  scale_out=$work/scale.out
  row=scale c=meshgate r=1
  if MESHGATE=$MESHGATE WORK=$work/scale PORT=$scale_port ADMIN_PORT=$scale_admin bench/scale.sh "$scale_n" >"$scale_out" 2>&1; then
    line=$(awk -v n="$scale_n" '$1 == n' "$scale_out")
    # "N  MB  v s / v MiB  r s / r MiB  reload  max-latency  req/s"
    text=$(awk '{ printf "validate %s s / %s MiB, run %s s / %s MiB, reload %s s (max latency %s), %s req/s", $3, $6, $8, $11, $13, $14, $15 }' <<<"$line")
    [ -n "$line" ] && record "text=${text// /_}" || flag "bench/scale.sh printed no row for $scale_n"
  else
    flag "bench/scale.sh failed: $(tail -2 "$scale_out" | tr '\n' ' ')"
  fi
  for c in "${contenders[@]}"; do [ "$c" != meshgate ] && printf 'N\t%s\t%s\n' scale "$c" >>"$results"; done
fi

table=$(python3 bench/tools/matrix_table.py "$results" "${contenders[*]}" $scale_out)
elapsed=$(($(date +%s) - started))
{
  echo
  echo "$header"
  echo "run took $((elapsed / 60)) min $((elapsed % 60)) s"
  echo
  echo "$table"
} | tee "${results%.txt}.md"
[ -n "$scale_out" ] && cp "$scale_out" "$logs/scale.txt"
cp "$work"/*.err "$work"/*.log "$logs/" 2>/dev/null || true # the proxies' own logs
echo
echo "raw results: $results (table: ${results%.txt}.md, load tools' output: $logs/)"
