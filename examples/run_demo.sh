#!/usr/bin/env bash
# The demo (make demo): train a tiny BLIP on the built-in synthetic dataset through the DeepSpeed engine on
# CPU (one process, ZeRO-1, fp32), evaluate val and test after every epoch, print R@1/5/10 both ways.
# Usage: examples/run_demo.sh [VENV]   (default: the python on PATH)
set -euo pipefail
venv="${1:-}"
bin="${venv:+$venv/bin/}"
out="${DEMO_OUTPUT_DIR:-output/demo}"
# Start fresh, but only over an earlier demo's output: never delete a folder this script did not write.
if [ -e "$out" ]; then
  if grep -q '"dataset": "synthetic"' "$out/config.json" 2>/dev/null; then
    rm -rf "$out"
  else
    echo "run_demo.sh: '$out' exists and is not a demo output; set DEMO_OUTPUT_DIR to another folder" >&2
    exit 2
  fi
fi
"${bin}easyretrieval" --app blip_retrieval --mode train --output_dir "$out" --user_defined_parameters \
  "dataset=synthetic vit=tiny tokenizer=build image_size=48 queue_size=64 momentum=0.95 batch_size_train=16 \
   batch_size_test=64 init_lr=1e-3 min_lr=0 weight_decay=0.05 max_epoch=8 k_test=16 num_workers=0"
