#!/usr/bin/env bash
# Image -> first token with 37 tiles (a 12-megapixel square photo, 6 x 6 tiles + thumbnail,
# 9526 prompt tokens) on the random-weight PLM-1B-shaped checkpoint: plm.cpp (DTYPES: any of bf16,
# q8 and q4; default q8 and bf16) against
# Hugging Face transformers on the CPU in its default dtype, same threads, one run each. This is
# the "end to end" row of docs/PERFORMANCE.md. Benchmarks are not tests: run it on a quiet machine.
#
#   PYTHON=/path/to/venv/bin/python scripts/bench_e2e.sh [BUILD_DIR]
#
# PYTHON needs torch, transformers (>= 5, PerceptionLM), timm (its vision tower) and Pillow;
# without it only plm runs.
# WORK (default /tmp/plm-e2e) keeps the checkpoint folders and the image between runs.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build-perf}
CONFIG=${CONFIG:-$ROOT/bench/configs/plm-1b-shaped}
FIXTURES=${PLM_FIXTURES:-$ROOT/../shared/fixtures}
THREADS=${THREADS:-2}
WORK=${WORK:-/tmp/plm-e2e}
PYTHON=${PYTHON:-}
DTYPES=${DTYPES:-"q8 bf16"}
mkdir -p "$WORK"
load() { echo "# load: $(cut -d' ' -f1-3 /proc/loadavg)  $(date -u +%T)"; }

if [ ! -x "$BUILD/plm" ]; then
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release
  ninja -C "$BUILD" plm_cli
fi
# The random checkpoint (plm bench writes and caches it), with the fixture tokenizer and chat
# template and a processor allowing 36 tiles.
"$BUILD/plm" bench --config "$CONFIG" --dtype bf16 --threads "$THREADS" --tiles 0 --prefill 16 \
  --decode-tokens 2 --cache-dir "$WORK" > /dev/null
ckpt=$WORK/plm-bench-$(basename "$CONFIG")
tiny=${TOKENIZER_DIR:-$FIXTURES/models/plm-tiny}  # tokenizer, chat template, processor
make_folder() {  # $1 = folder, $2 = checkpoint folder
  mkdir -p "$1"
  for f in config.json model.safetensors; do ln -sf "$2/$f" "$1/$f"; done
  for f in tokenizer.json tokenizer_config.json chat_template.jinja generation_config.json; do
    [ -e "$tiny/$f" ] && ln -sf "$tiny/$f" "$1/$f"
  done
  # The tile size must be the vision tower's input size (config.json vision img_size).
  local tile
  tile=$(tr -d ' \n' < "$2/config.json" | grep -o '"img_size":\[[0-9]*' | grep -o '[0-9]*$')
  sed -E -e 's/"max_num_tiles": *[0-9]+/"max_num_tiles": 36/' \
    -e "s/\"(tile_size|height|width)\": *[0-9]+/\"\1\": $tile/" \
    "$tiny/processor_config.json" > "$1/processor_config.json"
}
make_folder "$WORK/bf16" "$ckpt"
for d in q8 q4; do  # q8 also gives the HF run its processor folder
  [ "$d" = q8 ] || [[ " $DTYPES " == *" $d "* ]] || continue
  if [ ! -e "$WORK/$d-weights/model.safetensors" ]; then
    "$BUILD/plm" quantize --model "$ckpt" --dtype "$d" --out "$WORK/$d-weights" --quiet
  fi
  make_folder "$WORK/$d" "$WORK/$d-weights"
done

image=$WORK/photo12mp.jpg
if [ ! -e "$image" ]; then
  if [ -z "$PYTHON" ]; then
    echo "no $image and no PYTHON with Pillow to draw it" >&2
    exit 2
  fi
  # Smooth gradients plus noise: photo-like JPEG entropy, 3464 x 3464 (square -> 6 x 6 tiles).
  "$PYTHON" - "$image" <<'EOF'
import sys
import numpy as np
from PIL import Image
n = 3464
y, x = np.mgrid[0:n, 0:n].astype(np.float32) / n
rng = np.random.default_rng(0)
rgb = np.stack([128 + 100 * np.sin(6 * x + 2 * y), 128 + 100 * np.cos(5 * y), 128 + 90 * np.sin(4 * (x + y))], -1)
rgb += rng.normal(0, 12, rgb.shape)
Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(sys.argv[1], quality=90)
EOF
fi

lscpu | grep -E "Model name|^CPU\(s\)" || true
for d in $DTYPES; do
  load
  echo "# plm run --model $WORK/$d --dtype $d --threads $THREADS --image $image --max-tiles 36 -n 1 --json"
  /usr/bin/time -f "wall %e s, maxrss %M KB" "$BUILD/plm" run --model "$WORK/$d" --dtype "$d" \
    --threads "$THREADS" --image "$image" --max-tiles 36 -p "Describe the image." -n 1 --json
done
if [ -n "$PYTHON" ]; then
  load
  echo "# hf_e2e.py $ckpt 37 $THREADS auto novision $image $WORK/q8"
  /usr/bin/time -f "wall %e s, maxrss %M KB" "$PYTHON" "$ROOT/bench/hf_e2e.py" "$ckpt" 37 \
    "$THREADS" auto novision "$image" "$WORK/q8"
fi
load
