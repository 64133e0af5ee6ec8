#!/usr/bin/env bash
# A/B: proxy CPU per request of two Ferry binaries (or builds), same config, interleaved.
#   benchmarks/ab_cpu.sh BIN_A BIN_B [ROUNDS (5)] [SECONDS (5)] [CONNS (10)] [MODE (h1)]
# MODE: h1 (HTTP/1.1 keep-alive, wrk), tls (HTTPS keep-alive, wrk; a self-signed certificate
# made here), or h2c (HTTP/2 by prior knowledge, h2load with 10 streams per connection).
# BIN may also be the word "nginx" or "haproxy": that peer as the proxy, same listener and TLS
# certificate (1 worker or thread; nginx keeps 1024 upstream connections alive, HAProxy
# http-reuse always). nginx upstream (`return 200 "hello world\n"`) and the load on CPU 1, the proxy
# on CPU 0.
# BIN may also be "floor:PATH": the Ferry binary PATH as a plain TCP forwarder (a `tcp` listener,
# splice off; in tls mode it terminates TLS), one upstream connection per client connection. With
# keep-alive load that is the same socket operations per request as an HTTP proxy with pooled
# upstream connections, and no HTTP work at all: what the kernel path and Ferry's bare loop cost.
# h1 and tls modes only.
# AB_MORE="BIN_C BIN_D ..." adds more binaries to the same interleaved rounds (C, D, ...).
# Prints requests/s, the proxy's CPU µs per request (user+sys, and each) and wrk's p99 latency
# per round, then medians.
# Needs nginx, HAProxy, wrk and h2load (scripts/install-deps --bench). Loopback only; stops what it starts.
set -euo pipefail
a=${1:?BIN_A}; b=${2:?BIN_B}; rounds=${3:-5}; secs=${4:-5}; conns=${5:-10}; mode=${6:-h1}
case $mode in h1 | tls | h2c) ;; *) echo "MODE must be h1, tls or h2c" >&2; exit 2 ;; esac
read -r -a bins <<<"$a $b ${AB_MORE:-}"
[ ${#bins[@]} -le 8 ] || { echo "at most 8 binaries (BIN_A, BIN_B and 6 in AB_MORE)" >&2; exit 2; }
for x in "${bins[@]}"; do
  case $x in floor:*) [ "$mode" != h2c ] || { echo "floor: h1 and tls modes only" >&2; exit 2; } ;; esac
done
work=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
up=19910; px=19911
cat > "$work/nginx.conf" <<NGX
user root; daemon off; worker_processes 1; error_log $work/error.log; pid $work/nginx.pid;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 10000000;
  server { listen 127.0.0.1:$up; location / { return 200 "hello world\n"; } } }
NGX
tls=""; scheme=http
if [ "$mode" = tls ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
    -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
  tls="    tls: {certificates: [{cert_file: $work/cert.pem, key_file: $work/key.pem}]}"
  scheme=https
  cat "$work/cert.pem" "$work/key.pem" > "$work/both.pem"
fi
cat > "$work/ferry.yaml" <<YAML
runtime: {workers: 1, log_level: warn}
listeners:
  - name: web
    address: 127.0.0.1:$px
$tls
    http:
      virtual_hosts:
        - {name: all, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: up}}]}
clusters:
  - {name: up, endpoints: [{address: 127.0.0.1:$up}]}
YAML
cat > "$work/floor.yaml" <<YAML
runtime: {workers: 1, log_level: warn}
listeners:
  - name: web
    address: 127.0.0.1:$px
$tls
    tcp: {cluster: up, splice: false}
clusters:
  - {name: up, endpoints: [{address: 127.0.0.1:$up}]}
YAML
nlisten="listen 127.0.0.1:$px"; hbind="bind 127.0.0.1:$px"
[ "$mode" = tls ] && nlisten="$nlisten ssl; ssl_certificate $work/cert.pem; ssl_certificate_key $work/key.pem" \
  && hbind="$hbind ssl crt $work/both.pem alpn http/1.1"
[ "$mode" = h2c ] && nlisten="$nlisten http2" && hbind="$hbind proto h2"
cat > "$work/nginx-proxy.conf" <<NGX
user root; daemon off; worker_processes 1; error_log $work/error-proxy.log; pid $work/nginx-proxy.pid;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 10000000;
  upstream up { server 127.0.0.1:$up; keepalive 1024; }
  server { $nlisten;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
NGX
cat > "$work/haproxy.cfg" <<HAP
global
  nbthread 1
  maxconn 8000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
frontend fe
  $hbind
  default_backend be
backend be
  server s1 127.0.0.1:$up
HAP
taskset -c 1 timeout 3600 nginx -c "$work/nginx.conf" &
tick=$(getconf CLK_TCK)
load() {  # $1 = seconds: the load generator's report
  if [ "$mode" = h2c ]; then
    taskset -c 1 h2load -c "$conns" -m 10 -D "$1" "http://127.0.0.1:$px/"
  else
    taskset -c 1 wrk --latency -t1 -c"$conns" -d"${1}s" "$scheme://127.0.0.1:$px/"
  fi
}
run() {  # $1 = binary, "nginx" or "haproxy"; prints "rps us_per_req user_us sys_us p99"
  if [ "$1" = nginx ]; then
    taskset -c 0 nginx -c "$work/nginx-proxy.conf" & local pid=$!
  elif [ "$1" = haproxy ]; then
    taskset -c 0 haproxy -db -f "$work/haproxy.cfg" & local pid=$!
  elif [ "${1#floor:}" != "$1" ]; then
    taskset -c 0 "${1#floor:}" -c "$work/floor.yaml" & local pid=$!
  else
    taskset -c 0 "$1" -c "$work/ferry.yaml" & local pid=$!  # no wrapper: $pid is the proxy
  fi
  for _ in $(seq 100); do curl -sk -o /dev/null "$scheme://127.0.0.1:$px/" && break; sleep 0.05; done
  load 1 >/dev/null  # warm-up
  local u0 s0 u1 s1 pids
  pids="$pid $( (pgrep -P "$pid" || true) | tr "\n" " ")"  # nginx: the worker is the master's child
  cpu() { for p in $pids; do cat "/proc/$p/stat"; done | awk '{u += $14; s += $15} END {print u, s}'; }
  read -r u0 s0 < <(cpu)
  local out; out=$(load "$secs")
  read -r u1 s1 < <(cpu)
  kill -TERM $pid; wait $pid 2>/dev/null || true
  local reqs rps p99=-
  if [ "$mode" = h2c ]; then
    reqs=$(echo "$out" | awk '/^requests:/ {print $8}')  # succeeded
    rps=$(echo "$out" | awk '/^finished in/ {print $4}')
  else
    reqs=$(echo "$out" | awk '/requests in/ {print $1}')
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
  fi
  awk -v rps="$rps" -v u=$((u1 - u0)) -v s=$((s1 - s0)) \
      -v r="$reqs" -v k="$tick" -v p="$p99" 'BEGIN {printf "%s %.2f %.2f %.2f %s\n", rps, (u + s) / k * 1e6 / r, u / k * 1e6 / r, s / k * 1e6 / r, p}'
}
us() { case $1 in *us) echo "${1%us}" ;; *ms) awk -v v="${1%ms}" 'BEGIN {print v * 1000}' ;; *s) awk -v v="${1%s}" 'BEGIN {print v * 1e6}' ;; *) echo "$1" ;; esac; }
labels=(A B C D E F G H)
declare -A m_rps m_cpu m_user m_sys m_p99
for i in $(seq "$rounds"); do
  for k in "${!bins[@]}"; do
    read -r r c u sy p < <(run "${bins[$k]}")
    m_rps[$k]+="$r "; m_cpu[$k]+="$c "; m_user[$k]+="$u "; m_sys[$k]+="$sy "; m_p99[$k]+="$(us "$p") "
    echo "round $i ${labels[$k]}: $r req/s, $c us/req (user $u, sys $sy), p99 $p"
  done
done
med() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
p99() { [ "$mode" = h2c ] && echo "-" || echo "$(med "$@") us"; }
for k in "${!bins[@]}"; do
  # shellcheck disable=SC2086  # the lists are space-separated numbers
  echo "${labels[$k]} ${bins[$k]}: median $(med ${m_rps[$k]}) req/s, $(med ${m_cpu[$k]}) us/req (user $(med ${m_user[$k]}), sys $(med ${m_sys[$k]})), p99 $(p99 ${m_p99[$k]})"
done
