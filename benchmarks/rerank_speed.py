"""ITM re-rank speed of our evaluator across batch settings: one model and gallery, every combination of
--precisions x --itm-batch-sizes x --images-per-group; prints the re-rank seconds and pairs/s of each and
checks that R@K are the same for every setting of one precision (batching must not change a rank).

  python benchmarks/rerank_speed.py                                     # CPU, tiny
  python benchmarks/rerank_speed.py --vit base --image-size 384 --images 300 --k-test 64 \
      --precisions fp32,bf16 --itm-batch-sizes 256,1024,4096 --images-per-group 16,64   # GPU
"""
import argparse
import itertools
import json
import os
import tempfile
import time

import torch

from appzoo.blip_retrieval.data.datasets import RetrievalEvalDataset
from appzoo.blip_retrieval.data.transforms import create_transform
from appzoo.blip_retrieval.evaluation import RetrievalEvaluator
from appzoo.blip_retrieval.model.blip_retrieval import BlipRetrieval
from appzoo.blip_retrieval.model.config import create_config
from appzoo.blip_retrieval.model.tokenizer import build_wordpiece_vocab, create_tokenizer
from eval_speed import synchronize, write_gallery


def _ints(text):
    return [int(v) for v in text.split(",") if v]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vit", default="tiny")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--k-test", type=int, default=16)
    parser.add_argument("--precisions", default="fp32")
    parser.add_argument("--itm-batch-sizes", default="64,256")
    parser.add_argument("--images-per-group", default="16")
    parser.add_argument("--data-dir", default=os.path.join(tempfile.gettempdir(), "easyretrieval_rerank_speed"))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    device = torch.device(args.device)
    ann = write_gallery(args.data_dir, args.images, 5)
    dataset = RetrievalEvalDataset(ann, os.path.join(args.data_dir, "images"), create_transform(args.image_size, False))
    tokenizer = create_tokenizer(build_wordpiece_vocab(dataset.text, os.path.join(args.data_dir, "vocab.txt"),
                                                       vocab_size=400))
    torch.manual_seed(0)
    model = BlipRetrieval(create_config(args.vit, args.image_size, vocab_size=len(tokenizer), queue_size=8),
                          tokenizer).to(device).eval()
    rows, first_metrics = [], {}
    settings = itertools.product(args.precisions.split(","), _ints(args.itm_batch_sizes), _ints(args.images_per_group))
    for precision, batch, group in settings:
        evaluator = RetrievalEvaluator(args.k_test, 64, precision=precision, device=device, progress=False,
                                       itm_batch_size=batch, images_per_group=group)
        if precision not in first_metrics:  # an untimed warm-up run per precision (kernels, allocator)
            evaluator.evaluate(model, dataset)
        synchronize(device)
        tick = time.perf_counter()
        result = evaluator.evaluate(model, dataset)
        synchronize(device)
        total = time.perf_counter() - tick
        rerank = result.timings["itm_rerank_s"]
        same = first_metrics.setdefault(precision, result.metrics) == result.metrics
        rows.append({"precision": precision, "itm_batch_size": batch, "images_per_group": group, "total_s": total,
                     "itm_rerank_s": rerank, "pairs": result.stats["itm_pairs_this_rank"],
                     "pairs_per_s": result.stats["itm_pairs_this_rank"] / rerank, "recall_same": same})
        print(f"{precision:5s} itm_batch_size {batch:5d} images_per_group {group:4d}: re-rank {rerank:7.2f} s "
              f"({rows[-1]['pairs_per_s']:9.0f} pairs/s), total {total:7.2f} s, R@K as first: {same}", flush=True)
        if args.json:
            with open(args.json, "w", encoding="utf-8") as handle:
                json.dump({"vit": args.vit, "image_size": args.image_size, "images": args.images,
                           "k_test": args.k_test, "rows": rows}, handle, indent=1)
    return 0 if all(r["recall_same"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
