#!/usr/bin/env bash
# Fine-tune BLIP ViT-B on Flickr30k with the official settings (configs/retrieval_flickr.yaml):
# 8 GPUs x batch 32, init_lr 1e-5, 6 epochs, 384 px, queue 57600, k_test 128, ViT checkpointing of 4 blocks.
# Usage: examples/run_flickr_vit_base.sh IMAGE_ROOT [ANN_ROOT] [NUM_GPUS]
set -euo pipefail
image_root="$1"; ann_root="${2:-}"; gpus="${3:-8}"
deepspeed --num_gpus "$gpus" examples/flickr.py --image_root "$image_root" ${ann_root:+--ann_root "$ann_root"} \
  --deepspeed_config ds_configs/zero2.json --output_dir output/flickr_vit_base \
  --vit base --pretrained blip_base --image_size 384 --batch_size_train 32 --batch_size_test 64 \
  --init_lr 1e-5 --min_lr 0 --weight_decay 0.05 --max_epoch 6 --queue_size 57600 --alpha 0.4 --k_test 128 \
  --negative_all_rank false --vit_grad_ckpt true --vit_ckpt_layer 4 --precision bf16 --save_steps 500 \
  --resume auto
