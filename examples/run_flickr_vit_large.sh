#!/usr/bin/env bash
# Fine-tune BLIP ViT-L on Flickr30k with the official settings: 8 GPUs x batch 16, init_lr 5e-6, 6 epochs,
# 384 px, queue 57600, k_test 128, ViT checkpointing of 10 blocks.
# Usage: examples/run_flickr_vit_large.sh IMAGE_ROOT [ANN_ROOT] [NUM_GPUS]
set -euo pipefail
image_root="$1"; ann_root="${2:-}"; gpus="${3:-8}"
deepspeed --num_gpus "$gpus" examples/flickr.py --image_root "$image_root" ${ann_root:+--ann_root "$ann_root"} \
  --deepspeed_config ds_configs/zero2.json --output_dir output/flickr_vit_large \
  --vit large --pretrained blip_large --image_size 384 --batch_size_train 16 --batch_size_test 32 \
  --init_lr 5e-6 --min_lr 0 --weight_decay 0.05 --max_epoch 6 --queue_size 57600 --alpha 0.4 --k_test 128 \
  --negative_all_rank false --vit_grad_ckpt true --vit_ckpt_layer 10 --precision bf16 --save_steps 500 \
  --resume auto
