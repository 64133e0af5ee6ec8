#!/usr/bin/env bash
# TLS handshakes on Ferry, nginx and HAProxy: resumed (session tickets) and full, in one
# interleaved run on this machine, one table.
#
#   openssl s_time (CLIENT_CPU) ──TLS──► proxy (nginx | HAProxy | Ferry, one worker, PROXY_CPU)
#
# Each proxy has one TLS listener on 127.0.0.1 with the same ECDSA P-256 certificate
# (generated here, in a temporary directory) and answers GET / itself with "hello world\n":
# nginx `return 200`, HAProxy `http-request return`, Ferry a direct_response route. Session
# tickets are on everywhere and server-side session caches are off where the proxy has a
# switch for it (nginx `ssl_session_cache off`, HAProxy `tune.ssl.cachesize 0`; Ferry's
# defaults, whose cache keeps nothing for TLS 1.3 sessions when tickets are on), so a
# resumption is a ticket resumption.
#
# Load: `openssl s_time -reuse` (one session resumed over and over, one connection at a time)
# and `openssl s_time -new` (a full handshake each time), both with `-www /`: each connection
# sends `GET / HTTP/1.0`, reads the answer up to the close, and so also reads the TLS 1.3
# NewSessionTicket messages (without -www, s_time never reads them and no TLS 1.3 session
# is ever resumed). Before any load, every target is checked with `openssl s_client
# -sess_out` then `-sess_in`: the second connection must say "Reused" and the session must
# carry a ticket, or the script stops. Per run: handshakes/s (wall time), the share of
# resumed handshakes (s_time's 'r' marks) and the proxy's CPU time per handshake
# (utime+stime of its process tree from /proc/PID/stat). Runs rotate over the targets, round
# after round; CPU time of processes outside the benchmark ("background") is recorded and a
# disturbed run is repeated once. benchmarks/README.md explains the columns.
#
# Needs: nginx haproxy openssl taskset ss python3 (scripts/install-deps --bench) and a
# release build of Ferry. 127.0.0.1 only; every load run is bounded in time. Everything it
# starts is stopped on exit, Ctrl-C included. `tls_resume.sh --help` for the options.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
py=${PYTHON:-python3}
helper=$here/tls_resume.py
peer_helper=$here/peer/bench.py

usage() {
  cat <<EOF
Usage: benchmarks/tls_resume.sh [options]
  --rounds N        interleaved rounds per workload                 (default 3)
  --time S          seconds of load per run (s_time -time)          (default 5)
  --warmup S        unrecorded load per target and workload         (default 1; 0: none)
  --tls "..."       TLS versions, any of 1.3 1.2                     (default "1.3 1.2")
  --modes "..."     reuse (resumed handshakes), new (full ones)      (default "reuse new")
  --targets "..."   any of nginx haproxy ferry                      (default "nginx haproxy ferry")
  --outdir DIR      results: raw.tsv, check.tsv, env.txt, summary.md, summary.json, logs/, conf/
                    (default /tmp/ferry-tls-resume-<date>-<time>)
  --ferry BIN       Ferry binary (default \$FERRY_BIN or build-rel/proxy/ferry)
  --base-port P     nginx on P, HAProxy P+1, Ferry P+2              (default 28443)
  --noisy-max PCT   background load (% of one core) above which a run counts as disturbed:
                    repeated once, and left out of the medians       (default 15)
  --max-minutes M   no new run starts after M minutes               (default 30)
Environment: FERRY_BIN, PROXY_CPU (0), CLIENT_CPU (1), PYTHON; the noise guards QUIET_MAX
(10: background % of a core waited for before a run), QUIET_WAIT (15 s per run),
QUIET_BUDGET (90 s in all), RETRY_BUDGET (8 repeated runs in all).
EOF
}

# ------------------------------------------------------------------------------ options
rounds=3 duration=5 warmup=1 tls_list="1.3 1.2" modes="reuse new" targets="nginx haproxy ferry"
outdir="" base_port=28443 noisy_max=15 max_minutes=30
ferry_bin=${FERRY_BIN:-$root/build-rel/proxy/ferry}
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2;;
    --time) duration=$2; shift 2;;
    --warmup) warmup=$2; shift 2;;
    --tls) tls_list=$2; shift 2;;
    --modes) modes=$2; shift 2;;
    --targets) targets=$2; shift 2;;
    --outdir) outdir=$2; shift 2;;
    --ferry) ferry_bin=$2; shift 2;;
    --base-port) base_port=$2; shift 2;;
    --noisy-max) noisy_max=$2; shift 2;;
    --max-minutes) max_minutes=$2; shift 2;;
    -h|--help) usage; exit 0;;
    *) echo "tls_resume.sh: unknown option '$1'" >&2; usage >&2; exit 2;;
  esac
done
for t in $targets; do
  case "$t" in nginx|haproxy|ferry) ;; *) echo "tls_resume.sh: unknown target '$t'" >&2; exit 2;; esac
done
for v in $tls_list; do
  case "$v" in 1.2|1.3) ;; *) echo "tls_resume.sh: unknown TLS version '$v' (1.3 1.2)" >&2; exit 2;; esac
done
for m in $modes; do
  case "$m" in reuse|new) ;; *) echo "tls_resume.sh: unknown mode '$m' (reuse new)" >&2; exit 2;; esac
done
read -ra norm_targets <<<"$targets"
proxy_cpu=${PROXY_CPU:-0}
client_cpu=${CLIENT_CPU:-1}
quiet_max=${QUIET_MAX:-10}         # background % of a core we wait for before a run...
quiet_wait=${QUIET_WAIT:-15}       # ...for at most this many seconds per run...
quiet_budget=${QUIET_BUDGET:-90}   # ...and this many in the whole run
retry_budget=${RETRY_BUDGET:-8}    # disturbed runs repeated, at most, in the whole run

outdir=${outdir:-/tmp/ferry-tls-resume-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$outdir/logs" "$outdir/conf" || exit 1
rm -f "$outdir/raw.tsv" "$outdir/check.tsv" "$outdir/summary.md" "$outdir/summary.json"
logfile=$outdir/run.log
: >"$logfile"
log() { printf '[%s] %s\n' "$(date +%T)" "$*" | tee -a "$logfile" >&2; }
die() { log "ERROR: $*"; exit 1; }

for c in nginx haproxy openssl taskset ss timeout "$py"; do
  command -v "$c" >/dev/null || die "'$c' not found: run scripts/install-deps --bench"
done
if [[ " ${norm_targets[*]} " == *" ferry "* ]]; then
  [ -x "$ferry_bin" ] || die "no Ferry binary at $ferry_bin: scripts/build build-rel --buildtype=release, or --ferry BIN"
fi
[ "$(nproc)" -gt "$client_cpu" ] && [ "$(nproc)" -gt "$proxy_cpu" ] \
  || die "CPU $proxy_cpu or $client_cpu does not exist (PROXY_CPU, CLIENT_CPU)"

declare -A port=([nginx]=$base_port [haproxy]=$((base_port + 1)) [ferry]=$((base_port + 2)))
for p in "${port[@]}"; do
  [ -z "$(ss -Hltn "sport = :$p")" ] || die "port $p is in use (choose another --base-port)"
done

# ------------------------------------------------------------------ processes we start
declare -A pid=()   # server name -> pid
started=()
certdir=""

descendants() { local c; for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do echo "$c"; descendants "$c"; done; }

start_server() {    # start_server NAME COMMAND...: on PROXY_CPU, up when its port accepts
  local name=$1; shift
  taskset -c "$proxy_cpu" "$@" >>"$outdir/logs/$name.log" 2>&1 &
  pid[$name]=$!
  started+=("$name")
  local i
  for ((i = 0; i < 100; i++)); do   # 10 s at most
    (exec 3<>"/dev/tcp/127.0.0.1/${port[$name]}") 2>/dev/null && { log "started $name (pid ${pid[$name]}, CPU $proxy_cpu, port ${port[$name]})"; return 0; }
    kill -0 "${pid[$name]}" 2>/dev/null || break
    sleep 0.1
  done
  die "$name did not come up on port ${port[$name]}: see $outdir/logs/$name.log"
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

cleanup() {
  local i
  for ((i = ${#started[@]} - 1; i >= 0; i--)); do stop_server "${started[$i]}"; done
  [ -n "$certdir" ] && rm -rf "$certdir"
  certdir=""
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM HUP

# ------------------------------------------------------------------- certificate, configs
certdir=$(mktemp -d /tmp/ferry-tls-resume-cert.XXXXXX) || die "mktemp failed"
cert=$certdir/cert.pem key=$certdir/key.pem
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$key" -out "$cert" \
  -days 7 -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  >"$outdir/logs/openssl-req.log" 2>&1 || die "openssl req failed: $(cat "$outdir/logs/openssl-req.log")"
cat "$cert" "$key" >"$certdir/haproxy.pem"   # HAProxy wants the key in the crt file
chmod 600 "$key" "$certdir/haproxy.pem"
conf=$outdir/conf

write_configs() {
  mkdir -p "$conf/nginx/tmp" "$conf/haproxy" "$conf/ferry"
  # nginx 1.22 leaves TLSv1.3 out of its default ssl_protocols: name both. ssl_session_cache
  # off: no server-side cache, so sessions resume from tickets alone.
  cat >"$conf/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $conf/nginx/nginx.pid;
error_log $conf/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $conf/nginx/tmp; proxy_temp_path $conf/nginx/tmp; fastcgi_temp_path $conf/nginx/tmp;
    uwsgi_temp_path $conf/nginx/tmp; scgi_temp_path $conf/nginx/tmp;
    server {
        listen 127.0.0.1:${port[nginx]} ssl backlog=4096;
        ssl_certificate $cert;
        ssl_certificate_key $key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_tickets on;
        ssl_session_cache off;
        location / { return 200 "hello world\n"; }
    }
}
EOF
  # tune.ssl.cachesize 0: no session cache (HAProxy's default one would store every session).
  cat >"$conf/haproxy/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4096
    tune.ssl.cachesize 0

defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout http-request 30s

frontend tls
    bind 127.0.0.1:${port[haproxy]} ssl crt $certdir/haproxy.pem backlog 4096
    http-request return status 200 content-type text/plain string "hello world\n"
EOF
  cat >"$conf/ferry/ferry.yaml" <<EOF
runtime: {workers: 1, log_level: warn}
listeners:
  - name: tls
    address: 127.0.0.1:${port[ferry]}
    tls:
      certificates: [{cert_file: $cert, key_file: $key}]
    http:
      virtual_hosts:
        - name: all
          domains: ["*"]
          routes:
            - match: {prefix: /}
              direct_response: {status: 200, body: "hello world\n"}
EOF
}

start_target() {
  case "$1" in
    nginx)   start_server nginx nginx -p "$conf/nginx" -c "$conf/nginx/nginx.conf";;
    haproxy) start_server haproxy haproxy -db -f "$conf/haproxy/haproxy.cfg";;
    ferry)   start_server ferry "$ferry_bin" -c "$conf/ferry/ferry.yaml";;
  esac
}
our_pids() { local n out=""; for n in "${started[@]}"; do [ -n "${pid[$n]}" ] && out+="${pid[$n]},"; done; echo "${out%,}"; }
tls_flag() { if [ "$1" = 1.3 ]; then echo -tls1_3; else echo -tls1_2; fi; }

write_env() {
  {
    printf 'date\t%s\n' "$(date -Is)"
    printf 'host\t%s, %s CPUs: %s%s\n' "$(uname -sr)" "$(nproc)" \
      "$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)" \
      "$(lscpu 2>/dev/null | awk -F': +' '/Hypervisor vendor/ {print " (" $2 " guest)"}')"
    printf 'ferry\t%s (%s; repository at commit %s%s)\n' \
      "$("$ferry_bin" --version 2>/dev/null | head -1)" "$ferry_bin" \
      "$(git -C "$root" rev-parse --short HEAD 2>/dev/null)" \
      "$(git -C "$root" diff --quiet HEAD 2>/dev/null || echo ', uncommitted changes')"
    printf 'nginx\t%s\n' "$(nginx -v 2>&1 | sed 's/^nginx version: //')"
    printf 'haproxy\t%s\n' "$(haproxy -v 2>&1 | head -1)"
    printf 'openssl\t%s (the client: s_time, s_client)\n' "$(openssl version)"
    printf 'cert\tECDSA P-256, self-signed, CN=localhost\n'
    printf 'params\trounds=%s time=%ss warmup=%ss tls=[%s] modes=[%s] targets=[%s] proxy_cpu=%s client_cpu=%s noisy_max=%s%%\n' \
      "$rounds" "$duration" "$warmup" "$tls_list" "$modes" "${norm_targets[*]}" "$proxy_cpu" "$client_cpu" "$noisy_max"
  } >"$outdir/env.txt"
}

# --------------------------------------------------------------- the resumption check
# check_resume TARGET TLS: a full handshake saving its session (-sess_out), then a second
# connection offering it (-sess_in). Stops the script unless the second one was resumed and
# the session carried a ticket. Records protocol, cipher, key exchange and how many
# NewSessionTicket messages each connection received in check.tsv.
check_resume() {
  local t=$1 v=$2 flag d=$outdir/logs/check_${1}_tls$2 first second proto cipher temp lifetime n1 n2
  flag=$(tls_flag "$v")
  mkdir -p "$d"; rm -f "$d/session.pem"
  printf 'GET / HTTP/1.0\r\n\r\n' | timeout 10 openssl s_client -connect "127.0.0.1:${port[$t]}" "$flag" -msg \
    -sess_out "$d/session.pem" -ign_eof >"$d/first.txt" 2>&1
  grep -q '^hello world$' "$d/first.txt" || die "$t (TLS $v): no 'hello world' answer on a new connection (see $d/first.txt)"
  [ -s "$d/session.pem" ] || die "$t (TLS $v): s_client saved no session (see $d/first.txt)"
  openssl sess_id -in "$d/session.pem" -noout -text >"$d/session.txt" 2>&1
  grep -q 'TLS session ticket:' "$d/session.txt" \
    || die "$t (TLS $v): the server sent no session ticket (tickets off?): see $d/session.txt"
  printf 'GET / HTTP/1.0\r\n\r\n' | timeout 10 openssl s_client -connect "127.0.0.1:${port[$t]}" "$flag" -msg \
    -sess_in "$d/session.pem" -ign_eof >"$d/second.txt" 2>&1
  grep -q '^hello world$' "$d/second.txt" || die "$t (TLS $v): no 'hello world' answer on the resumed connection (see $d/second.txt)"
  first=$(grep -Eom1 '^(New|Reused), TLSv[0-9.]+, Cipher is [A-Z0-9_-]+' "$d/first.txt")
  second=$(grep -Eom1 '^(New|Reused),' "$d/second.txt" | tr -d ,)
  proto=$(awk '{print $2}' <<<"$first" | tr -d ,)
  cipher=$(awk '{print $5}' <<<"$first")
  temp=$(grep -m1 'Server Temp Key:' "$d/first.txt" | sed 's/.*Server Temp Key: //; s/, /:/; s/ bits//')
  lifetime=$(grep -m1 -Eo 'lifetime hint: [0-9]+' "$d/session.txt" | awk '{print $3}')
  n1=$(grep -c '^<<< .*NewSessionTicket' "$d/first.txt")
  n2=$(grep -c '^<<< .*NewSessionTicket' "$d/second.txt")
  [ -e "$outdir/check.tsv" ] || printf 'tls\ttarget\tprotocol\tcipher\ttemp_key\tsecond\ttickets_full\ttickets_resumed\tlifetime\n' >"$outdir/check.tsv"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$v" "$t" "$proto" "$cipher" "${temp:--}" "${second:-failed}" \
    "$n1" "$n2" "${lifetime:--}" >>"$outdir/check.tsv"
  [ "$proto" = "TLSv$v" ] || die "$t: asked for TLS $v, negotiated '$proto' (see $d/first.txt)"
  [ "$second" = Reused ] || die "$t (TLS $v) does NOT resume: the second connection offered the first one's ticket and got a full handshake ('${second:-no handshake}'); see $d/second.txt"
  log "  $t TLS $v: $proto $cipher ($temp), resumed with the ticket; NewSessionTicket messages: $n1 on the full handshake, $n2 on the resumed one; lifetime hint ${lifetime:-?} s"
  [ "$v" = 1.3 ] && [ "$n2" = 0 ] && log "  NOTE: $t issued no new ticket on a resumed TLS 1.3 handshake: a client that uses each ticket once (RFC 8446 C.4; browsers) gets a full handshake every other connection; s_time -reuse offers the same ticket again and is not affected"
  return 0
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
    bg=$("$py" "$peer_helper" quiet --ours "$(our_pids)")
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

s_time_cmd() {      # s_time_cmd TARGET TLS MODE SECONDS: sets st=(the pinned client's command)
  st=(taskset -c "$client_cpu" openssl s_time -connect "127.0.0.1:${port[$1]}" "$(tls_flag "$2")" "-$3" -time "$4" -www /)
}

measure() {         # measure TLS MODE TARGET ROUND: one run, repeated once if disturbed
  local v=$1 m=$2 t=$3 r=$4 attempt=0 bg st
  s_time_cmd "$t" "$v" "$m" "$duration"
  while time_left; do
    wait_for_quiet
    bg=$("$py" "$helper" measure --raw "$outdir/raw.tsv" \
          --log "$outdir/logs/tls${v}_${m}_${t}_r${r}_a${attempt}.txt" --timeout $((duration + 30)) \
          --proxy "${pid[$t]}" --ours "$(our_pids)" --proxy-cpu "$proxy_cpu" --client-cpu "$client_cpu" \
          --row "$v,$m,$t,$r,$attempt" --runlog "$logfile" -- "${st[@]}")
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

workload() {        # workload TLS MODE: warm-up, then rounds x targets, interleaved
  local v=$1 m=$2 r t st
  log "TLS $v, $([ "$m" = reuse ] && echo "resumed handshakes (s_time -reuse)" || echo "full handshakes (s_time -new)"): ${norm_targets[*]}, $rounds round(s) of ${duration}s"
  if [ "$warmup" -gt 0 ]; then
    for t in "${norm_targets[@]}"; do
      s_time_cmd "$t" "$v" "$m" "$warmup"
      timeout -k 2 $((warmup + 15)) "${st[@]}" >/dev/null 2>&1
    done
  fi
  for ((r = 1; r <= rounds; r++)); do
    for t in $(rotate "$r" "${norm_targets[@]}"); do measure "$v" "$m" "$t" "$r"; done
  done
}

# ------------------------------------------------------------------------------ main
write_configs
if [[ " ${norm_targets[*]} " == *" ferry "* ]]; then
  "$ferry_bin" -c "$conf/ferry/ferry.yaml" --validate >"$outdir/logs/ferry-validate.log" 2>&1 \
    || die "Ferry refuses its config: $(cat "$outdir/logs/ferry-validate.log")"
fi
if [[ " ${norm_targets[*]} " == *" haproxy "* ]]; then
  haproxy -c -q -f "$conf/haproxy/haproxy.cfg" >"$outdir/logs/haproxy-check.log" 2>&1 \
    || die "HAProxy refuses its config: $(cat "$outdir/logs/haproxy-check.log")"
fi
for t in "${norm_targets[@]}"; do start_target "$t"; done
write_env
log "results in $outdir"
log "resumption check (openssl s_client -sess_out, then -sess_in):"
for v in $tls_list; do
  for t in "${norm_targets[@]}"; do check_resume "$t" "$v"; done
done

for v in $tls_list; do
  for m in $modes; do workload "$v" "$m"; done
done
# a resumed run with full handshakes in it is a failed check too: say so loudly
if [ -e "$outdir/raw.tsv" ]; then
  awk -F'\t' 'NR > 1 && $2 == "reuse" && $7 > 0 && $8 < $7 {
      printf "WARNING: TLS %s %s round %s: %d of %d handshakes were not resumed\n", $1, $3, $4, $7 - $8, $7 }' \
    "$outdir/raw.tsv" | tee -a "$logfile" >&2
fi

cleanup
[ "$cut_short" = 1 ] && printf 'note\tcut short by --max-minutes %s\n' "$max_minutes" >>"$outdir/env.txt"
log "done in $(( $(date +%s) - t_start ))s ($((quiet_budget - quiet_left))s waiting for quiet, $((retry_budget - retries_left)) runs repeated)"
echo
echo "## TLS handshakes: proxy CPU per handshake and handshakes/s ($(date -u +%F), $(nproc) CPUs, $rounds round(s) of ${duration}s; details: $outdir/summary.md)"
echo
"$py" "$helper" report "$outdir" "$noisy_max" | tee "$outdir/table.md"
