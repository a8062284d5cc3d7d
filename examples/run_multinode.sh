#!/usr/bin/env bash
# Two nodes x 8 GPUs. With DeepSpeed's launcher (passwordless ssh to the hosts in the hostfile):
#   examples/run_multinode.sh deepspeed IMAGE_ROOT
# or with torchrun, run on every node (NODE_RANK 0 and 1, MASTER_ADDR = node 0's address):
#   NODE_RANK=0 MASTER_ADDR=10.0.0.1 examples/run_multinode.sh torchrun IMAGE_ROOT
set -euo pipefail
launcher="$1"; image_root="$2"
params=(--image_root "$image_root" --deepspeed_config ds_configs/zero2.json --output_dir output/flickr_2nodes
        --vit base --pretrained blip_base --batch_size_train 32 --init_lr 1e-5 --precision bf16 --resume auto)
if [ "$launcher" = deepspeed ]; then
  deepspeed --hostfile examples/hostfile.example examples/flickr.py "${params[@]}"
else
  torchrun --nnodes 2 --nproc_per_node 8 --node_rank "$NODE_RANK" --master_addr "$MASTER_ADDR" \
    --master_port "${MASTER_PORT:-29500}" examples/flickr.py "${params[@]}"
fi
