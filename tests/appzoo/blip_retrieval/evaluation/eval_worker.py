"""One rank of the multi-rank evaluation tests (started with torchrun by test_distributed.py).

argv: out_dir gallery_root vocab k_test. Evaluates the same seeded tiny model (a) as a plain module and
(b) inside ZeRO-2 and ZeRO-3 DeepSpeed engines, then checks that the engine still trains; rank 0 writes the
rankings; every rank writes its stats.
"""
import json
import os
import sys

import numpy as np
import torch

from easyretrieval.distributed import dist_info_from_env, exit_process, init_distributed

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from eval_fixtures import IMAGE_SIZE, make_model  # noqa: E402

from appzoo.blip_retrieval.data.datasets import RetrievalEvalDataset  # noqa: E402
from appzoo.blip_retrieval.data.transforms import create_transform  # noqa: E402
from appzoo.blip_retrieval.evaluation import RetrievalEvaluator  # noqa: E402
from appzoo.blip_retrieval.model.tokenizer import create_tokenizer  # noqa: E402
from easyretrieval.distributed import shutdown_distributed  # noqa: E402


def zero_engine(model, stage):
    from easyretrieval.engine.trainer import build_engine

    config = {"train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 1, "train_batch_size": 4,
              "zero_optimization": {"stage": stage, "stage3_param_persistence_threshold": 0},
              "steps_per_print": 10 ** 9}
    return build_engine(model, config, init_lr=1e-4, weight_decay=0.05)


def main(out_dir, root, vocab, k_test):
    info = dist_info_from_env()
    init_distributed(info, timeout_s=120)
    tokenizer = create_tokenizer(vocab)
    dataset = RetrievalEvalDataset(os.path.join(root, "ann.json"), os.path.join(root, "images"),
                                   create_transform(IMAGE_SIZE, train=False))
    evaluator = RetrievalEvaluator(k_test=k_test, batch_size=4, dist=info, progress=False, timeout_s=120,
                                   itm_batch_size=5, images_per_group=2)
    results = {"plain": evaluator.evaluate(make_model(tokenizer, seed=11), dataset)}
    results["zero2"] = evaluator.evaluate(zero_engine(make_model(tokenizer, seed=11), 2), dataset)
    engine = zero_engine(make_model(tokenizer, seed=11), 3)
    assert any(hasattr(p, "ds_id") for p in engine.module.parameters())
    results["zero3"] = evaluator.evaluate(engine, dataset)
    # The engine still trains after evaluation (hooks and partitions restored).
    engine.train()
    images = torch.stack([dataset[i][0] for i in range(2)])
    loss_ita, loss_itm = engine(images, dataset.text[:2], 0.4, torch.tensor([0, 1]))
    engine.backward(loss_ita + loss_itm)
    engine.step()
    assert engine.module.training
    for name, result in results.items():
        with open(os.path.join(out_dir, f"{name}_stats_rank{info.rank}.json"), "w", encoding="utf-8") as handle:
            json.dump({"stats": result.stats, "metrics": result.metrics}, handle)
        if info.rank == 0:
            np.savez(os.path.join(out_dir, f"{name}.npz"), i2t_index=result.i2t.index, i2t_score=result.i2t.score,
                     t2i_index=result.t2i.index, t2i_score=result.t2i.score)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
    shutdown_distributed()
    exit_process(0)
