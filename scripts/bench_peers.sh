#!/usr/bin/env bash
# Side-by-side run of the peers (llama.cpp, ik_llama.cpp: built separately, never committed) and
# `plm bench` on the same random Llama-3.2-1B-shaped weights (the PLM-1B decoder), 2 threads,
# prompt 512 / generate 128, in one session. Prints the load average before each run.
#
#   LLAMA_BENCH=/tmp/llama.cpp/build/bin/llama-bench IK_BENCH=/tmp/ik_llama/build/bin/llama-bench \
#   GGUF_DIR=/tmp/peers scripts/bench_peers.sh [BUILD_DIR]
# GGUF_DIR holds plm1b-bf16.gguf (written by make_gguf.py from the `plm bench` checkpoint) and
# <peer>-Q8_0.gguf / <peer>-Q4_0.gguf made by each peer's llama-quantize. The plm quantized
# folders come from `plm quantize --model /tmp/plm-bench-plm-1b-shaped --out ... --dtype q8|q4`.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build-perf}
T=${THREADS:-2}
REPS=${REPS:-3}
CONFIG=${CONFIG:-$ROOT/bench/configs/plm-1b-shaped}
load() { echo "# load: $(cut -d' ' -f1-3 /proc/loadavg)  $(date -u +%T)"; }
for peer in llama ik; do
  bin=$LLAMA_BENCH; [ "$peer" = ik ] && bin=$IK_BENCH
  [ -x "$bin" ] || continue
  for f in plm1b-bf16.gguf $peer-Q8_0.gguf $peer-Q4_0.gguf; do
    load; echo "# $peer: llama-bench -m $f -p 512 -n 128 -t $T -r $REPS"
    "$bin" -m "$GGUF_DIR/$f" -p 512 -n 128 -t "$T" -r "$REPS" 2>/dev/null | grep -E "pp512|tg128"
  done
done
for d in bf16 q8 q4; do
  model=/tmp/plm-bench-plm-1b-shaped
  [ "$d" != bf16 ] && model=${PLM_QUANT_PREFIX:-/tmp/plm-bench-1b}-$d
  load; echo "# plm bench --model $model --dtype $d --threads $T --tiles 1 --prefill 512 --decode-tokens 64"
  "$BUILD/plm" bench --config "$CONFIG" --model "$model" --dtype "$d" --threads "$T" --tiles 1 \
    --prefill 512 --decode-tokens 64 --json
done
load
