#!/usr/bin/env bash
# Config at scale: wall time and peak RSS of `meshgate validate` and of `meshgate run`
# start-up (until the admin /ready answers 200) for N VirtualServices x 10 routes, and the
# time a reload (SIGHUP) of the same config takes until /server_info shows generation 2,
# with wrk's maximum latency over 3 s of load around it (does a reload stall serving?).
#
#   bench/scale.sh [N ...]          default: 1000 3000 10000 30000
#
# For each N it generates, under $WORK (default /tmp/meshgate-scale), a Gateway, N/10
# ServiceEntries (at least 10) each with a DestinationRule (subsets v1, v2), and N
# VirtualServices of 10 HTTP routes each (exact/prefix/regex URIs, header, query and
# method matches, shared and per-service regexes, weights, rewrites, redirects, direct
# responses, retries), written 1000 VirtualServices per file. Times are measured with
# /usr/bin/time -v (installed with apt-get when missing) on the release build.
#
# Environment: MESHGATE (binary; default: `cargo build --release`, target/release),
# WORK, PORT (gateway listener, default 18480), ADMIN_PORT (default 18481),
# CHUNK (VirtualServices per file, default 1000), RUNS (repetitions, best kept, default 1).
set -euo pipefail

cd "$(dirname "$0")/.."
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(1000 3000 10000 30000)
WORK=${WORK:-/tmp/meshgate-scale}
PORT=${PORT:-18480}
ADMIN_PORT=${ADMIN_PORT:-18481}
CHUNK=${CHUNK:-1000}
RUNS=${RUNS:-1}

if [ ! -x /usr/bin/time ]; then
    echo "installing GNU time" >&2
    apt-get update -qq && apt-get install -y -qq time >/dev/null
fi
command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl >/dev/null; }

if [ -z "${MESHGATE:-}" ]; then
    cargo build --release --quiet
    MESHGATE=$PWD/target/release/meshgate
fi

# generate N DIR: the config for N VirtualServices.
generate() {
    local n=$1 dir=$2
    rm -rf "$dir" && mkdir -p "$dir"
    awk -v n="$n" -v dir="$dir" -v port="$PORT" -v admin="$ADMIN_PORT" -v chunk="$CHUNK" '
    BEGIN {
        s = int(n / 10); if (s < 10) s = 10
        f = dir "/00-gateway.yaml"
        print "apiVersion: meshgate.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh, namespace: edge}\nspec:\n  adminAddress: 127.0.0.1:" admin "\n  defaultBindAddress: 127.0.0.1\n---" > f
        print "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: public, namespace: edge}\nspec:\n  selector: {istio: ingressgateway}\n  servers:\n  - port: {number: " port ", name: http, protocol: HTTP}\n    hosts: [\"*/*.example.com\"]" > f
        close(f)
        f = dir "/01-services.yaml"
        for (k = 0; k < s; k++) {
            print "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: svc-" k ", namespace: backend}\nspec:\n  hosts: [svc-" k ".backend.internal]\n  location: MESH_INTERNAL\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  resolution: STATIC\n  endpoints:\n  - {address: 127.0.0.1, labels: {version: v1}}\n  - {address: 127.0.0.2, labels: {version: v2}}" > f
            print "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: svc-" k ", namespace: backend}\nspec:\n  host: svc-" k ".backend.internal\n  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}" > f
        }
        close(f)
        for (i = 0; i < n; i++) {
            if (i % chunk == 0) {
                if (f != "") close(f)
                f = sprintf("%s/vs-%06d.yaml", dir, i)
            }
            ns = "team-" (i % 20)
            d0 = "svc-" (i * 7) % s ".backend.internal"
            d1 = "svc-" (i * 7 + 1) % s ".backend.internal"
            d2 = "svc-" (i * 7 + 2) % s ".backend.internal"
            print "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: app-" i "\n  namespace: " ns "\nspec:\n  hosts: [app-" i ".example.com]\n  gateways: [edge/public]\n  http:" > f
            # 0: tenant header on a prefix
            print "  - name: orders\n    match:\n    - uri: {prefix: /v1/orders}\n      headers:\n        x-tenant: {exact: tenant-" (i % 50) "}\n    route:\n    - destination: {host: " d0 ", port: {number: 80}, subset: v2}" > f
            # 1: a regex many services share
            print "  - name: users\n    match:\n    - uri: {regex: \"/api/v[0-9]+/users/[0-9]+\"}\n    route:\n    - destination: {host: " d1 ", port: {number: 80}}\n    retries: {attempts: 3, perTryTimeout: 2s, retryOn: \"5xx,reset\"}" > f
            # 2: prefix with rewrite
            print "  - match:\n    - uri: {prefix: /static/}\n    rewrite: {uri: /assets/}\n    route:\n    - destination: {host: " d2 ", port: {number: 80}}" > f
            # 3: a per-service header regex
            print "  - match:\n    - headers:\n        end-user: {regex: \"(alice|bob|carol)-" (i % 1000) "\"}\n    route:\n    - destination: {host: " d0 ", port: {number: 80}, subset: v2}" > f
            # 4: direct response
            print "  - match:\n    - uri: {exact: /healthz}\n    directResponse: {status: 200, body: {string: ok}}" > f
            # 5: method and prefix, timeout
            print "  - match:\n    - method: {exact: POST}\n      uri: {prefix: /upload}\n    timeout: 30s\n    route:\n    - destination: {host: " d1 ", port: {number: 80}}" > f
            # 6: query parameter, weighted subsets
            print "  - match:\n    - queryParams:\n        version: {exact: v2}\n    route:\n    - destination: {host: " d0 ", port: {number: 80}, subset: v1}\n      weight: 80\n    - destination: {host: " d0 ", port: {number: 80}, subset: v2}\n      weight: 20" > f
            # 7: redirect
            print "  - match:\n    - uri: {prefix: /legacy/}\n    redirect: {uri: /v2/, redirectCode: 301}" > f
            # 8: a shared regex, case-insensitive, header presence
            print "  - match:\n    - uri: {regex: \"/catalog/[a-z0-9-]+/item/[0-9]+\"}\n      ignoreUriCase: true\n      headers:\n        x-debug: {}\n    - uri: {regex: \"/catalog/.+\"}\n    route:\n    - destination: {host: " d2 ", port: {number: 80}}" > f
            # 9: catch-all with route headers
            print "  - route:\n    - destination: {host: " d0 ", port: {number: 80}, subset: v1}\n      weight: 90\n    - destination: {host: " d2 ", port: {number: 80}}\n      weight: 10\n    headers:\n      request:\n        set: {x-app: app-" i "}" > f
        }
        close(f)
    }'
}

# validate: wall time and peak RSS from /usr/bin/time -v; prints "seconds peak_kib".
measure_validate() {
    local dir=$1 log=$2
    /usr/bin/time -v "$MESHGATE" validate --quiet --config "$dir" >/dev/null 2>"$log" || {
        tail -5 "$log" >&2
        echo "validate failed" >&2
        exit 1
    }
    local wall rss
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; print s }' "$log")
    rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$log")
    echo "$wall $rss"
}

# run start-up: from exec to /ready == 200; the process is killed after.
measure_run() {
    local dir=$1 log=$2 n=$3
    local t0 t1 pid child code
    t0=$(date +%s.%N)
    /usr/bin/time -v "$MESHGATE" run --config "$dir" --log-level warn >/dev/null 2>"$log" &
    pid=$!
    while :; do
        code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ADMIN_PORT/ready" || true)
        [ "$code" = 200 ] && break
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -5 "$log" >&2
            echo "run exited before /ready" >&2
            exit 1
        fi
        sleep 0.02
    done
    t1=$(date +%s.%N)
    # Per-request routing must not depend on the config's size: requests to the last
    # VirtualService's direct-response rule (five rules down, behind a regex and header
    # matches), one connection per core's worth of load, 3 s.
    if command -v wrk >/dev/null; then
        wrk -t1 -c8 -d3s -H "Host: app-$((n - 1)).example.com" "http://127.0.0.1:$PORT/healthz" \
            > "$WORK/wrk-$n.log" 2>&1 || true
        awk '/Requests\/sec/ { print $2 }' "$WORK/wrk-$n.log" > "$WORK/rps-$n"
    fi
    child=$(pgrep -P "$pid" || true)
    local reload=- stall=- wp=""
    if [ -n "$child" ]; then
        if command -v wrk >/dev/null; then
            wrk -t1 -c8 -d3s --latency -H "Host: app-$((n - 1)).example.com" \
                "http://127.0.0.1:$PORT/healthz" > "$WORK/wrk-reload-$n.log" 2>&1 &
            wp=$!
            sleep 1
        fi
        local r0 r1
        r0=$(date +%s.%N)
        kill -HUP "$child"
        until curl -s "http://127.0.0.1:$ADMIN_PORT/server_info" | grep -q '"config_generation": 2'; do
            sleep 0.01
        done
        r1=$(date +%s.%N)
        reload=$(awk -v a="$r1" -v b="$r0" 'BEGIN { printf "%.2f", a - b }')
        if [ -n "$wp" ]; then
            wait "$wp" || true
            stall=$(awk '$1 == "Latency" { print $4 }' "$WORK/wrk-reload-$n.log")
        fi
        echo "$reload $stall" > "$WORK/reload-$n"
        kill -KILL "$child"
    fi
    wait "$pid" 2>/dev/null || true
    local rss
    rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$log")
    echo "$(awk -v a="$t1" -v b="$t0" 'BEGIN { print a - b }') $rss"
}

printf '%-8s %-10s %-22s %-22s %-12s %-14s %s\n' "VS" "YAML MB" "validate s / MiB" "run to /ready s / MiB" "reload s" "max latency" "req/s (wrk, if installed)"
for n in "${SIZES[@]}"; do
    dir=$WORK/vs-$n
    generate "$n" "$dir"
    mb=$(du -sm "$dir" | cut -f1)
    best_v="" best_r=""
    for _ in $(seq "$RUNS"); do
        v=$(measure_validate "$dir" "$WORK/validate-$n.log")
        r=$(measure_run "$dir" "$WORK/run-$n.log" "$n")
        if [ -z "$best_v" ] || awk -v a="${v%% *}" -v b="${best_v%% *}" 'BEGIN { exit !(a < b) }'; then best_v=$v; fi
        if [ -z "$best_r" ] || awk -v a="${r%% *}" -v b="${best_r%% *}" 'BEGIN { exit !(a < b) }'; then best_r=$r; fi
    done
    fmt() { awk -v t="${1%% *}" -v k="${1##* }" 'BEGIN { printf "%.2f s / %d MiB", t, k / 1024 }'; }
    read -r rl st < "$WORK/reload-$n" || { rl=-; st=-; }
    printf '%-8s %-10s %-22s %-22s %-12s %-14s %s\n' "$n" "$mb" "$(fmt "$best_v")" "$(fmt "$best_r")" "$rl" "$st" "$(cat "$WORK/rps-$n" 2>/dev/null || echo -)"
done
