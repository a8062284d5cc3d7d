#!/usr/bin/env bash
# Evaluate the official BLIP ViT-B Flickr30k retrieval checkpoint (val and test, k_test 128).
# Usage: examples/eval_flickr_vit_base.sh IMAGE_ROOT [ANN_ROOT] [NUM_GPUS]
set -euo pipefail
image_root="$1"; ann_root="${2:-}"; gpus="${3:-8}"
deepspeed --num_gpus "$gpus" examples/flickr.py --mode evaluate --image_root "$image_root" \
  ${ann_root:+--ann_root "$ann_root"} --output_dir output/flickr_vit_base_eval \
  --vit base --pretrained blip_base_retrieval_flickr --image_size 384 --batch_size_test 64 --k_test 128
