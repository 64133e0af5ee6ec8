#!/usr/bin/env bash
# System calls per proxied keep-alive request: one Ferry worker on CPU 0 in front of an nginx
# upstream (`return 200 "hello world\n"`) on CPU 1, `wrk -t1 -cCONNS` for SECONDS with
# `strace -f -c` attached to Ferry; each syscall's count divided by the requests wrk made.
#   benchmarks/syscalls.sh [BIN (build-rel/proxy/ferry)] [SECONDS (5)] [CONNS (10)]
# strace slows Ferry down a lot, so requests/s here mean nothing; the counts per request
# do (they are lower bounds for epoll_wait, which serves more requests per wakeup when the
# proxy is slow). Needs nginx, wrk, strace (scripts/install-deps --bench). Loopback only;
# everything it starts is stopped on exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../build-rel/proxy/ferry}; secs=${2:-5}; conns=${3:-10}
[ -x "$bin" ] || { echo "no Ferry binary at $bin (scripts/build build-rel --buildtype=release)" >&2; exit 1; }
for c in nginx wrk strace; do command -v "$c" >/dev/null || { echo "$c not found: scripts/install-deps --bench" >&2; exit 1; }; done
up=19930; px=19931
work=$(mktemp -d)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cat >"$work/nginx.conf" <<EOF
daemon off; worker_processes 1; error_log $work/error.log; pid $work/nginx.pid;
events {}
http { access_log off; keepalive_requests 100000000;
  server { listen 127.0.0.1:$up; location / { return 200 "hello world\n"; } } }
EOF
"$here/peer/ferry-config.sh" "127.0.0.1:$px" "127.0.0.1:$up" >"$work/ferry.yaml"
taskset -c 1 timeout 600 nginx -p "$work" -c "$work/nginx.conf" & pids+=($!)
taskset -c 0 timeout 600 "$bin" -c "$work/ferry.yaml" & pids+=($!)
ready=0
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$px/" && { ready=1; break; }; sleep 0.1; done
[ "$ready" = 1 ] || { echo "Ferry did not answer on 127.0.0.1:$px" >&2; exit 1; }
ferry_pid=$(pgrep -P "${pids[1]}" | head -1)   # the child of timeout
taskset -c 1 wrk -t1 -c"$conns" -d1s "http://127.0.0.1:$px/" >/dev/null   # warm-up: pools filled

timeout -s INT $((secs + 5)) strace -f -c -q -o "$work/strace.txt" -p "$ferry_pid" & strace_pid=$!
sleep 1   # strace attaches to every thread
out=$(taskset -c 1 timeout $((secs + 30)) wrk -t1 -c"$conns" -d"${secs}s" "http://127.0.0.1:$px/")
kill -INT "$strace_pid" 2>/dev/null || true
wait "$strace_pid" 2>/dev/null || true
requests=$(awk '/requests in/ {print $1}' <<<"$out")
echo "$requests requests (wrk -t1 -c$conns, ${secs}s, Ferry under strace)"
printf '%-20s %12s %14s\n' syscall calls per-request
awk -v n="$requests" '
  $1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" { name = $NF; calls = ($4 ~ /^[0-9]+$/) ? $4 : 0
                                 if (calls > 0) { printf "%-20s %12d %14.2f\n", name, calls, calls / n; total += calls } }
  END { printf "%-20s %12d %14.2f\n", "total", total, total / n }' "$work/strace.txt"
