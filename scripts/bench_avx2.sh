#!/usr/bin/env bash
# The path of CPUs without AVX-512 (most desktops and laptops), measured on any x86 machine with
# AVX2: `plm bench` under PLM_CPU=avx2 (the AVX2 kernels) and PLM_CPU=generic (the portable code
# they replace), OpenBLAS held to its Haswell kernels, next to llama.cpp built for AVX2 only
# (never committed):
#   cmake -S llama.cpp -B llama.cpp/build-avx2 -G Ninja -DCMAKE_BUILD_TYPE=Release \
#     -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
#     -DGGML_AVX512=OFF -DLLAMA_CURL=OFF && cmake --build llama.cpp/build-avx2 --target llama-bench
#   LLAMA_BENCH=llama.cpp/build-avx2/bin/llama-bench GGUF_DIR=/tmp/peers scripts/bench_avx2.sh
# GGUF_DIR and the plm folders as in scripts/bench_peers.sh. On a CPU with AVX-512 the compiler's
# own clones of the portable loops (target_clones) still take their AVX-512 versions; the GEMVs,
# the attention kernels and BLAS are those of an AVX2 CPU, and oneDNN (the f32 GEMMs of prompts
# and images) is held to AVX2 by ONEDNN_MAX_CPU_ISA. On an AVX2 CPU (session 22: AMD Zen 2) the
# plain scripts/bench_peers.sh measures the same path.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build-perf}
T=${THREADS:-2}
CONFIG=${CONFIG:-$ROOT/bench/configs/plm-1b-shaped}
export OPENBLAS_CORETYPE=Haswell ONEDNN_MAX_CPU_ISA=AVX2
load() { echo "# load: $(cut -d' ' -f1-3 /proc/loadavg)  $(date -u +%T)"; }
if [ -x "${LLAMA_BENCH:-}" ]; then
  for f in plm1b-bf16.gguf llama-Q8_0.gguf llama-Q4_0.gguf; do
    load; echo "# llama.cpp (AVX2): llama-bench -m $f -p 512 -n 128 -t $T -r 2"
    "$LLAMA_BENCH" -m "$GGUF_DIR/$f" -p 512 -n 128 -t "$T" -r 2 2>/dev/null | grep -E "pp512|tg128"
  done
fi
for cpu in avx2 generic; do
  for d in bf16 q8 q4; do
    model=/tmp/plm-bench-plm-1b-shaped
    [ "$d" != bf16 ] && model=${PLM_QUANT_PREFIX:-/tmp/plm-bench-1b}-$d
    args=(--tiles 1 --prefill 512,2048 --decode-tokens 33)
    # The portable code decodes at ~1 token/s: a shorter run.
    [ "$cpu" = generic ] && args=(--tiles 0 --skip-vision --prefill 512 --decode-tokens 9)
    load; echo "# PLM_CPU=$cpu plm bench --model $model --dtype $d --threads $T ${args[*]}"
    PLM_CPU=$cpu "$BUILD/plm" bench --config "$CONFIG" --model "$model" --dtype "$d" \
      --threads "$T" "${args[@]}" --json
  done
done
load
