#!/usr/bin/env bash
# What local_rate_limit costs per request: the same Ferry binary and traffic without the
# filter and with it (a bucket that never empties, so every request takes a token and passes),
# interleaved rounds, medians.
#   benchmarks/rate_limit_cost.sh [BIN (build-rel/proxy/ferry)] [ROUNDS (3)] [SECONDS (5)] [CONNS (10)] [MODES]
# MODES (default "off none client_ip"): off = no filter; none = local_rate_limit with key none
# (one bucket: every request of every connection hits the same atomic word); client_ip = keyed
# by the client's IP (one hash and a table lookup per request); header = keyed by a request
# header (wrk sends x-api-key).
# nginx upstream (`return 200 "hello world\n"`) and wrk on CPU 1, Ferry on CPU 0. Prints
# requests/s, Ferry's CPU µs per request (user+sys) and wrk's p99 per round, then the medians
# and each mode's ratio to "off". Needs nginx and wrk (scripts/install-deps --bench).
# Loopback only; stops what it starts.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build-rel/proxy/ferry}; rounds=${2:-3}; secs=${3:-5}; conns=${4:-10}
modes=${5:-"off none client_ip"}
work=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
up=${RL_BENCH_PORT:-19960}; px=$((up + 1))  # RL_BENCH_PORT: another base port
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
  local bucket="max_tokens: 1048575, tokens_per_fill: 1048575, fill_interval: 50ms"
  case "$1" in
    off) ;;
    none) http_extra="      filters: [{name: local_rate_limit, config: {$bucket}}]" ;;
    client_ip) http_extra="      filters: [{name: local_rate_limit, config: {$bucket, key: client_ip}}]" ;;
    header) http_extra="      filters: [{name: local_rate_limit, config: {$bucket, key: 'header:x-api-key'}}]" ;;
    *) echo "unknown mode $1" >&2; exit 2 ;;
  esac
  cat <<YAML
runtime: {workers: 1, log_level: warn}
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
tick=$(getconf CLK_TCK)
run() {  # $1 = mode; prints "rps us_per_req p99_ms"
  config "$1" > "$work/ferry.yaml"
  taskset -c 0 "$bin" -c "$work/ferry.yaml" & local pid=$!
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$px/" && break; sleep 0.05; done
  taskset -c 1 wrk -t1 -c"$conns" -d1s "http://127.0.0.1:$px/" >/dev/null  # warm-up
  local u0 s0 u1 s1
  read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$pid/stat")
  local out; out=$(taskset -c 1 wrk -t1 -c"$conns" -d"${secs}s" --latency -s "$work/header.lua" "http://127.0.0.1:$px/")
  read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$pid/stat")
  local limited; limited=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
  kill -TERM $pid; wait $pid 2>/dev/null || true
  [ -z "$limited" ] || { echo "mode $1: $limited non-2xx responses (the bucket emptied?)" >&2; exit 1; }
  local reqs p99; reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  p99=$(echo "$out" | awk '$1 == "99%" {v = $2; if (v ~ /us$/) {sub(/us/, "", v); v /= 1000} else if (v ~ /ms$/) {sub(/ms/, "", v)} else if (v ~ /s$/) {sub(/s/, "", v); v *= 1000}; print v}')
  awk -v rps="$(echo "$out" | awk '/Requests\/sec/ {print $2}')" -v t=$((u1 + s1 - u0 - s0)) -v r="$reqs" \
      -v k="$tick" -v p="$p99" 'BEGIN {printf "%s %.2f %s\n", rps, t / k * 1e6 / r, p}'
}
declare -A R C P
for i in $(seq "$rounds"); do
  for m in $modes; do
    read -r r c p < <(run "$m")
    R[$m]+="$r "; C[$m]+="$c "; P[$m]+="$p "
    echo "round $i $m: $r req/s, $c us/req, p99 $p ms"
  done
done
med() { printf '%s\n' $@ | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
base_c=$(med ${C[off]:-0}); base_p=$(med ${P[off]:-0})
for m in $modes; do
  c=$(med ${C[$m]}); p=$(med ${P[$m]})
  awk -v m="$m" -v r="$(med ${R[$m]})" -v c="$c" -v p="$p" -v bc="$base_c" -v bp="$base_p" \
    'BEGIN {printf "%-10s median %s req/s, %s us/req (%.3fx off), p99 %s ms (%.3fx off)\n", m, r, c, (bc > 0 ? c / bc : 0), p, (bp > 0 ? p / bp : 0)}'
done
