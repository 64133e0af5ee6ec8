#!/usr/bin/env bash
# Tracing's cost: Ferry's CPU per request with tracing off, with `tracing:` and no export
# (headers only), and with sample_rate 1.0 and OTLP export of every span to a collector.
# Same binary, the three configs interleaved round after round.
#   benchmarks/tracing_cost.sh [BIN (build-rel/proxy/ferry)] [ROUNDS (3)] [SECONDS (10)] [CONNS (10)]
# nginx serves both the upstream (`return 200 "hello world\n"`) and the collector (POST
# /v1/traces answered 200, bodies discarded); nginx and wrk on CPU 1, Ferry (1 worker) on
# CPU 0. Prints requests/s and Ferry's CPU µs per request (user+sys) per run, the spans the
# export run exported and dropped, then medians. Needs nginx and wrk (scripts/install-deps
# --bench). Loopback only; every run bounded (wrk's duration); stops what it starts.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build-rel/proxy/ferry}; rounds=${2:-3}; secs=${3:-10}; conns=${4:-10}
work=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
up=19920; col=19921; px=19922; adm=19923
cat > "$work/nginx.conf" <<NGX
user root; daemon off; worker_processes 1; error_log $work/error.log; pid $work/nginx.pid;
events {}
http { access_log off; keepalive_requests 10000000; client_max_body_size 64m;
  server { listen 127.0.0.1:$up; location / { return 200 "hello world\n"; } }
  server { listen 127.0.0.1:$col; location / { return 200 "{}"; } } }
NGX
config() {  # $1 = the tracing block (indented 6)
  cat <<YAML
runtime: {workers: 1, log_level: warn}
admin: {address: 127.0.0.1:$adm}
listeners:
  - name: web
    address: 127.0.0.1:$px
    http:
$1
      virtual_hosts:
        - {name: all, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: up}}]}
clusters:
  - {name: up, endpoints: [{address: 127.0.0.1:$up}]}
  - {name: otel, endpoints: [{address: 127.0.0.1:$col}]}
YAML
}
config "" > "$work/off.yaml"
config "      tracing: {sample_rate: 1.0}" > "$work/headers.yaml"
config "      tracing: {sample_rate: 1.0, otlp: {cluster: otel, flush_interval: 1s, max_batch: 512, max_queue: 4096}}" > "$work/export.yaml"
taskset -c 1 timeout 3600 nginx -c "$work/nginx.conf" &
tick=$(getconf CLK_TCK)
metric() { curl -s "http://127.0.0.1:$adm/metrics" | awk -v k="$1" 'index($0, k) == 1 {s += $2} END {print s + 0}'; }
run() {  # $1 = config name; prints "rps us_per_req exported dropped"
  taskset -c 0 "$bin" -c "$work/$1.yaml" & local pid=$!
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$px/" && break; sleep 0.05; done
  taskset -c 1 timeout 30 wrk -t1 -c"$conns" -d1s "http://127.0.0.1:$px/" >/dev/null  # warm-up
  local u0 s0 u1 s1
  cpu() { awk '{print $14, $15}' "/proc/$pid/stat"; }
  read -r u0 s0 < <(cpu)
  local out; out=$(taskset -c 1 timeout $((secs + 30)) wrk -t1 -c"$conns" -d"${secs}s" "http://127.0.0.1:$px/")
  read -r u1 s1 < <(cpu)
  sleep 1.5  # the last batch is flushed (flush_interval 1s) before the counters are read
  local exported dropped
  exported=$(metric ferry_tracing_spans_exported_total); dropped=$(metric ferry_tracing_spans_dropped_total)
  kill -TERM $pid; wait $pid 2>/dev/null || true
  local reqs; reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  awk -v rps="$(echo "$out" | awk '/Requests\/sec/ {print $2}')" -v u=$((u1 - u0)) -v s=$((s1 - s0)) \
      -v r="$reqs" -v k="$tick" -v e="$exported" -v d="$dropped" \
      'BEGIN {printf "%s %.2f %d %d\n", rps, (u + s) / k * 1e6 / r, e, d}'
}
declare -A R C
for i in $(seq "$rounds"); do
  for cfg in off headers export; do
    read -r r c e d < <(run $cfg)
    R[$cfg]+="$r "; C[$cfg]+="$c "
    echo "round $i $cfg: $r req/s, $c us/req (spans exported $e, dropped $d)"
  done
done
med() { printf '%s\n' $@ | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
for cfg in off headers export; do
  echo "$cfg: median $(med ${R[$cfg]}) req/s, $(med ${C[$cfg]}) us/req"
done
