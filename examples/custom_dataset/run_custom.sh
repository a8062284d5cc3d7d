#!/usr/bin/env bash
# Fine-tune BLIP ViT-B on your own data (see README.md in this folder for the annotation format).
# Usage: examples/custom_dataset/run_custom.sh IMAGE_ROOT ANN_ROOT [NUM_GPUS]
set -euo pipefail
image_root="$1"; ann_root="$2"; gpus="${3:-1}"
deepspeed --num_gpus "$gpus" examples/flickr.py --dataset custom --image_root "$image_root" --ann_root "$ann_root" \
  --train_file train.json --val_file val.json --test_file test.json \
  --deepspeed_config ds_configs/zero2.json --output_dir output/custom \
  --vit base --pretrained blip_base --image_size 384 --batch_size_train 32 --init_lr 1e-5 --max_epoch 6 \
  --k_test 128 --precision bf16 --resume auto
