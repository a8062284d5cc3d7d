"""Run by torchrun in test_prepare_distributed.py: every rank calls prepare_data on the same data.

argv: synthetic_dir out_prefix [image_root ann_root]: with the last two, a `custom` dataset is checked.
"""
import json
import sys

from appzoo.blip_retrieval.data import build_dataset, create_eval_image_loader, prepare_data
from appzoo.blip_retrieval.params import SCHEMA
from easyretrieval.distributed import barrier, dist_info_from_env, exit_process, init_distributed
from easyretrieval.errors import UserError
from easyretrieval.distributed import shutdown_distributed  # noqa: E402


def main(synthetic_dir, out_prefix, image_root=None, ann_root=None):
    info = dist_info_from_env()
    init_distributed(info)
    if image_root:
        cfg = SCHEMA.resolve({"dataset": "custom", "image_root": image_root, "ann_root": ann_root,
                              "test_file": "test.json", "image_size": 16})
    else:
        cfg = SCHEMA.resolve({"dataset": "synthetic", "synthetic_dir": synthetic_dir, "image_size": 16})
    try:
        found = prepare_data(cfg, info, splits=("test",) if image_root else ("train", "test"))
    except UserError as e:
        with open(f"{out_prefix}{info.rank}.err", "w") as f:
            f.write(str(e))
        sys.exit(2)
    test = build_dataset(cfg, "test")
    loader = create_eval_image_loader(test, 16, info, num_workers=0)
    indices = [i for _, batch in loader for i in batch.tolist()]
    with open(f"{out_prefix}{info.rank}.json", "w") as f:
        json.dump({"image_root": found.image_root, "indices": indices}, f)
    barrier()


if __name__ == "__main__":
    main(*sys.argv[1:])
    shutdown_distributed()
    exit_process(0)
