#!/usr/bin/env bash
# Bulk TCP throughput: a direct loopback connection vs the same transfer through Ferry's tcp
# proxy, side by side, interleaved, ROUNDS times; prints each run and the medians.
# Usage: benchmarks/tcp_throughput.sh [BUILD_DIR (default build-rel)] [BYTES (default 1 GiB)] [ROUNDS (default 5)]
# Every process it starts stops by itself (timeouts) or at exit. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-rel}; bytes=${2:-1073741824}; rounds=${3:-5}
bench=$build/benchmarks/tcp_bench; ferry=$build/proxy/ferry
[ -x "$bench" ] && [ -x "$ferry" ] || { echo "build first: meson setup $build --buildtype=release && meson compile -C $build"; exit 1; }
sink_port=19700; proxy_port=19701
work=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
cat > "$work/ferry.yaml" <<YAML
runtime: {workers: 1, log_level: warn}
listeners:
  - name: bench
    address: 127.0.0.1:$proxy_port
    tcp: {cluster: sink}
clusters:
  - name: sink
    endpoints: [{address: 127.0.0.1:$sink_port}]
YAML
timeout 900 "$bench" sink $sink_port & 
timeout 900 "$ferry" -c "$work/ferry.yaml" &
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$proxy_port) 2>/dev/null && break; sleep 0.1; done
direct=(); proxied=()
for r in $(seq "$rounds"); do
  d=$("$bench" send $sink_port "$bytes" | awk '{print $3}'); direct+=("$d")
  p=$("$bench" send $proxy_port "$bytes" | awk '{print $3}'); proxied+=("$p")
  echo "round $r: direct $d MB/s, through ferry $p MB/s"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
md=$(median "${direct[@]}"); mp=$(median "${proxied[@]}")
echo "median: direct $md MB/s, through ferry $mp MB/s, ratio $(awk -v a="$mp" -v b="$md" 'BEGIN{printf "%.2f", a/b}')"
