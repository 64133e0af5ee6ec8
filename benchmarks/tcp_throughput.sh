#!/usr/bin/env bash
# Bulk TCP throughput: a direct loopback connection, the same transfer through Ferry's TCP
# proxy (splice on, the default, and splice off), and through HAProxy in TCP mode with
# `option splice-auto` (HAProxy 2.6 splices only when asked), interleaved, ROUNDS times; prints
# each run, the medians, and each proxy's share of the direct rate. Every proxy runs one
# thread pinned to CPU 1; the sender and the sink share CPU 0.
# Usage: benchmarks/tcp_throughput.sh [BUILD_DIR (default build-rel)] [BYTES (default 1 GiB)] [ROUNDS (default 5)]
# Every process it starts stops by itself (timeouts) or at exit. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-rel}; bytes=${2:-1073741824}; rounds=${3:-5}
bench=$build/benchmarks/tcp_bench; ferry=$build/proxy/ferry
[ -x "$bench" ] && [ -x "$ferry" ] || { echo "build first: meson setup $build --buildtype=release && meson compile -C $build"; exit 1; }
haproxy=$(command -v haproxy || true)
sink_port=19700; ferry_port=19701; copy_port=19702; haproxy_port=19703
work=$(mktemp -d)
trap '[ -f "$work/haproxy.pid" ] && kill "$(cat "$work/haproxy.pid")" 2>/dev/null; kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
cat > "$work/ferry.yaml" <<YAML
runtime: {workers: 1, log_level: warn}
listeners:
  - name: splice
    address: 127.0.0.1:$ferry_port
    tcp: {cluster: sink}
  - name: copy
    address: 127.0.0.1:$copy_port
    tcp: {cluster: sink, splice: false}
clusters:
  - name: sink
    endpoints: [{address: 127.0.0.1:$sink_port}]
YAML
cat > "$work/haproxy.cfg" <<CFG
global
  nbthread 1
  maxconn 1000
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option splice-auto
listen bench
  bind 127.0.0.1:$haproxy_port
  server sink 127.0.0.1:$sink_port
CFG
taskset -c 0 timeout 1800 "$bench" sink $sink_port &
taskset -c 1 timeout 1800 "$ferry" -c "$work/ferry.yaml" &
if [ -n "$haproxy" ]; then taskset -c 1 timeout 1800 "$haproxy" -f "$work/haproxy.cfg" -db -p "$work/haproxy.pid" & fi
wait_port() { for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }
wait_port $sink_port; wait_port $ferry_port; wait_port $copy_port; [ -n "$haproxy" ] && wait_port $haproxy_port
declare -A runs
names="direct ferry-splice ferry-copy"; [ -n "$haproxy" ] && names="$names haproxy-splice"
port_of() { case $1 in direct) echo $sink_port;; ferry-splice) echo $ferry_port;; ferry-copy) echo $copy_port;; haproxy-splice) echo $haproxy_port;; esac; }
for r in $(seq "$rounds"); do
  line="round $r:"
  for n in $names; do
    v=$(taskset -c 0 "$bench" send "$(port_of "$n")" "$bytes" | awk '{print $3}')
    runs[$n]="${runs[$n]:-} $v"; line="$line $n $v MB/s,"
  done
  echo "${line%,}"
done
median() { printf '%s\n' $@ | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
md=$(median ${runs[direct]})
for n in $names; do
  m=$(median ${runs[$n]})
  echo "median: $n $m MB/s, $(awk -v a="$m" -v b="$md" 'BEGIN{printf "%.2f", a/b}')x direct"
done
