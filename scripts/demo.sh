#!/usr/bin/env bash
# The main job end to end on the bundled demo model: one picture, one question, streamed answer,
# per-stage timings. The demo model has RANDOM weights, so the answer is gibberish by design.
set -euo pipefail
PLM=${1:-build/plm}
cd "$(dirname "$0")/.."
echo "== plm.cpp demo: models/plm-tiny has RANDOM weights; its answer is meaningless, the pipeline is real =="
echo "\$ $PLM run --model models/plm-tiny --image assets/demo.png --prompt 'What is in this picture?' --max-tokens 24 --verbose"
"$PLM" run --model models/plm-tiny --image assets/demo.png --prompt "What is in this picture?" --max-tokens 24 --verbose
