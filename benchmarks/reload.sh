#!/usr/bin/env bash
# Config hot reload (SIGHUP) on Ferry: how long until the new config serves, what a reload
# costs the main thread and the workers under load, and whether memory grows with reloads.
#
#   reload.py (CLIENT_CPU) ──GET / keep-alive──► Ferry (PROXY_CPU) ◄──SIGHUP── reload.py
#   wrk -t1 (CLIENT_CPU) ───────────────────────►
#
# Ferry runs a config with one HTTP listener whose routes are N direct_response prefix routes
# (/r0 ... /rN-1) and a catch-all `/` whose body is a version marker (reload.py writes it;
# log_level info, for the line "config reloaded (SIGHUP): version V in X ms").
#
#   1. latency: for N in --routes and runtime.workers in --workers, --reloads times: rewrite
#      the file with a new marker (atomic rename), note the time, SIGHUP, then GET / on one
#      keep-alive connection as fast as it answers until the body is the new marker. Median
#      and worst of those times, and of the server's own duration (the log line).
#   2. cpu: for N in --cpu-routes, one worker, wrk -t1 -c--conns for --window seconds twice:
#      without reloads, then with a SIGHUP every --interval ms (back to back when a reload
#      takes longer); then reloads the same way for half a window with no load. CPU time
#      (utime+stime, /proc/PID/task/*/stat) of the main thread and of the worker threads in
#      each window: CPU ms per reload on each, and wrk's req/s.
#   3. rss: for N in --rss-routes, one worker, wrk running: VmRSS before, after --rss-reloads
#      back-to-back reloads, and after as many again (a step stops early after --rss-budget s).
#
# Needs: wrk taskset python3 (scripts/install-deps --bench) and a release build of Ferry.
# 127.0.0.1 only; every phase is bounded in time (a default run takes about 3 minutes). Ferry
# and wrk are stopped on exit, Ctrl-C included; configs and logs live in a temporary
# directory, removed at the end (--outdir keeps a copy of the TSVs and logs).
# `reload.sh --help` for the options; benchmarks/README.md explains the tables.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
py=${PYTHON:-python3}
helper=$here/reload.py

usage() {
  cat <<EOF
Usage: benchmarks/reload.sh [options]
  --phases "..."      any of latency cpu rss, run in that order     (default "latency cpu rss")
  --routes "..."      route counts of the latency phase             (default "10 10000")
  --workers "..."     runtime.workers of the latency phase          (default "1 2")
  --reloads K         reloads per latency run                       (default 20)
  --cpu-routes "..."  route counts of the cpu phase                 (default "10000 10")
  --window S          seconds per cpu window (wrk -d)               (default 8)
  --interval MS       time between SIGHUPs in the reload windows    (default 100)
  --rss-routes "..."  route counts of the rss phase                 (default "10000 10")
  --rss-reloads K     reloads per rss step (two steps)              (default 100)
  --rss-budget S      a step stops after S seconds even if short   (default 15)
  --conns C           wrk connections (wrk -t1)                     (default 10)
  --quick             --reloads 5 --window 3 --rss-reloads 20 --rss-budget 8
  --outdir DIR        keep latency.tsv, cpu.tsv, rss.tsv, table.md, logs/ and conf/ there
  --ferry BIN         Ferry binary (default \$FERRY_BIN or build-rel/proxy/ferry)
  --base-port P       listener on P, admin on P+1                   (default 28680)
Environment: FERRY_BIN, PROXY_CPU (0), CLIENT_CPU (1), PYTHON; UNPINNED=1 pins nothing; the
noise guard QUIET_MAX (10: background % of a core waited for before a run), QUIET_WAIT (10 s
per run), QUIET_BUDGET (20 s in all).
EOF
}

# ------------------------------------------------------------------------------ options
phases="latency cpu rss" routes_list="10 10000" workers_list="1 2" reloads=20
cpu_routes="10000 10" window=8 interval=100 rss_routes="10000 10" rss_reloads=100 rss_budget=15
conns=10 outdir="" base_port=28680
ferry_bin=${FERRY_BIN:-$root/build-rel/proxy/ferry}
while [ $# -gt 0 ]; do
  case "$1" in
    --phases) phases=$2; shift 2;;
    --routes) routes_list=$2; shift 2;;
    --workers) workers_list=$2; shift 2;;
    --reloads) reloads=$2; shift 2;;
    --cpu-routes) cpu_routes=$2; shift 2;;
    --window) window=$2; shift 2;;
    --interval) interval=$2; shift 2;;
    --rss-routes) rss_routes=$2; shift 2;;
    --rss-reloads) rss_reloads=$2; shift 2;;
    --rss-budget) rss_budget=$2; shift 2;;
    --conns) conns=$2; shift 2;;
    --quick) reloads=5 window=3 rss_reloads=20 rss_budget=8; shift;;
    --outdir) outdir=$2; shift 2;;
    --ferry) ferry_bin=$2; shift 2;;
    --base-port) base_port=$2; shift 2;;
    -h|--help) usage; exit 0;;
    *) echo "reload.sh: unknown option '$1'" >&2; usage >&2; exit 2;;
  esac
done
for p in $phases; do
  case "$p" in latency|cpu|rss) ;; *) echo "reload.sh: unknown phase '$p' (latency cpu rss)" >&2; exit 2;; esac
done
proxy_cpu=${PROXY_CPU:-0}
quiet_max=${QUIET_MAX:-10}         # background % of a core we wait for before a run...
quiet_wait=${QUIET_WAIT:-10}       # ...for at most this many seconds per run...
quiet_budget=${QUIET_BUDGET:-20}   # ...and this many in the whole run
idle_window=$(( window > 5 ? window / 2 : window ))
client_cpu=${CLIENT_CPU:-1}
port=$base_port admin_port=$((base_port + 1))

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

for c in wrk taskset timeout ss "$py"; do
  command -v "$c" >/dev/null || die "'$c' not found: run scripts/install-deps --bench"
done
[ -x "$ferry_bin" ] || die "no Ferry binary at $ferry_bin: scripts/build build-rel --buildtype=release, or --ferry BIN"
if [ "${UNPINNED:-0}" = 1 ]; then
  pin_proxy=() pin_client=()
else
  [ "$(nproc)" -gt "$client_cpu" ] && [ "$(nproc)" -gt "$proxy_cpu" ] \
    || die "CPU $proxy_cpu or $client_cpu does not exist (PROXY_CPU, CLIENT_CPU; or UNPINNED=1)"
  pin_proxy=(taskset -c "$proxy_cpu") pin_client=(taskset -c "$client_cpu")
fi
for p in "$port" "$admin_port"; do
  [ -z "$(ss -Hltn "sport = :$p")" ] || die "port $p is in use (choose another --base-port)"
done

# ----------------------------------------------------------------- what we start, stopped
work=$(mktemp -d /tmp/ferry-reload.XXXXXX) || die "mktemp failed"
mkdir -p "$work/logs" "$work/conf"
ferry_pid=""
bounded_pid=""      # the helper or load command running now (through timeout)
wrk_pid_file=$work/wrk.pid

stop_ferry() {      # TERM, up to 5 s (drain), then KILL
  local i
  [ -n "$ferry_pid" ] || return 0
  kill -TERM "$ferry_pid" 2>/dev/null
  for ((i = 0; i < 50; i++)); do kill -0 "$ferry_pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$ferry_pid" 2>/dev/null
  wait "$ferry_pid" 2>/dev/null
  ferry_pid=""
}

stop_wrk() {        # the helper stops its wrk itself; this is for a helper killed by timeout
  local p
  [ -s "$wrk_pid_file" ] || return 0
  p=$(cat "$wrk_pid_file")
  if [ "$(cat "/proc/$p/comm" 2>/dev/null)" = wrk ]; then kill -KILL "$p" 2>/dev/null; fi
  rm -f "$wrk_pid_file"
}

cleanup() {
  if [ -n "$bounded_pid" ]; then kill -TERM "$bounded_pid" 2>/dev/null; wait "$bounded_pid" 2>/dev/null; fi
  stop_wrk
  stop_ferry
  if [ -n "$outdir" ] && [ -d "$work" ]; then
    mkdir -p "$outdir" && cp -r "$work/logs" "$work/conf" "$outdir/" 2>/dev/null
    cp "$work"/*.tsv "$work"/table.md "$outdir/" 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM HUP

conf_args() {       # conf_args ROUTES WORKERS: the helper's config options
  echo --conf "$work/conf/ferry-$1-w$2.yaml" --routes "$1" --workers "$2" --port "$port" --admin-port "$admin_port"
}

start_ferry() {     # start_ferry ROUTES WORKERS: pinned, up once its log says "started"
  local r=$1 w=$2 i conf=$work/conf/ferry-$1-w$2.yaml flog=$work/logs/ferry-$phase-$1-w$2.log
  # shellcheck disable=SC2046
  "$py" "$helper" config $(conf_args "$r" "$w") --marker start --out "$conf" || die "writing $conf failed"
  : >"$flog"
  "${pin_proxy[@]}" "$ferry_bin" -c "$conf" >>"$flog" 2>&1 &
  ferry_pid=$!
  for ((i = 0; i < 600; i++)); do   # 60 s at most (10,000 routes take a second or two)
    grep -q ' started: ' "$flog" && break
    kill -0 "$ferry_pid" 2>/dev/null || die "Ferry exited at startup: $(tail -5 "$flog")"
    sleep 0.1
  done
  grep -q ' started: ' "$flog" || die "Ferry did not start within 60 s: $(tail -5 "$flog")"
  ferry_log=$flog
  log "started Ferry (pid $ferry_pid, $r routes, $w worker(s)$([ ${#pin_proxy[@]} -gt 0 ] && echo ", CPU $proxy_cpu"))"
}

wrk_cmd() {         # wrk_cmd SECONDS: sets load=(the pinned wrk command)
  load=("${pin_client[@]}" wrk -t1 -c"$conns" -d"${1}s" --latency "http://127.0.0.1:$port/")
}

quiet_left=$quiet_budget
wait_for_quiet() {  # bounded: QUIET_WAIT per run, QUIET_BUDGET in all (other processes' CPU)
  local waited=0 bg
  while [ "$quiet_left" -gt 0 ]; do
    bg=$("$py" "$here/peer/bench.py" quiet --ours "$ferry_pid")
    awk -v b="$bg" -v m="$quiet_max" 'BEGIN { exit !(b > m) }' || return 0
    if [ "$waited" -ge "$quiet_wait" ]; then log "  background load still ${bg}% of a core: running anyway"; return 0; fi
    [ "$waited" -eq 0 ] && log "  background load ${bg}% of a core: waiting (up to ${quiet_wait}s)"
    sleep 1.5; waited=$((waited + 2)); quiet_left=$((quiet_left - 2))
  done
}

bounded() {         # bounded SECONDS COMMAND...: in the background (so that a signal reaches
  # the trap at once), killed after SECONDS; returns its exit status
  timeout -k 5 "$@" &
  bounded_pid=$!
  wait "$bounded_pid"
  local rc=$?
  bounded_pid=""
  return "$rc"
}

helper() {          # helper SECONDS COMMAND ARGS...: the helper, killed after SECONDS
  bounded "$1" "${pin_client[@]}" "$py" "$helper" "${@:2}"
  local rc=$?
  stop_wrk
  [ "$rc" = 0 ] || die "reload.py $2 failed (exit $rc; 124: it ran out of time)"
}

# ------------------------------------------------------------------------------- main
t_start=$(date +%s)
{
  printf 'date\t%s\n' "$(date -Is)"
  printf 'host\t%s, %s CPUs: %s\n' "$(uname -sr)" "$(nproc)" "$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
  printf 'ferry\t%s (%s; repository at commit %s)\n' "$("$ferry_bin" --version 2>/dev/null | head -1)" "$ferry_bin" \
    "$(git -C "$root" rev-parse --short HEAD 2>/dev/null)"
  printf 'wrk\t%s\n' "$(wrk -v 2>&1 | head -1)"
  printf 'params\tphases=[%s] routes=[%s] workers=[%s] reloads=%s cpu_routes=[%s] window=%ss interval=%sms rss_routes=[%s] rss_reloads=%s rss_budget=%ss conns=%s pinning=%s\n' \
    "$phases" "$routes_list" "$workers_list" "$reloads" "$cpu_routes" "$window" "$interval" "$rss_routes" \
    "$rss_reloads" "$rss_budget" "$conns" "$([ "${UNPINNED:-0}" = 1 ] && echo none || echo "ferry CPU $proxy_cpu, clients CPU $client_cpu")"
} >"$work/env.txt"
cat "$work/env.txt" >&2

for phase in $phases; do
  case "$phase" in
    latency)
      for r in $routes_list; do
        for w in $workers_list; do
          start_ferry "$r" "$w"
          wait_for_quiet
          # shellcheck disable=SC2046
          helper $((reloads * 10 + 60)) latency --pid "$ferry_pid" --log "$ferry_log" $(conf_args "$r" "$w") \
            --reloads "$reloads" --label "lat-$r-w$w" --out "$work/latency.tsv" --timeout 30
          stop_ferry
        done
      done;;
    cpu)
      for r in $cpu_routes; do
        start_ferry "$r" 1
        wrk_cmd 2; bounded 10 "${load[@]}" >/dev/null 2>&1   # warm-up, unrecorded
        for mode in quiet reload idle; do
          wait_for_quiet
          s=$window; [ "$mode" = idle ] && s=$idle_window
          wrk_cmd "$s"
          # shellcheck disable=SC2046
          helper $((s + 90)) cpu --pid "$ferry_pid" --log "$ferry_log" $(conf_args "$r" 1) --mode "$mode" \
            --window "$s" --interval "$interval" --label "cpu-$r" --out "$work/cpu.tsv" \
            --wrk-pid-file "$wrk_pid_file" -- "${load[@]}"
        done
        stop_ferry
      done;;
    rss)
      for r in $rss_routes; do
        start_ferry "$r" 1
        wait_for_quiet
        wrk_cmd $((2 * rss_budget + 30))
        # shellcheck disable=SC2046
        helper $((2 * rss_budget + 90)) rss --pid "$ferry_pid" --log "$ferry_log" $(conf_args "$r" 1) \
          --reloads "$rss_reloads" --steps 2 --step-budget "$rss_budget" --label "rss-$r" --out "$work/rss.tsv" \
          --wrk-pid-file "$wrk_pid_file" -- "${load[@]}"
        stop_ferry
      done;;
  esac
done

log "done in $(($(date +%s) - t_start)) s"
echo
echo "## Config reload ($(date -u +%F), $(nproc) CPUs, $("$ferry_bin" --version 2>/dev/null | head -1), commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null))"
echo
"$py" "$helper" report "$work" | tee "$work/table.md"
