#!/usr/bin/env bash
# Ferry beside nginx and HAProxy, one interleaved run, one table of ratios to the better peer.
# Kept for the commands written before benchmarks/peer/compare.sh existed:
#   benchmarks/peer_compare.sh [OUTDIR] [compare.sh options...]
# is benchmarks/peer/compare.sh --outdir OUTDIR [options...]; see benchmarks/README.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=()
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then out=(--outdir "$1"); shift; fi
exec "$here/peer/compare.sh" "${out[@]}" "$@"
