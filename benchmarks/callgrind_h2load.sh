#!/usr/bin/env bash
# Instructions per request of a Ferry binary under callgrind, plain HTTP/1.1, HTTPS or h2c
# (HTTP/2 by prior knowledge, 10 streams per connection), with h2load as the client and nginx
# as the upstream: user-space cost that does not depend on how
# busy this machine is (the wall-clock A/B of benchmarks/ab_cpu.sh cannot see a few percent
# here). Ferry serves N1 and then N2 keep-alive requests (`h2load --h1 -c 10`; with --h2c
# `h2load -c 4 -m 10`) in two runs;
# the difference, divided by N2 - N1, is the steady-state cost of one request: connection
# set-up and the TLS handshakes are in both runs and cancel out.
#   benchmarks/callgrind_h2load.sh BIN [--tls | --h2c] [--top N] [--keep DIR]
# Prints instructions and allocations per request and the top N functions (default 25), self
# and inclusive, per request (benchmarks/callgrind/cgstat.py).
# The worker runs on epoll (valgrind and io_uring do not mix well). Takes about a minute.
# Needs valgrind, nginx and h2load (scripts/install-deps --bench). Loopback only; stops what
# it starts.
set -euo pipefail
self=$(realpath "$0")
bin=; tls=0; h2c=0; top=25; keep=
while [ $# -gt 0 ]; do
  case $1 in
    --tls) tls=1 ;;
    --h2c) h2c=1 ;;
    --top) top=${2:?--top needs a number}; shift ;;
    --keep) keep=${2:?--keep needs a directory}; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$self" | sed '$d'; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) bin=$1 ;;
  esac
  shift
done
[ -n "$bin" ] && [ -x "$bin" ] || { echo "usage: $0 BIN [--tls | --h2c] [--top N] [--keep DIR]" >&2; exit 2; }
[ $((tls + h2c)) -le 1 ] || { echo "--tls and --h2c do not go together" >&2; exit 2; }
client="--h1 -c 10"; [ $h2c = 1 ] && client="-c 4 -m 10"
for t in valgrind nginx h2load callgrind_annotate; do
  command -v $t >/dev/null || { echo "$t not found (scripts/install-deps --bench)" >&2; exit 2; }
done
n1=1000; n2=5000
up=19930; px=19931
work=$(mktemp -d /tmp/ferry-cgh.XXXXXX)
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  if [ -n "$keep" ]; then mkdir -p "$keep" && cp "$work"/*.out "$work"/*.yaml "$keep"/ 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
cp "$bin" "$work/ferry"

cat >"$work/nginx.conf" <<NGX
user root; daemon off; worker_processes 1; error_log $work/nginx-error.log; pid $work/nginx.pid;
events { worker_connections 1024; }
http { access_log off; keepalive_requests 10000000;
  server { listen 127.0.0.1:$up; location / { return 200 "hello world\n"; } } }
NGX
timeout 900 nginx -c "$work/nginx.conf" &

tlsblock=""; scheme=http
if [ $tls = 1 ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
    -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
  tlsblock="    tls: {certificates: [{cert_file: $work/cert.pem, key_file: $work/key.pem}]}"
  scheme=https
fi
cat >"$work/ferry.yaml" <<YAML
runtime: {workers: 1, log_level: warn, drain_delay: 0s, drain_timeout: 5s}
listeners:
  - name: web
    address: 127.0.0.1:$px
$tlsblock
    http:
      virtual_hosts:
        - {name: all, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: up}}]}
clusters:
  - {name: up, endpoints: [{address: 127.0.0.1:$up}]}
YAML

run() {  # $1 = requests, $2 = output file
  timeout 600 valgrind --tool=callgrind --callgrind-out-file="$2" "$work/ferry" --io epoll \
    -c "$work/ferry.yaml" >"$work/ferry.log" 2>&1 &
  local vp=$! ok=
  for _ in $(seq 300); do
    curl -sk -o /dev/null "$scheme://127.0.0.1:$px/" && { ok=1; break; }
    sleep 0.1
  done
  [ -n "$ok" ] || { echo "ferry did not start under valgrind:" >&2; cat "$work/ferry.log" >&2; exit 2; }
  h2load $client -n 500 "$scheme://127.0.0.1:$px/" >/dev/null  # warm-up
  local out; out=$(h2load $client -n "$1" "$scheme://127.0.0.1:$px/")
  echo "$out" | grep -q "$1 succeeded, 0 failed" || { echo "h2load: not every request succeeded:" >&2; echo "$out" >&2; exit 2; }
  kill -TERM $vp
  wait $vp || { echo "ferry under callgrind failed:" >&2; cat "$work/ferry.log" >&2; exit 2; }
}
run $n1 "$work/small.out"
run $n2 "$work/large.out"

python3 "$(dirname "$self")/callgrind/cgstat.py" "$work/small.out" "$work/large.out" $((n2 - n1)) --profile "$top"
