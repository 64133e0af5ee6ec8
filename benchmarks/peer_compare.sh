#!/usr/bin/env bash
# Ferry beside nginx and HAProxy in one peerbench run, then one table of ratios to the better
# peer (benchmarks/peer/table.py). Not part of CI; needs `scripts/install-deps --bench` and a
# release build (scripts/build build-rel --buildtype=release). Do not build while it runs.
#
#   benchmarks/peer_compare.sh [OUTDIR (/tmp/ferry-peer)] [peerbench options...]
#   FERRY_WORKERS=2 / FERRY_ROUTES=10000 change Ferry's config (benchmarks/peer/ferry-candidate.sh).
#   Default phases: h1 (keep-alive c10 and c100, proxy pinned to CPU 0) and mem (idle
#   connections); pass e.g. --phases "h1" --conns "1 10 100" to change.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-/tmp/ferry-peer}; shift || true
pb=${PEERBENCH:-$root/../shared/peerbench/peerbench.sh}
[ -x "$pb" ] || { echo "peerbench not found at $pb (set PEERBENCH)"; exit 1; }
export FERRY_BIN=${FERRY_BIN:-$root/build-rel/proxy/ferry}
[ -x "$FERRY_BIN" ] || { echo "build first: scripts/build build-rel --buildtype=release"; exit 1; }
phases=(--phases "h1 mem")
for a in "$@"; do [ "$a" = --phases ] && phases=(); done
"$pb" --candidate "$root/benchmarks/peer/ferry-candidate.sh" --candidate-name ferry \
  --candidate-port 8083 "${phases[@]}" --outdir "$out" "$@"
echo
echo "## Ferry against the better peer (same run; $(date -u +%F), $(nproc) CPUs)"
python3 "$root/benchmarks/peer/table.py" "$out" ferry
