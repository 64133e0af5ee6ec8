#!/usr/bin/env bash
# What a client sees when one of three upstreams dies under load, with and without active
# health checks, outlier detection and retries.
#   benchmarks/failover.sh [FERRY_BIN (build-rel/proxy/ferry)] [SECONDS (12)] [KILL_AT (4)]
# Three nginx upstreams (one process each); wrk -t1 -c20 for SECONDS through Ferry (1 worker);
# at KILL_AT seconds one upstream is SIGKILLed. Ferry's /metrics is sampled every 100 ms, so
# the table gives the 5xx answers and when the last one was seen, per scenario.
# Needs nginx, wrk and curl (scripts/install-deps --bench). Loopback only; stops what it starts.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build-rel/proxy/ferry}; secs=${2:-12}; kill_at=${3:-4}
work=$(mktemp -d)
cleanup() {
  for f in "$work"/nginx*.pid; do [ -s "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null; done
  kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"
}
trap cleanup EXIT
ports=(19921 19922 19923); px=19920; admin=19929

start_upstream() {  # $1 = index
  local p=${ports[$1]}
  cat > "$work/nginx$1.conf" <<NGX
user root; daemon off; master_process off; worker_processes 1;
error_log $work/error$1.log; pid $work/nginx$1.pid;
events {}
http { access_log off; keepalive_requests 10000000;
  server { listen 127.0.0.1:$p; location / { return 200 "hello from $1\n"; } } }
NGX
  rm -f "$work/nginx$1.pid"
  (taskset -c 1 timeout 3600 nginx -c "$work/nginx$1.conf" > /dev/null 2>&1 &)  # not a job: killed by pid
  for _ in $(seq 100); do [ -s "$work/nginx$1.pid" ] && curl -fs "http://127.0.0.1:$p/" >/dev/null && return; sleep 0.05; done
  echo "upstream $1 did not start" >&2; exit 1
}

metric() {  # $1 = sample name with labels, from the last scrape
  awk -v k="$1" '$1 == k {print $2; found=1} END {if (!found) print 0}' "$work/scrape"
}

run() {  # $1 = name, $2 = extra cluster YAML, $3 = extra route YAML
  cat > "$work/ferry.yaml" <<YAML
runtime: {workers: 1, log_level: error}
admin: {address: 127.0.0.1:$admin}
listeners:
  - name: web
    address: 127.0.0.1:$px
    http:
      virtual_hosts:
        - {name: all, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: up$3}}]}
clusters:
  - name: up
    endpoints: [{address: 127.0.0.1:${ports[0]}}, {address: 127.0.0.1:${ports[1]}}, {address: 127.0.0.1:${ports[2]}}]
$2
YAML
  taskset -c 0 timeout 3600 "$bin" -c "$work/ferry.yaml" > "$work/ferry.log" 2>&1 &
  local fpid=$!
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$admin/ready" >/dev/null && break; sleep 0.05; done
  taskset -c 1 wrk -t1 -c20 -d"${secs}s" "http://127.0.0.1:$px/" > "$work/wrk.out" 2>&1 &
  local wpid=$! t0; t0=$(date +%s.%N)
  local killed=0 last5xx=-1 prev5xx=0 at_kill=0 now
  while kill -0 "$wpid" 2>/dev/null; do
    sleep 0.1
    now=$(echo "$(date +%s.%N) - $t0" | bc)
    curl -fs "http://127.0.0.1:$admin/metrics" > "$work/scrape" || continue
    local e; e=$(metric 'ferry_downstream_requests_total{listener="web",code="5xx"}')
    if [ "$killed" = 0 ] && [ "$(echo "$now >= $kill_at" | bc)" = 1 ]; then
      kill -9 "$(cat "$work/nginx1.pid")"; killed=1; at_kill=$now; prev5xx=$e
    fi
    if [ "$killed" = 1 ] && [ "${e%.*}" -gt "${prev5xx%.*}" ]; then
      last5xx=$(echo "$now - $at_kill" | bc); prev5xx=$e
    fi
  done
  wait "$wpid" || true
  curl -fs "http://127.0.0.1:$admin/metrics" > "$work/scrape" || true
  local ok err ej retries overflow uc uf
  ok=$(metric 'ferry_downstream_requests_total{listener="web",code="2xx"}')
  err=$(metric 'ferry_downstream_requests_total{listener="web",code="5xx"}')
  ej=$(metric 'ferry_cluster_outlier_ejections_total{cluster="up"}')
  retries=$(metric 'ferry_upstream_retries_total{cluster="up"}')
  overflow=$(metric 'ferry_upstream_retry_overflow_total{cluster="up"}')
  uc=$(metric 'ferry_downstream_response_flags_total{listener="web",flag="UC"}')
  uf=$(metric 'ferry_downstream_response_flags_total{listener="web",flag="UF"}')
  printf "%-28s %9s %6s %6s %6s %14s %9s %8s %9s\n" "$1" "${ok%.*}" "${err%.*}" "${uf%.*}" "${uc%.*}" \
    "$( [ "$last5xx" = -1 ] && echo none || printf '%.1fs' "$last5xx")" "${ej%.*}" "${retries%.*}" "${overflow%.*}"
  kill "$fpid" 2>/dev/null; wait "$fpid" 2>/dev/null || true
  start_upstream 1
}

for i in 0 1 2; do start_upstream "$i"; done
echo "wrk -t1 -c20 -d${secs}s through Ferry (1 worker); upstream 1 of 3 SIGKILLed at ${kill_at}s"
printf "%-28s %9s %6s %6s %6s %14s %9s %8s %9s\n" scenario "2xx" "5xx" "UF" "UC" "last 5xx after" ejections retries "retry_ovf"
hc="    health_check: {path: /, interval: 1s, timeout: 250ms, unhealthy_threshold: 2, healthy_threshold: 2}"
od="    outlier_detection: {consecutive_gateway_failure: 3, consecutive_5xx: 5, base_ejection_time: 30s}"
run "nothing" "" ""
run "health_check" "$hc" ""
run "outlier_detection" "$od" ""
run "health_check+outlier" "$hc
$od" ""
run "hc+outlier+retry" "$hc
$od" ", retry: {attempts: 2, retry_on: [connect-failure, reset]}"
run "hc+outlier+retry+budget" "$hc
$od
    circuit_breakers: {retry_budget: {percent: 25, min_retry_concurrency: 20}}" ", retry: {attempts: 2, retry_on: [connect-failure, reset]}"
