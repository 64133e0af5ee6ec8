#!/usr/bin/env bash
# What global_rate_limit costs per request, against no filter and local_rate_limit: the same
# Ferry binary and traffic, interleaved rounds, medians. A bucket that never empties (every
# request takes a token and passes), one key (wrk sends x-api-key), Redis on loopback.
#   benchmarks/global_rate_limit_cost.sh [BIN (build-rel/proxy/ferry)] [ROUNDS (3)] [SECONDS (5)] [CONNS (10)] [MODES]
# MODES (default "off local global1 global10"): off = no filter; local = local_rate_limit
# keyed by the header; global1 / global10 = global_rate_limit keyed by the header with batch 1
# / batch 10.
# nginx upstream (`return 200 "hello world\n"`), redis-server and wrk on CPU 1, Ferry (one
# worker) on CPU 0. Prints requests/s, Ferry's CPU µs per request (user+sys; Redis's own CPU
# is not included), wrk's p99 and Redis round trips per request (ferry_redis_requests_total
# over ferry_global_rate_limit_requests_total, from /metrics) per round, then the medians and
# each mode's ratio to "off". Needs nginx, wrk and redis-server (scripts/install-deps --bench).
# Loopback only; bounded (each run is SECONDS + ~2 s); stops what it starts.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build-rel/proxy/ferry}; rounds=${2:-3}; secs=${3:-5}; conns=${4:-10}
modes=${5:-"off local global1 global10"}
work=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
up=${GRL_BENCH_PORT:-19970}; px=$((up + 1)); adm=$((up + 2)); rport=$((up + 3))  # GRL_BENCH_PORT: another base
cat > "$work/nginx.conf" <<NGX
user root; daemon off; worker_processes 1; error_log $work/error.log; pid $work/nginx.pid;
events {}
http { access_log off; keepalive_requests 10000000;
  server { listen 127.0.0.1:$up; location / { return 200 "hello world\n"; } } }
NGX
cat > "$work/header.lua" <<'LUA'
wrk.headers["x-api-key"] = "bench-client"
LUA
config() {  # $1 = mode
  local http_extra=""
  # 1048575 tokens every 50 ms: about 21 million requests/s, far above what wrk reaches.
  local bucket="max_tokens: 1048575, tokens_per_fill: 1048575, fill_interval: 50ms, key: 'header:x-api-key'"
  local redis="redis: {address: 127.0.0.1:$rport, timeout: 25ms}"
  case "$1" in
    off) ;;
    local) http_extra="      filters: [{name: local_rate_limit, config: {$bucket}}]" ;;
    global1) http_extra="      filters: [{name: global_rate_limit, config: {$bucket, domain: bench, batch: 1, $redis}}]" ;;
    global10) http_extra="      filters: [{name: global_rate_limit, config: {$bucket, domain: bench, batch: 10, $redis}}]" ;;
    *) echo "unknown mode $1" >&2; exit 2 ;;
  esac
  cat <<YAML
runtime: {workers: 1, log_level: warn}
admin: {address: 127.0.0.1:$adm}
listeners:
  - name: web
    address: 127.0.0.1:$px
    http:
$http_extra
      virtual_hosts:
        - {name: all, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: up}}]}
clusters:
  - {name: up, endpoints: [{address: 127.0.0.1:$up}]}
YAML
}
taskset -c 1 timeout 3600 nginx -c "$work/nginx.conf" &
taskset -c 1 timeout 3600 redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
  --daemonize no --loglevel warning > "$work/redis.log" 2>&1 &
for _ in $(seq 100); do redis-cli -p "$rport" ping 2>/dev/null | grep -q PONG && break; sleep 0.05; done
tick=$(getconf CLK_TCK)
run() {  # $1 = mode; prints "rps us_per_req p99_ms trips_per_req"
  config "$1" > "$work/ferry.yaml"
  taskset -c 0 "$bin" -c "$work/ferry.yaml" & local pid=$!
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$px/" && break; sleep 0.05; done
  taskset -c 1 wrk -t1 -c"$conns" -d1s -s "$work/header.lua" "http://127.0.0.1:$px/" >/dev/null  # warm-up
  local u0 s0 u1 s1
  read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$pid/stat")
  local out; out=$(taskset -c 1 wrk -t1 -c"$conns" -d"${secs}s" --latency -s "$work/header.lua" "http://127.0.0.1:$px/")
  read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$pid/stat")
  local trips; trips=$(curl -s "http://127.0.0.1:$adm/metrics" | awk '
    /^ferry_redis_requests_total\{/ {r += $NF} /^ferry_global_rate_limit_requests_total\{/ {q += $NF}
    END {if (q > 0) printf "%.3f", r / q; else print "-"}')
  local failed; failed=$(curl -s "http://127.0.0.1:$adm/metrics" | awk '/^ferry_global_rate_limit_requests_total\{.*failure/ {f += $NF} END {print f + 0}')
  local limited; limited=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
  kill -TERM $pid; wait $pid 2>/dev/null || true
  [ -z "$limited" ] || { echo "mode $1: $limited non-2xx responses (the bucket emptied?)" >&2; exit 1; }
  [ "$failed" = 0 ] || echo "mode $1: $failed requests took failure_mode (Redis slower than 25 ms)" >&2
  local reqs p99; reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  p99=$(echo "$out" | awk '$1 == "99%" {v = $2; if (v ~ /us$/) {sub(/us/, "", v); v /= 1000} else if (v ~ /ms$/) {sub(/ms/, "", v)} else if (v ~ /s$/) {sub(/s/, "", v); v *= 1000}; print v}')
  awk -v rps="$(echo "$out" | awk '/Requests\/sec/ {print $2}')" -v t=$((u1 + s1 - u0 - s0)) -v r="$reqs" \
      -v k="$tick" -v p="$p99" -v tr="$trips" 'BEGIN {printf "%s %.2f %s %s\n", rps, t / k * 1e6 / r, p, tr}'
}
declare -A R C P T
for i in $(seq "$rounds"); do
  for m in $modes; do
    read -r r c p t < <(run "$m")
    R[$m]+="$r "; C[$m]+="$c "; P[$m]+="$p "; T[$m]+="$t "
    echo "round $i $m: $r req/s, $c us/req, p99 $p ms, redis round trips/req $t"
  done
done
med() { printf '%s\n' $@ | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
base_c=$(med ${C[off]:-0}); base_p=$(med ${P[off]:-0})
for m in $modes; do
  c=$(med ${C[$m]}); p=$(med ${P[$m]}); t=$(echo ${T[$m]} | awk '{print $1}')
  [ "$t" = "-" ] || t=$(med ${T[$m]})
  awk -v m="$m" -v r="$(med ${R[$m]})" -v c="$c" -v p="$p" -v bc="$base_c" -v bp="$base_p" -v t="$t" \
    'BEGIN {printf "%-9s median %s req/s, %s us/req (%.3fx off), p99 %s ms (%.3fx off), redis round trips/req %s\n", m, r, c, (bc > 0 ? c / bc : 0), p, (bp > 0 ? p / bp : 0), t}'
done
