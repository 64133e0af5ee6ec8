#!/usr/bin/env bash
# Sequential gRPC unary RPCs per second through Ferry against the same server direct, with
# Debian's python3-grpcio on both ends (tests/integration/grpc/peer.py): one RPC in flight,
# so the figure is latency-bound and the ratio shows what Ferry adds per RPC.
#
#   benchmarks/grpc_unary.sh [FERRY_BIN (build-rel/proxy/ferry)] [RPCS (2000)] [ROUNDS (5)]
#
# Prints each round and the medians. Loopback only; everything it starts stops at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build-rel/proxy/ferry}
n=${2:-2000}
rounds=${3:-5}
peer=tests/integration/grpc/peer.py
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

taskset -c 1 /usr/bin/python3 "$peer" server > "$tmp/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q listening "$tmp/server.log" && break; sleep 0.1; done
sport=$(sed -n 's/.*address=127.0.0.1:\([0-9]*\).*/\1/p' "$tmp/server.log" | head -1)
cat > "$tmp/ferry.yaml" <<YAML
runtime: {workers: 1}
admin: {address: 127.0.0.1:0}
listeners:
  - name: grpc
    address: 127.0.0.1:0
    http:
      virtual_hosts:
        - name: all
          domains: ["*"]
          routes: [{match: {prefix: /}, route: {cluster: g}}]
clusters:
  - name: g
    protocol: http2
    endpoints: [{address: 127.0.0.1:$sport}]
YAML
taskset -c 0 "$bin" -c "$tmp/ferry.yaml" > "$tmp/ferry.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q "listener=grpc" "$tmp/ferry.log" && break; sleep 0.1; done
fport=$(sed -n 's/.*listener=grpc address=127.0.0.1:\([0-9]*\).*/\1/p' "$tmp/ferry.log" | head -1)

via=(); direct=()
for r in $(seq "$rounds"); do
  v=$(taskset -c 1 /usr/bin/python3 "$peer" client "$fport" "unary_n=$n" | sed -n 's/.*rps=\([0-9]*\).*/\1/p')
  d=$(taskset -c 1 /usr/bin/python3 "$peer" client "$sport" "unary_n=$n" | sed -n 's/.*rps=\([0-9]*\).*/\1/p')
  echo "round $r: through ferry $v RPC/s, direct $d RPC/s"
  via+=("$v"); direct+=("$d")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mv=$(median "${via[@]}"); md=$(median "${direct[@]}")
echo "median: through ferry $mv RPC/s, direct $md RPC/s, ratio $(awk -v a="$mv" -v b="$md" 'BEGIN {printf "%.2f", a/b}')"
