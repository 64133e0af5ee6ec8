#!/usr/bin/env bash
# What response compression costs per request: a 10 kB JSON file served by nginx, fetched with
# `Accept-Encoding: gzip` through Ferry without compression and with the compression filter
# at gzip level 1 and 6, and through nginx proxying the same upstream with `gzip off` and
# `gzip on; gzip_comp_level 1/6`, in the same run: interleaved rounds, medians.
#   benchmarks/compression_cost.sh [BIN (build-rel/proxy/ferry)] [ROUNDS (3)] [SECONDS (5)] [CONNS (10)] [MODES]
# MODES (default "ferry-off ferry-gzip1 ferry-gzip6 nginx-off nginx-gzip1 nginx-gzip6").
# The upstream nginx and wrk run on CPU 1, the proxy under test (Ferry, or the proxying nginx's
# one worker) on CPU 0. Prints requests/s, the proxy's CPU µs per request (user+sys, from
# /proc), wrk's p99 and the response size per round, then the medians and each mode's CPU
# ratio to its proxy's "off". Needs nginx and wrk (scripts/install-deps --bench).
# Loopback only; stops what it starts.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build-rel/proxy/ferry}; rounds=${2:-3}; secs=${3:-5}; conns=${4:-10}
modes=${5:-"ferry-off ferry-gzip1 ferry-gzip6 nginx-off nginx-gzip1 nginx-gzip6"}
work=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
up=19930; px=19931
# About 10 kB of JSON (compresses about 5x at gzip 6, like a typical API answer).
python3 - "$work/data.json" <<'PY'
import json, sys
items = [{"id": i, "name": "item number %d" % (i * 31 % 977), "price": round(i * 1.37, 2),
          "tags": ["red", "blue"][: 1 + i % 2], "in_stock": i % 3 != 0} for i in range(400)]
s = json.dumps(items)
while len(s) > 10000:
    items.pop()
    s = json.dumps(items)
open(sys.argv[1], "w").write(s)
PY
cat > "$work/upstream.conf" <<NGX
user root; daemon off; worker_processes 1; error_log $work/upstream-error.log; pid $work/upstream.pid;
events {}
http { access_log off; keepalive_requests 10000000; types { application/json json; }
  server { listen 127.0.0.1:$up; root $work; } }
NGX
nginx_proxy_conf() {  # $1 = gzip level (0 = gzip off)
  local gz="gzip off;"
  [ "$1" != 0 ] && gz="gzip on; gzip_comp_level $1; gzip_types application/json; gzip_min_length 256; gzip_proxied any; gzip_vary on;"
  cat <<NGX
user root; daemon off; worker_processes 1; error_log $work/proxy-error.log; pid $work/proxy.pid;
events {}
http { access_log off; keepalive_requests 10000000; $gz
  upstream up { server 127.0.0.1:$up; keepalive 32; }
  server { listen 127.0.0.1:$px;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
NGX
}
ferry_conf() {  # $1 = gzip level (0 = no filter)
  local filters=""
  [ "$1" != 0 ] && filters="      filters: [{name: compression, config: {algorithms: [gzip], gzip_level: $1}}]"
  cat <<YAML
runtime: {workers: 1, log_level: warn}
listeners:
  - name: web
    address: 127.0.0.1:$px
    http:
$filters
      virtual_hosts:
        - {name: all, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: up}}]}
clusters:
  - {name: up, endpoints: [{address: 127.0.0.1:$up}]}
YAML
}
taskset -c 1 timeout 3600 nginx -c "$work/upstream.conf" &
tick=$(getconf CLK_TCK)
url="http://127.0.0.1:$px/data.json"
run() {  # $1 = mode; prints "rps us_per_req p99_ms bytes"
  local proxy=${1%%-*} level=${1#*-} pid cpu_pid
  level=${level#gzip}; [ "$level" = off ] && level=0
  if [ "$proxy" = ferry ]; then
    ferry_conf "$level" > "$work/ferry.yaml"
    taskset -c 0 "$bin" -c "$work/ferry.yaml" & pid=$!
    cpu_pid=$pid
  else
    nginx_proxy_conf "$level" > "$work/proxy.conf"
    taskset -c 0 nginx -c "$work/proxy.conf" & pid=$!
  fi
  for _ in $(seq 100); do curl -s -o /dev/null "$url" && break; sleep 0.05; done
  # The nginx proxy's CPU is its worker's.
  [ "$proxy" = nginx ] && cpu_pid=$(pgrep -P "$pid" | head -1)
  local bytes; bytes=$(curl -s -H 'Accept-Encoding: gzip' "$url" | wc -c)
  taskset -c 1 wrk -t1 -c"$conns" -d1s -H 'Accept-Encoding: gzip' "$url" >/dev/null  # warm-up
  local u0 s0 u1 s1
  read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$cpu_pid/stat")
  local out; out=$(taskset -c 1 wrk -t1 -c"$conns" -d"${secs}s" --latency -H 'Accept-Encoding: gzip' "$url")
  read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$cpu_pid/stat")
  kill -TERM $pid; wait $pid 2>/dev/null || true
  local reqs p99; reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  p99=$(echo "$out" | awk '$1 == "99%" {v = $2; if (v ~ /us$/) {sub(/us/, "", v); v /= 1000} else if (v ~ /ms$/) {sub(/ms/, "", v)} else if (v ~ /s$/) {sub(/s/, "", v); v *= 1000}; print v}')
  awk -v rps="$(echo "$out" | awk '/Requests\/sec/ {print $2}')" -v t=$((u1 + s1 - u0 - s0)) -v r="$reqs" \
      -v k="$tick" -v p="$p99" -v b="$bytes" 'BEGIN {printf "%s %.2f %s %s\n", rps, t / k * 1e6 / r, p, b}'
}
declare -A R C P B
for i in $(seq "$rounds"); do
  for m in $modes; do
    read -r r c p b < <(run "$m")
    R[$m]+="$r "; C[$m]+="$c "; P[$m]+="$p "; B[$m]=$b
    echo "round $i $m: $r req/s, $c us/req, p99 $p ms, $b bytes"
  done
done
med() { printf '%s\n' $@ | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
for m in $modes; do
  base=${m%%-*}-off
  bc=$(med ${C[$base]:-0})
  awk -v m="$m" -v r="$(med ${R[$m]})" -v c="$(med ${C[$m]})" -v p="$(med ${P[$m]})" -v b="${B[$m]}" -v bc="$bc" -v base="$base" \
    'BEGIN {printf "%-12s median %s req/s, %s us/req (%.2fx %s), p99 %s ms, %s bytes\n", m, r, c, (bc > 0 ? c / bc : 0), base, p, b}'
done
