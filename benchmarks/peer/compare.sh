#!/usr/bin/env bash
# Ferry beside nginx and HAProxy on this machine: one interleaved run, one table of ratios.
#
#   wrk ──► proxy (nginx | HAProxy | Ferry, one worker each, pinned to PROXY_CPU) ──► upstream
#   wrk ─TLS─► the same proxy, its TLS listener ──────────────────────────────────► upstream  (plain HTTP)
#   wrk ──────────────────────────────────────────────────────────────────────────► upstream  ("direct", optional)
#
# The upstream is an nginx answering every request with a 12-byte body ("hello world\n").
# Each proxy has a plain listener and a TLS listener (same process, same upstream) holding
# one self-signed ECDSA P-256 certificate made with openssl in OUTDIR/conf/tls. TLS runs
# without session resumption on all three (no tickets, no server-side session cache: nginx
# `ssl_session_tickets off; ssl_session_cache off`, HAProxy `no-tls-tickets` and
# `tune.ssl.cachesize 0`, Ferry `session_tickets: false, session_cache_size: 0`), so every
# new TLS connection is a full handshake on each of them; a check before any load makes
# sure none resumes a session (openssl s_client -sess_out, then -sess_in).
# Phases: h1 (keep-alive), close (a new TCP connection per request), tls (HTTPS keep-alive),
# tlsclose (HTTPS, a new connection and so a full handshake per request), mem (RSS per idle
# connection: TCP only, after one request, after a TLS handshake and one request).
# The load generator (wrk) and the upstream run on CLIENT_CPU. The proxies are loaded in
# turn, round after round (A B C, B C A, C A B, ...), so slow drifts of the machine hit every
# proxy alike. Per run it records requests/s, p50/p99 latency and the proxy's CPU time per
# request (utime+stime from /proc/PID/stat, over its whole process tree), and the CPU taken
# by processes outside the benchmark ("background"); a disturbed run is repeated once.
# Medians over the clean rounds go to OUTDIR/summary.md, and the last table printed gives
# Ferry's ratio to the better peer per workload. benchmarks/README.md explains the columns.
#
# Needs: nginx haproxy wrk curl openssl taskset ss python3 (scripts/install-deps --bench), and a
# release build of Ferry (scripts/build build-rel --buildtype=release). 127.0.0.1 only.
# Everything it starts is stopped on exit, Ctrl-C included. `compare.sh --help` for options.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
py=${PYTHON:-python3}
helper=$here/bench.py

usage() {
  cat <<EOF
Usage: benchmarks/peer/compare.sh [options]
  --outdir DIR        results: raw.tsv, mem.tsv, env.txt, summary.md, summary.json, logs/
                      (default /tmp/ferry-compare-<date>-<time>)
  --quick             smoke run of about 3 minutes: 1 round of 3 s, 1,000 idle connections
  --rounds N          interleaved rounds per workload          (default 3)
  --duration S        seconds of load per run                  (default 10; --quick 3)
  --warmup S          unrecorded load per target and phase     (default 2; --quick 1)
  --conns "A B"       wrk connections, keep-alive phases       (default "10 100")
                      (h1 and tls)
  --close-conns "A"   wrk connections, new-connection phases   (default "100")
                      (close and tlsclose)
  --mem-conns N       idle connections in the memory phase     (default 10000; --quick 1000)
  --phases "..."      any of: h1 close tls tlsclose mem        (default "h1 close tls tlsclose mem")
                      (run in that order)
                      h1: keep-alive; close: 'Connection: close' on every request;
                      tls: HTTPS keep-alive; tlsclose: HTTPS with 'Connection: close', a
                      full TLS handshake per request (no resumption anywhere);
                      mem: RSS per idle connection (modes connect, req, tls).
                      h2 is reserved (not built yet).
  --targets "..."     any of: nginx haproxy ferry direct floor (default "nginx haproxy ferry")
                      direct = wrk straight to the upstream, no proxy (a floor for latency;
                      plain phases only: the upstream has no TLS listener)
                      floor = the same Ferry binary as a plain TCP forwarder (FERRY_FLOOR=1
                      in ferry-config.sh): the same socket operations per keep-alive request
                      as a proxy with pooled upstream connections and no HTTP work, so what
                      the kernel path costs on Ferry's loop (h1, tls; not in mem)
  --unpinned          pin nothing: proxies, wrk and upstream all free to use every CPU
                      (default: proxy on PROXY_CPU, wrk and upstream on CLIENT_CPU)
  --ferry BIN         Ferry binary (default \$FERRY_BIN or build-rel/proxy/ferry)
  --base-port P       upstream on P, nginx P+1, HAProxy P+2, Ferry P+3 (default 28080);
                      their TLS listeners on P+4, P+5, P+6; floor P+7, TLS P+8
  --noisy-max PCT     background load (% of one core) above which a run counts as
                      disturbed: repeated once, and left out of the medians (default 15)
  --max-minutes M     stop starting new runs after M minutes; report what was measured
                      (default 60)
Environment: FERRY_BIN, FERRY_WORKERS (default 1), FERRY_ROUTES (default 0: extra routes
in front of the catch-all, see benchmarks/peer/ferry-config.sh), PROXY_CPU (0),
CLIENT_CPU (1), PYTHON; the noise guards QUIET_MAX (10: background % of a core waited
for before a run), QUIET_WAIT (20 s per run), QUIET_BUDGET (120 s in all; 30 with
--quick), RETRY_BUDGET (8 repeated runs in all; 3 with --quick).
EOF
}

# ------------------------------------------------------------------------------ options
quick=0 unpinned=0 rounds="" duration="" warmup="" conns="10 100" close_conns="100" mem_conns=""
phases="h1 close tls tlsclose mem" targets="nginx haproxy ferry" outdir="" base_port=28080
noisy_max=15 max_minutes=60 ferry_bin=${FERRY_BIN:-$root/build-rel/proxy/ferry}
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1; shift;;
    --unpinned) unpinned=1; shift;;
    --rounds) rounds=$2; shift 2;;
    --duration) duration=$2; shift 2;;
    --warmup) warmup=$2; shift 2;;
    --conns) conns=$2; shift 2;;
    --close-conns) close_conns=$2; shift 2;;
    --mem-conns) mem_conns=$2; shift 2;;
    --phases) phases=$2; shift 2;;
    --targets) targets=$2; shift 2;;
    --outdir) outdir=$2; shift 2;;
    --ferry) ferry_bin=$2; shift 2;;
    --base-port) base_port=$2; shift 2;;
    --noisy-max) noisy_max=$2; shift 2;;
    --max-minutes) max_minutes=$2; shift 2;;
    -h|--help) usage; exit 0;;
    *) echo "compare.sh: unknown option '$1'" >&2; usage >&2; exit 2;;
  esac
done
if [ "$quick" = 1 ]; then
  rounds=${rounds:-1} duration=${duration:-3} warmup=${warmup:-1} mem_conns=${mem_conns:-1000}
else
  rounds=${rounds:-3} duration=${duration:-10} warmup=${warmup:-2} mem_conns=${mem_conns:-10000}
fi
proxy_cpu=${PROXY_CPU:-0}
client_cpu=${CLIENT_CPU:-1}
if [ "$unpinned" = 1 ]; then proxy_cpu="0-$(($(nproc) - 1))" client_cpu=$proxy_cpu; fi
ferry_workers=${FERRY_WORKERS:-1}
ferry_routes=${FERRY_ROUTES:-0}
quiet_max=${QUIET_MAX:-10}         # background % of a core we wait for before a run...
quiet_wait=${QUIET_WAIT:-20}       # ...for at most this many seconds per run...
quiet_budget=${QUIET_BUDGET:-120}  # ...and this many in the whole run (--quick: 30)
retry_budget=${RETRY_BUDGET:-8}    # disturbed runs repeated, at most, in the whole run (--quick: 3)
if [ "$quick" = 1 ]; then quiet_budget=${QUIET_BUDGET:-30} retry_budget=${RETRY_BUDGET:-3}; fi
settle=2            # seconds before each RSS reading
nginx_keepalive=128 # idle upstream connections nginx keeps (below the client count it churns)

norm_targets=()
for t in $targets; do
  case "$t" in
    candidate) norm_targets+=(ferry);;  # the name the earlier harness used
    nginx|haproxy|ferry|direct|floor) norm_targets+=("$t");;
    *) echo "compare.sh: unknown target '$t' (nginx haproxy ferry direct floor)" >&2; exit 2;;
  esac
done
norm_phases=()
for p in $phases; do
  case "$p" in
    h1close) norm_phases+=(close);;
    h1|close|tls|tlsclose|mem|h2) norm_phases+=("$p");;
    *) echo "compare.sh: unknown phase '$p' (h1 close tls tlsclose mem)" >&2; exit 2;;
  esac
done
has_phase() { [[ " ${norm_phases[*]} " == *" $1 "* ]]; }

outdir=${outdir:-/tmp/ferry-compare-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$outdir/logs" "$outdir/conf" || exit 1
rm -f "$outdir/raw.tsv" "$outdir/mem.tsv" "$outdir/summary.md" "$outdir/summary.json"
logfile=$outdir/run.log
: >"$logfile"
log() { printf '[%s] %s\n' "$(date +%T)" "$*" | tee -a "$logfile" >&2; }
die() { log "ERROR: $*"; exit 1; }

for c in nginx haproxy wrk curl openssl taskset ss timeout "$py"; do
  command -v "$c" >/dev/null || die "'$c' not found: run scripts/install-deps --bench"
done
if [[ " ${norm_targets[*]} " == *" ferry "* || " ${norm_targets[*]} " == *" floor "* ]]; then
  [ -x "$ferry_bin" ] || die "no Ferry binary at $ferry_bin: scripts/build build-rel --buildtype=release, or --ferry BIN"
fi
[ "$unpinned" = 1 ] || { [ "$(nproc)" -gt "$client_cpu" ] && [ "$(nproc)" -gt "$proxy_cpu" ]; } \
  || die "CPU $proxy_cpu or $client_cpu does not exist (PROXY_CPU, CLIENT_CPU)"
ulimit -n "$(ulimit -Hn)" 2>/dev/null
[ "$(ulimit -n)" -gt $((mem_conns + 500)) ] || die "open-file limit $(ulimit -n) is too low for --mem-conns $mem_conns"

declare -A port=([upstream]=$base_port [nginx]=$((base_port + 1)) [haproxy]=$((base_port + 2)) [ferry]=$((base_port + 3))
                 [floor]=$((base_port + 7)))
port[direct]=${port[upstream]}
declare -A tport=([nginx]=$((base_port + 4)) [haproxy]=$((base_port + 5)) [ferry]=$((base_port + 6))
                  [floor]=$((base_port + 8)))  # TLS listeners
for p in "${port[@]}" "${tport[@]}"; do
  [ -z "$(ss -Hltn "sport = :$p")" ] || die "port $p is in use (choose another --base-port)"
done

# ------------------------------------------------------------------ processes we start
declare -A pid=()   # server name -> pid
started=()          # server names, in start order
idle_pid=""         # the idle-connection client of the memory phase, while it runs

descendants() { local c; for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do echo "$c"; descendants "$c"; done; }

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_server() {    # start_server NAME CPU COMMAND...: waits for its port (and its TLS port, if any)
  local name=$1 cpu=$2; shift 2
  taskset -c "$cpu" "$@" >>"$outdir/logs/$name.log" 2>&1 &
  pid[$name]=$!
  [[ " ${started[*]} " == *" $name "* ]] || started+=("$name")
  local i tp=${tport[$name]:-}
  for ((i = 0; i < 100; i++)); do   # 10 s at most
    if listening "${port[$name]}" && { [ -z "$tp" ] || listening "$tp"; }; then
      log "started $name (pid ${pid[$name]}, CPU $cpu, port ${port[$name]}${tp:+, TLS port $tp})"; return 0
    fi
    kill -0 "${pid[$name]}" 2>/dev/null || break
    sleep 0.1
  done
  die "$name did not come up on port ${port[$name]}${tp:+ and TLS port $tp}: see $outdir/logs/$name.log"
}

stop_server() {     # TERM, up to 5 s, then KILL whatever is left of its process tree
  local p=${pid[$1]:-} all i
  [ -n "$p" ] || return 0
  all="$p $(descendants "$p")"
  kill -TERM "$p" 2>/dev/null
  for ((i = 0; i < 50; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  for i in $all; do kill -KILL "$i" 2>/dev/null; done
  wait "$p" 2>/dev/null
  pid[$1]=""
}

stop_idle_client() {
  [ -n "$idle_pid" ] || return 0
  kill -TERM "$idle_pid" 2>/dev/null; wait "$idle_pid" 2>/dev/null; idle_pid=""
}

cleanup() {
  local i
  stop_idle_client
  for ((i = ${#started[@]} - 1; i >= 0; i--)); do stop_server "${started[$i]}"; done
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM HUP

# ------------------------------------------------------------------------------ configs
conf=$outdir/conf
cert=$conf/tls/cert.pem key=$conf/tls/key.pem certkey=$conf/tls/haproxy.pem

make_certificate() {  # one self-signed ECDSA P-256 certificate for all three proxies
  mkdir -p "$conf/tls"
  rm -f "$cert" "$key" "$certkey"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$key" -out "$cert" \
    -days 7 -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    >"$outdir/logs/openssl-req.log" 2>&1 || die "openssl req failed: $(cat "$outdir/logs/openssl-req.log")"
  cat "$cert" "$key" >"$certkey"   # HAProxy wants the key in the crt file
  chmod 600 "$key" "$certkey"
}

nginx_common() {    # nginx_common DIR: what both nginx configs share
  cat <<EOF
worker_processes 1;
daemon off;
pid $1/nginx.pid;
error_log $1/error.log warn;
worker_rlimit_nofile $(ulimit -n);
EOF
}
nginx_http_common() {
  cat <<EOF
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    client_body_temp_path $1/tmp; proxy_temp_path $1/tmp; fastcgi_temp_path $1/tmp;
    uwsgi_temp_path $1/tmp; scgi_temp_path $1/tmp;
EOF
}

nginx_proxy_location() {
  echo "        location / {"
  echo "            proxy_pass http://backend;"
  echo "            proxy_http_version 1.1;"
  echo "            proxy_set_header Connection \"\";"
  echo "        }"
}

write_configs() {
  mkdir -p "$conf/upstream/tmp" "$conf/nginx/tmp" "$conf/haproxy" "$conf/ferry" "$conf/floor"
  {
    nginx_common "$conf/upstream"
    echo "events { worker_connections 4096; }"
    echo "http {"
    nginx_http_common "$conf/upstream"
    echo "    server {"
    echo "        listen 127.0.0.1:${port[upstream]} backlog=4096;"
    echo "        location / { return 200 \"hello world\n\"; }"
    echo "    }"
    echo "}"
  } >"$conf/upstream/nginx.conf"
  {
    nginx_common "$conf/nginx"
    echo "events { worker_connections $((mem_conns + 1000)); }"
    echo "http {"
    nginx_http_common "$conf/nginx"
    echo "    upstream backend {"
    echo "        server 127.0.0.1:${port[upstream]};"
    echo "        keepalive $nginx_keepalive;"
    echo "        keepalive_requests 100000000;"
    echo "        keepalive_timeout 300s;"
    echo "    }"
    echo "    server {"
    echo "        listen 127.0.0.1:${port[nginx]} backlog=4096;"
    nginx_proxy_location
    echo "    }"
    # nginx 1.22 leaves TLSv1.3 out of its default ssl_protocols: name both. Tickets and the
    # session cache off ('off', not 'none': clients are told sessions may not be reused).
    echo "    server {"
    echo "        listen 127.0.0.1:${tport[nginx]} ssl backlog=4096;"
    echo "        ssl_certificate $cert;"
    echo "        ssl_certificate_key $key;"
    echo "        ssl_protocols TLSv1.2 TLSv1.3;"
    echo "        ssl_session_tickets off;"
    echo "        ssl_session_cache off;"
    nginx_proxy_location
    echo "    }"
    echo "}"
  } >"$conf/nginx/nginx.conf"
  # HAProxy wants about two descriptors per connection; 'no strict-limits' lets it start when
  # the hard limit is lower than that (idle clients need only one each). TLS: no tickets on
  # the bind line, and tune.ssl.cachesize 0 (no session cache; its default one keeps every
  # session for resumption by ID).
  cat >"$conf/haproxy/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn $((mem_conns + 1000))
    no strict-limits
    tune.ssl.cachesize 0

defaults
    mode http
    maxconn $((mem_conns + 1000))
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-request 300s
    timeout http-keep-alive 300s

frontend proxy
    bind 127.0.0.1:${port[haproxy]} backlog 4096
    default_backend upstream

frontend proxy_tls
    bind 127.0.0.1:${tport[haproxy]} ssl crt $certkey ssl-min-ver TLSv1.2 no-tls-tickets backlog 4096
    default_backend upstream

backend upstream
    http-reuse always
    server up 127.0.0.1:${port[upstream]}
EOF
  FERRY_WORKERS=$ferry_workers FERRY_ROUTES=$ferry_routes \
    "$here/ferry-config.sh" "127.0.0.1:${port[ferry]}" "127.0.0.1:${port[upstream]}" \
    "127.0.0.1:${tport[ferry]}" "$cert" "$key" >"$conf/ferry/ferry.yaml"
  FERRY_FLOOR=1 FERRY_WORKERS=$ferry_workers \
    "$here/ferry-config.sh" "127.0.0.1:${port[floor]}" "127.0.0.1:${port[upstream]}" \
    "127.0.0.1:${tport[floor]}" "$cert" "$key" >"$conf/floor/floor.yaml"
}

start_target() {    # (re)start one server by name
  case "$1" in
    upstream) start_server upstream "$client_cpu" nginx -p "$conf/upstream" -c "$conf/upstream/nginx.conf";;
    nginx)    start_server nginx "$proxy_cpu" nginx -p "$conf/nginx" -c "$conf/nginx/nginx.conf";;
    haproxy)  start_server haproxy "$proxy_cpu" haproxy -db -f "$conf/haproxy/haproxy.cfg";;
    ferry)    start_server ferry "$proxy_cpu" "$ferry_bin" -c "$conf/ferry/ferry.yaml";;
    floor)    start_server floor "$proxy_cpu" "$ferry_bin" -c "$conf/floor/floor.yaml";;
  esac
}
proxy_pid() { if [ "$1" = direct ]; then echo "${pid[upstream]}"; else echo "${pid[$1]}"; fi; }
our_pids() { local n out=""; for n in "${started[@]}"; do [ -n "${pid[$n]}" ] && out+="${pid[$n]},"; done; echo "${out%,}"; }
url() { echo "http://127.0.0.1:${port[$1]}/"; }
tls_url() { echo "https://127.0.0.1:${tport[$1]}/"; }
is_tls_phase() { [ "$1" = tls ] || [ "$1" = tlsclose ]; }
phase_url() { if is_tls_phase "$1"; then tls_url "$2"; else url "$2"; fi; }   # phase_url PHASE TARGET

write_env() {
  {
    printf 'date\t%s\n' "$(date -Is)"
    printf 'host\t%s, %s CPUs: %s%s\n' "$(uname -sr)" "$(nproc)" \
      "$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)" \
      "$(lscpu 2>/dev/null | awk -F': +' '/Hypervisor vendor/ {print " (" $2 " guest)"}')"
    printf 'ferry\t%s (%s; repository at commit %s%s), FERRY_WORKERS=%s FERRY_ROUTES=%s\n' \
      "$("$ferry_bin" --version 2>/dev/null | head -1)" "$ferry_bin" \
      "$(git -C "$root" rev-parse --short HEAD 2>/dev/null)" \
      "$(git -C "$root" diff --quiet HEAD 2>/dev/null || echo ', uncommitted changes')" "$ferry_workers" "$ferry_routes"
    printf 'nginx\t%s (upstream keepalive %s)\n' "$(nginx -v 2>&1 | sed 's/^nginx version: //')" "$nginx_keepalive"
    printf 'haproxy\t%s\n' "$(haproxy -v 2>&1 | head -1)"
    printf 'wrk\t%s\n' "$(wrk -v 2>&1 | head -1)"
    printf 'openssl\t%s (the openssl command: certificate and the TLS check; wrk and the proxies use the libssl they are linked with)\n' "$(openssl version)"
    printf 'cert\tECDSA P-256, self-signed, CN=localhost (%s)\n' "$cert"
    for t in "${norm_targets[@]}"; do
      [ -n "${tls_info[$t]:-}" ] && printf 'tls_%s\t%s\n' "$t" "${tls_info[$t]}"
    done
    printf 'params\trounds=%s duration=%ss warmup=%ss conns=[%s] close_conns=[%s] mem_conns=%s phases=[%s] targets=[%s] proxy_cpu=%s client_cpu=%s noisy_max=%s%%\n' \
      "$rounds" "$duration" "$warmup" "$conns" "$close_conns" "$mem_conns" "${norm_phases[*]}" "${norm_targets[*]}" \
      "$proxy_cpu" "$client_cpu" "$noisy_max"
  } >"$outdir/env.txt"
}

# --------------------------------------------------------------------------- TLS check
# check_tls TARGET: the TLS listener answers 'hello world' (curl -sk --http1.1); then
# openssl s_client makes a connection saving its session (-sess_out) and a second one
# offering it (-sess_in). The second must be a full handshake ('New'): a proxy that resumed
# would do less work per new connection and the tlsclose comparison would not be fair.
# Records protocol, cipher, key exchange and the NewSessionTicket messages received.
declare -A tls_info=()
check_tls() {
  local t=$1 d=$outdir/logs/tls_check_$1 body first second proto cipher temp n1
  body=$(curl -sk --http1.1 --max-time 5 "$(tls_url "$t")")
  [ "$body" = "hello world" ] || die "$t does not answer 'hello world' on $(tls_url "$t") (got '$body')"
  mkdir -p "$d"; rm -f "$d/session.pem"
  printf 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' \
    | timeout 10 openssl s_client -connect "127.0.0.1:${tport[$t]}" -servername localhost -msg \
        -sess_out "$d/session.pem" -ign_eof >"$d/first.txt" 2>&1
  grep -q '^hello world' "$d/first.txt" || die "$t: no 'hello world' from openssl s_client on $(tls_url "$t") (see $d/first.txt)"
  first=$(grep -Eom1 '^(New|Reused), TLSv[0-9.]+, Cipher is [A-Z0-9_-]+' "$d/first.txt")
  proto=$(awk '{print $2}' <<<"$first" | tr -d ,)
  cipher=$(awk '{print $5}' <<<"$first")
  temp=$(grep -m1 'Server Temp Key:' "$d/first.txt" | sed 's/.*Server Temp Key: //; s/, /:/; s/ bits//')
  n1=$(grep -c '^<<< .*NewSessionTicket' "$d/first.txt")
  if [ -s "$d/session.pem" ]; then
    printf 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' \
      | timeout 10 openssl s_client -connect "127.0.0.1:${tport[$t]}" -servername localhost -msg \
          -sess_in "$d/session.pem" -ign_eof >"$d/second.txt" 2>&1
    second=$(grep -Eom1 '^(New|Reused),' "$d/second.txt" | tr -d ,)
    grep -q '^hello world' "$d/second.txt" || die "$t: no 'hello world' on the second s_client connection (see $d/second.txt)"
  else
    second="New (no session saved)"
  fi
  [ "$second" = Reused ] && die "$t RESUMED a TLS session although tickets and the session cache are off: full handshakes would not be compared (see $d/second.txt)"
  [ -n "$second" ] || die "$t: the second s_client connection made no handshake (see $d/second.txt)"
  tls_info[$t]="${proto:-?} ${cipher:-?} (${temp:-?}); NewSessionTicket messages on a new connection: $n1; a second connection offering the first one's session: $second"
  log "  $t TLS: ${tls_info[$t]}"
}

# ------------------------------------------------------------------------- load runs
t_start=$(date +%s)
deadline=$((t_start + max_minutes * 60))
quiet_left=$quiet_budget
retries_left=$retry_budget
cut_short=0

wait_for_quiet() {  # bounded: quiet_wait per run, quiet_budget in all
  local waited=0 bg
  while [ "$quiet_left" -gt 0 ]; do
    bg=$("$py" "$helper" quiet --ours "$(our_pids)")
    awk -v b="$bg" -v m="$quiet_max" 'BEGIN { exit !(b > m) }' || return 0
    if [ "$waited" -ge "$quiet_wait" ]; then log "    background load still ${bg}% of a core: running anyway"; return 0; fi
    [ "$waited" -eq 0 ] && log "    background load ${bg}% of a core: waiting (up to ${quiet_wait}s)"
    sleep 1.5; waited=$((waited + 2)); quiet_left=$((quiet_left - 2))
  done
}

time_left() {
  [ "$(date +%s)" -lt "$deadline" ] && return 0
  [ "$cut_short" = 1 ] || log "--max-minutes $max_minutes reached: no new runs"
  cut_short=1; return 1
}

wrk_cmd() {         # wrk_cmd SECONDS CONNS URL: sets wrk=(the pinned load generator's command)
  wrk=(taskset -c "$client_cpu" wrk -t1 -c"$2" -d"$1s" --latency "$3")
}

measure() {         # measure PHASE TARGET CONNS ROUND [wrk options]: one run, repeated once if disturbed
  local phase=$1 target=$2 c=$3 r=$4; shift 4
  local attempt=0 bg wrk
  wrk_cmd "$duration" "$c" "$(phase_url "$phase" "$target")"
  while time_left; do
    wait_for_quiet
    bg=$("$py" "$helper" measure --raw "$outdir/raw.tsv" \
          --log "$outdir/logs/${phase}_${target}_c${c}_r${r}_a${attempt}.txt" --timeout $((duration + 30)) \
          --proxy "$(proxy_pid "$target")" --upstream "${pid[upstream]}" --ours "$(our_pids)" \
          --proxy-cpu "$proxy_cpu" --client-cpu "$client_cpu" --row "$phase,$target,$c,$r,$attempt" \
          --runlog "$logfile" -- "${wrk[@]}" "$@")
    if awk -v b="${bg:-0}" -v m="$noisy_max" 'BEGIN { exit !(b > m) }' && [ "$attempt" = 0 ] && [ "$retries_left" -gt 0 ]; then
      retries_left=$((retries_left - 1)); attempt=1
      log "    disturbed (background ${bg}% of a core): repeating this run ($retries_left repeats left)"
      continue
    fi
    return 0
  done
}

rotate() {          # rotate N ITEMS...: the items, starting at the Nth (1-based, wrapping)
  local n=$1; shift
  local items=("$@") i
  for ((i = 0; i < ${#items[@]}; i++)); do echo "${items[$(((i + n - 1) % ${#items[@]}))]}"; done
}

load_phase() {      # load_phase PHASE "CONNS..." [wrk options]: rounds x conns x targets, interleaved
  local phase=$1 list=$2; shift 2
  local r c t max=0 wrk targets=()
  for t in "${norm_targets[@]}"; do   # the upstream has no TLS listener: no 'direct' in TLS phases
    is_tls_phase "$phase" && [ "$t" = direct ] && continue
    targets+=("$t")
  done
  [ ${#targets[@]} -gt 0 ] || { log "phase $phase: no target (direct has no TLS listener)"; return 0; }
  for c in $list; do [ "$c" -gt "$max" ] && max=$c; done
  log "phase $phase: ${targets[*]}, conns [$list], $rounds round(s) of ${duration}s"
  for t in "${targets[@]}"; do   # unrecorded warm-up: pools filled, caches hot
    [ "$warmup" -gt 0 ] || break
    wrk_cmd "$warmup" "$max" "$(phase_url "$phase" "$t")"
    timeout -k 2 $((warmup + 15)) "${wrk[@]}" "$@" >/dev/null 2>&1
  done
  for ((r = 1; r <= rounds; r++)); do
    for c in $list; do
      for t in $(rotate "$r" "${targets[@]}"); do measure "$phase" "$t" "$c" "$r" "$@"; done
    done
  done
}

rss() { "$py" "$helper" rss "${pid[$1]}"; }

memory_run() {      # memory_run TARGET MODE: fresh proxy, MEM idle connections, RSS before/holding/after
  local t=$1 mode=$2 ready=$outdir/logs/idle_${1}_${2}.ready before holding after held failed secs i p
  time_left || return 0
  # a fresh process: memory freed by the load phases but kept by the allocator would hide growth
  stop_server "$t"; start_target "$t"
  # upstream connection pooled (and, for tls, the TLS listener used once) before "before"
  if [ "$mode" = tls ]; then
    p=${tport[$t]}; curl -sk --http1.1 --max-time 5 -o /dev/null "$(tls_url "$t")"
  else
    p=${port[$t]}; curl -s --max-time 5 -o /dev/null "$(url "$t")"
  fi
  sleep "$settle"; before=$(rss "$t")
  rm -f "$ready"
  taskset -c "$client_cpu" "$py" "$helper" idle 127.0.0.1 "$p" "$mem_conns" "$mode" "$ready" 300 \
    >"$outdir/logs/idle_${t}_${mode}.log" 2>&1 &
  idle_pid=$!
  for ((i = 0; i < 1500; i++)); do   # 150 s at most (the client itself gives up after 120 s)
    [ -e "$ready" ] && break
    kill -0 "$idle_pid" 2>/dev/null || break
    sleep 0.1
  done
  if [ ! -e "$ready" ]; then
    log "    mem $t $mode: the idle client failed (see $outdir/logs/idle_${t}_${mode}.log)"
    stop_idle_client; return 0
  fi
  read -r held failed secs <"$ready"
  sleep "$settle"; holding=$(rss "$t")
  stop_idle_client
  sleep "$settle"; after=$(rss "$t")
  [ -e "$outdir/mem.tsv" ] || printf 'target\tmode\twanted\theld\tfailed\tsetup_s\trss_before_kb\trss_holding_kb\trss_after_kb\tkb_per_conn\n' >"$outdir/mem.tsv"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$mode" "$mem_conns" "$held" "$failed" "$secs" \
    "$before" "$holding" "$after" "$(awk -v a="$before" -v b="$holding" -v n="$held" 'BEGIN { printf "%.2f", n ? (b - a) / n : 0 }')" \
    >>"$outdir/mem.tsv"
  log "    mem $t $mode: $held held ($failed failed, ${secs}s), RSS $before -> $holding kB, $after kB after close: $(tail -1 "$outdir/mem.tsv" | cut -f10) kB/conn"
}

memory_phase() {
  local t mode
  log "phase mem: $mem_conns idle connections per proxy; 'connect' = TCP only, 'req' = after one request, 'tls' = after a TLS handshake and one request"
  for t in "${norm_targets[@]}"; do
    [ "$t" = direct ] || [ "$t" = floor ] && continue
    for mode in connect req tls; do memory_run "$t" "$mode"; done
  done
}

# -------------------------------------------------------------------- HTTP/2 (reserved)
# Not measured yet: Ferry has no HTTP/2 (its config refuses ALPN `h2` on a listener and
# `protocol: http2` on a cluster). When it has it, add the phase here, run between
# `tlsclose` and `mem` with the same measure/rotate machinery:
#   h2   HTTP/2 over TLS (ALPN h2, on the TLS listeners) and h2c prior knowledge:
#        h2load -t1 -n N -c 10 -m 10, bounded with timeout; h2load has no percentiles, so
#        report its mean latency.
# bench.py's measure runs any command; its parser reads wrk's output, so h2load needs a
# parser next to parse_wrk.
reserved_phase() { log "phase $1: not measured yet (Ferry has no HTTP/2; see the reserved section in compare.sh)"; }

# ------------------------------------------------------------------------------ main
make_certificate
write_configs
if [[ " ${norm_targets[*]} " == *" ferry "* ]]; then
  "$ferry_bin" -c "$conf/ferry/ferry.yaml" --validate >"$outdir/logs/ferry-validate.log" 2>&1 \
    || die "Ferry refuses its config: $(cat "$outdir/logs/ferry-validate.log")"
fi
if [[ " ${norm_targets[*]} " == *" floor "* ]]; then
  "$ferry_bin" -c "$conf/floor/floor.yaml" --validate >"$outdir/logs/floor-validate.log" 2>&1 \
    || die "Ferry refuses the floor config: $(cat "$outdir/logs/floor-validate.log")"
fi
if [[ " ${norm_targets[*]} " == *" haproxy "* ]]; then
  haproxy -c -q -f "$conf/haproxy/haproxy.cfg" >"$outdir/logs/haproxy-check.log" 2>&1 \
    || die "HAProxy refuses its config: $(cat "$outdir/logs/haproxy-check.log")"
fi
start_target upstream
for t in "${norm_targets[@]}"; do [ "$t" = direct ] || start_target "$t"; done
for t in "${norm_targets[@]}"; do
  body=$(curl -s --max-time 5 "$(url "$t")")
  [ "$body" = "hello world" ] || die "$t does not answer 'hello world' on $(url "$t") (got '$body')"
done
if has_phase tls || has_phase tlsclose || has_phase mem; then
  log "TLS check (curl -sk --http1.1; openssl s_client -sess_out, then -sess_in: no resumption expected):"
  for t in "${norm_targets[@]}"; do [ "$t" = direct ] || check_tls "$t"; done
fi
write_env
log "results in $outdir"

has_phase h1 && load_phase h1 "$conns"
has_phase close && load_phase close "$close_conns" -H "Connection: close"
has_phase tls && load_phase tls "$conns"
has_phase tlsclose && load_phase tlsclose "$close_conns" -H "Connection: close"
has_phase h2 && reserved_phase h2
has_phase mem && memory_phase

cleanup
[ "$cut_short" = 1 ] && printf 'note\tcut short by --max-minutes %s\n' "$max_minutes" >>"$outdir/env.txt"
log "done in $(( $(date +%s) - t_start ))s ($((quiet_budget - quiet_left))s waiting for quiet, $((retry_budget - retries_left)) runs repeated)"
echo
echo "## Ferry against the better peer ($(date -u +%F), $(nproc) CPUs, $rounds round(s) of ${duration}s; details: $outdir/summary.md)"
echo
"$py" "$helper" report "$outdir" "$noisy_max"
