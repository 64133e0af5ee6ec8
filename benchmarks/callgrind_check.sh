#!/usr/bin/env bash
# Instruction and heap-allocation count per HTTP request through Ferry, under callgrind, and a
# check against the recorded baseline (benchmarks/callgrind_baseline.txt). Not part of CI.
#
#   benchmarks/callgrind_check.sh [BUILD_DIR (build-rel)] [--record] [--profile] [--mix standard|get]
#                                 [--keep DIR]
#
# Ferry (one worker) proxies to a Python keep-alive upstream (benchmarks/callgrind/loadgen.py)
# with fixed answers. A client sends a fixed mix lock-step (one request in flight) over 4
# keep-alive connections: GET / (12-byte body), GET /api/... with 10 headers and a query (route
# sets a request header, removes a response header), POST with a 1 KiB Content-Length body,
# GET with a chunked response. Every response is checked. Ferry runs twice, serving
# 2000 and 6000 requests; (large - small) / 4000 is the steady-state cost per request,
# without start-up, connection set-up and shutdown. Instruction counts
# repeat run to run (wall-clock does not), so a rise over 5% is a regression: exit 1.
#
# --record   write the numbers to benchmarks/callgrind_baseline.txt (with commit and date)
# --profile  also print the top 15 functions per request (self and inclusive) and every
#            allocation site per request
# --mix get  the keep-alive GET path alone (for --profile; not compared with the baseline)
# --keep DIR keep the callgrind outputs and logs in DIR (callgrind_annotate them)
# The worker runs on epoll (the baseline's backend; FERRY_CG_IO=io_uring to count that one,
# where valgrind lets io_uring through).
# Needs valgrind and python3 only. Loopback only; everything it starts stops at exit.
set -euo pipefail
self=$(realpath "$0")
cd "$(dirname "$self")/.."
# Everything (Ferry under valgrind, client, upstream) on one CPU: the client can then only
# run while Ferry waits, so Ferry sees the same wake-ups every run (spread ~0.03% pinned,
# ~0.4% not). FERRY_CG_CPU picks the CPU (default: the first one this shell may use).
if [ -z "${FERRY_CG_PINNED:-}" ] && command -v taskset >/dev/null; then
  cpu=${FERRY_CG_CPU:-$(python3 -c 'import os; print(min(os.sched_getaffinity(0)))')}
  FERRY_CG_PINNED=$cpu exec taskset -c "$cpu" "$self" "$@"
fi
build=build-rel; record=0; profile=0; mix=standard; keep=
while [ $# -gt 0 ]; do
  case $1 in
    --record) record=1 ;;
    --profile) profile=1 ;;
    --mix) mix=${2:?--mix needs standard or get}; shift ;;
    --keep) keep=${2:?--keep needs a directory}; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$self" | sed '$d'; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) build=$1 ;;
  esac
  shift
done
case $mix in standard|get) ;; *) echo "--mix: standard or get" >&2; exit 2 ;; esac
[ "$mix" = standard ] || [ $record = 0 ] || { echo "--record only with the standard mix" >&2; exit 2; }
ferry=$build/proxy/ferry
[ -x "$ferry" ] || { echo "no $ferry: build first (scripts/build $build --buildtype=release)" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "valgrind not found" >&2; exit 2; }
baseline_file=benchmarks/callgrind_baseline.txt
here=benchmarks/callgrind

# Requests per run: multiples of 4 connections x mix size. The difference (large - small)
# is what is measured; both include the same start-up and connection set-up.
small=2000; large=6000

work=$(mktemp -d /tmp/ferry-cg.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "$keep" ]; then mkdir -p "$keep" && cp "$work"/*.out "$work"/*.log "$work"/*.yaml "$keep"/ 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A private copy, so a rebuild during the check cannot mix two binaries.
cp "$ferry" "$work/ferry"
built=$(date -u -r "$ferry" +%Y-%m-%dT%H:%M:%SZ); built_s=$(date -r "$ferry" +%s)

timeout 900 python3 "$here/loadgen.py" upstream >"$work/upstream.port" 2>"$work/upstream.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/upstream.port" ] && break; sleep 0.05; done
up=$(cat "$work/upstream.port"); [ -n "$up" ] || { echo "upstream did not start" >&2; cat "$work/upstream.log" >&2; exit 2; }

cat >"$work/ferry.yaml" <<YAML
runtime: {workers: 1, log_level: info, drain_delay: 0s, drain_timeout: 5s}
listeners:
  - name: bench
    address: 127.0.0.1:0
    http:
      virtual_hosts:
        - name: bench
          domains: ["bench.local"]
          routes:
            - match: {prefix: /api/}
              route: {cluster: app}
              request_headers: {set: {x-env: bench}}
              response_headers: {remove: [server]}
            - match: {prefix: /}
              route: {cluster: app}
clusters:
  - name: app
    endpoints: [{address: 127.0.0.1:$up}]
YAML

sep=()
for f in malloc calloc realloc aligned_alloc posix_memalign memalign valloc pvalloc; do
  sep+=("--separate-callers10=$f")
done

# run NAME REQUESTS: Ferry under callgrind serves REQUESTS requests, then drains on SIGTERM.
run() {
  local name=$1 n=$2 log=$work/$1.log
  timeout --foreground 600 valgrind --tool=callgrind --callgrind-out-file="$work/$name.out" "${sep[@]}" \
    "$work/ferry" --io "${FERRY_CG_IO:-epoll}" -c "$work/ferry.yaml" 2>"$log" &
  local vp=$!; pids+=("$vp")
  local port=
  for _ in $(seq 600); do
    port=$(sed -n 's/.*listening: listener=bench address=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log")
    [ -n "$port" ] && break
    kill -0 "$vp" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$port" ] || { echo "ferry did not start under valgrind:" >&2; cat "$log" >&2; exit 2; }
  if ! timeout 600 python3 "$here/loadgen.py" client "$port" "$n" --mix "$mix" >"$work/$name.client" 2>&1; then
    cat "$work/$name.client" >&2
    echo "FAILED: wrong response through Ferry (log: $log)" >&2; sed 's/^/  /' "$log" >&2; exit 2
  fi
  # Let Ferry see the clients' FINs before the drain, so both runs shut down alike.
  sleep 0.5
  kill -TERM "$vp"
  local rc=0; wait "$vp" || rc=$?
  if [ $rc != 0 ] || [ ! -s "$work/$name.out" ]; then
    echo "ferry under callgrind exited $rc (log: $log)" >&2; sed 's/^/  /' "$log" >&2; exit 2
  fi
  if grep -E '\] \[(warn|error)\]' "$log" >/dev/null; then
    echo "ferry logged warnings or errors:" >&2; grep -E '\] \[(warn|error)\]' "$log" >&2; exit 2
  fi
  cat "$work/$name.client"
}

t0=$(date +%s)
run small $small
run large $large
extra=$((large - small))
popt=(); [ $profile = 1 ] && popt=(--profile 15)
python3 "$here/cgstat.py" "$work/small.out" "$work/large.out" "$extra" "${popt[@]}" >"$work/stats.txt"
ir=$(sed -n 's/^ir_per_request=//p' "$work/stats.txt")
allocs=$(sed -n 's/^allocs_per_request=//p' "$work/stats.txt")
news=$(sed -n 's/^operator_new_per_request=//p' "$work/stats.txt")
frees=$(sed -n 's/^free_per_request=//p' "$work/stats.txt")

echo
echo "binary:            $ferry (built $built; tree at $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- 2>/dev/null || echo ', worktree modified'))"
if [ "$built_s" -lt "$(git log -1 --format=%ct 2>/dev/null || echo 0)" ]; then
  echo "note:              the binary was built before the HEAD commit was made; it may not be HEAD"
fi
echo "mix:               $mix; $small and $large requests over 4 keep-alive connections, CPU ${FERRY_CG_PINNED:-unpinned} ($(( $(date +%s) - t0 )) s)"
echo "instructions/req:  $ir"
echo "allocations/req:   $allocs   (malloc/calloc/realloc/aligned calls; operator new: $news, free: $frees)"
if [ $profile = 1 ]; then sed -n '/^$/,$p' "$work/stats.txt"; echo; fi

if [ $record = 1 ]; then
  commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
  git diff --quiet HEAD -- 2>/dev/null || commit="$commit (worktree modified)"
  cat >"$baseline_file" <<EOF
# Recorded by benchmarks/callgrind_check.sh --record; compared by benchmarks/callgrind_check.sh.
# Steady-state cost of one request of the standard mix through one Ferry worker, under callgrind.
instructions_per_request=$ir
allocations_per_request=$allocs
operator_new_per_request=$news
requests=$small,$large
commit=$commit
binary=$ferry built $built, sha256 $(sha256sum "$work/ferry" | cut -c1-16)
date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
valgrind=$(valgrind --version)
EOF
  echo "recorded:          $baseline_file"
  exit 0
fi

if [ "$mix" != standard ]; then echo "(mix $mix: not compared with the baseline)"; exit 0; fi
[ -f "$baseline_file" ] || { echo "no $baseline_file: run with --record first"; exit 0; }
base_ir=$(sed -n 's/^instructions_per_request=//p' "$baseline_file")
base_allocs=$(sed -n 's/^allocations_per_request=//p' "$baseline_file")
base_commit=$(sed -n 's/^commit=//p' "$baseline_file"); base_date=$(sed -n 's/^date=//p' "$baseline_file")
read -r dir dalloc verdict < <(awk -v a="$ir" -v b="$base_ir" -v x="$allocs" -v y="$base_allocs" 'BEGIN {
  d = (a - b) * 100 / b; printf "%+.2f %+.2f %s\n", d, x - y, (d > 5 ? "REGRESSION" : "ok") }')
echo "baseline:          $base_ir instructions/req, $base_allocs allocations/req (commit ${base_commit:0:12}, $base_date)"
echo "change:            instructions $dir%, allocations $dalloc per request"
if [ "$verdict" = REGRESSION ]; then
  echo "REGRESSION: instructions per request rose $dir% (> 5%) over the baseline"
  exit 1
fi
echo "ok (threshold: +5% instructions per request)"
