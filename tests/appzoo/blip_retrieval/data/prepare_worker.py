"""Run by torchrun in test_prepare_distributed.py: every rank calls prepare_data on the same synthetic dir."""
import json
import sys

from appzoo.blip_retrieval.data import build_dataset, create_eval_image_loader, prepare_data
from appzoo.blip_retrieval.params import SCHEMA
from easyretrieval.distributed import barrier, dist_info_from_env, init_distributed


def main(synthetic_dir, out_prefix):
    info = dist_info_from_env()
    init_distributed(info)
    cfg = SCHEMA.resolve({"dataset": "synthetic", "synthetic_dir": synthetic_dir, "image_size": 16})
    found = prepare_data(cfg, info, splits=("train", "test"))
    test = build_dataset(cfg, "test")
    loader = create_eval_image_loader(test, 16, info, num_workers=0)
    indices = [i for _, batch in loader for i in batch.tolist()]
    with open(f"{out_prefix}{info.rank}.json", "w") as f:
        json.dump({"image_root": found.image_root, "indices": indices}, f)
    barrier()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
