#!/usr/bin/env bash
# Reproduces the table of docs/PERFORMANCE.md: `plm bench` on the PLM-1B-shaped config for each
# weight format and thread count, one JSON line per run in $OUT (default bench-results.jsonl),
# plus the GEMM micro-benchmarks. Benchmarks are not tests: run them on a quiet machine
# (check `uptime`), they take several minutes each.
#
#   scripts/bench.sh [BUILD_DIR]            # default build-perf
#   DTYPES="bf16 q8" THREADS="2" PREFILL=512,2048 scripts/bench.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build-perf}
CONFIG=${CONFIG:-$ROOT/bench/configs/plm-1b-shaped}
DTYPES=${DTYPES:-"bf16 q8 q4"}
THREADS=${THREADS:-"1 2"}
PREFILL=${PREFILL:-512,2048,9472}
TILES=${TILES:-2}
OUT=${OUT:-bench-results.jsonl}

if [ ! -x "$BUILD/plm" ]; then
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release
  ninja -C "$BUILD" plm_cli bench/gemm_bench
fi
echo "# $(date -u +%FT%TZ) $(uname -n) load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
lscpu | grep -E "Model name|^CPU\(s\)" >&2 || true
: > "$OUT"
for t in $THREADS; do
  for d in $DTYPES; do
    echo "# plm bench --config $CONFIG --dtype $d --threads $t --prefill $PREFILL --tiles $TILES" >&2
    "$BUILD/plm" bench --config "$CONFIG" --dtype "$d" --threads "$t" --prefill "$PREFILL" \
      --tiles "$TILES" --json | tee -a "$OUT"
  done
done
if [ -x "$BUILD/bench/gemm_bench" ]; then
  "$BUILD/bench/gemm_bench" --benchmark_min_time=0.5
fi
