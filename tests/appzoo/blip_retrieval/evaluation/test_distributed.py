"""2 CPU ranks (torchrun, gloo) give the single-process results, as a plain model and ZeRO-2 / ZeRO-3 engines,
and each rank holds only its share of the image embeddings."""
import json
import os
import socket
import sys

import numpy as np
import process_launch
import pytest

from appzoo.blip_retrieval.evaluation import RetrievalEvaluator
from eval_fixtures import make_dataset, make_model, make_tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def two_rank_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dist")
    root = str(folder / "gallery")
    dataset = make_dataset(root, 21, seed=4)  # 21 images: uneven slices of 10 and 11
    tokenizer = make_tokenizer(str(folder))
    out = folder / "out"
    out.mkdir()
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([HERE, os.environ.get("PYTHONPATH", "")]))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(port), os.path.join(HERE, "eval_worker.py"), str(out), root, str(folder / "vocab.txt"), "6"]
    proc = process_launch.run(cmd, 600, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    single = RetrievalEvaluator(k_test=6, batch_size=4, progress=False).evaluate(make_model(tokenizer, seed=11), dataset)
    return out, single


@pytest.mark.parametrize("kind", ["plain", "zero2", "zero3"])
def test_two_ranks_equal_single_process(two_rank_run, kind):
    out, single = two_rank_run
    ranked = np.load(out / f"{kind}.npz")
    np.testing.assert_array_equal(ranked["i2t_index"], single.i2t.index)
    np.testing.assert_array_equal(ranked["t2i_index"], single.t2i.index)
    np.testing.assert_allclose(ranked["i2t_score"], single.i2t.score, rtol=0, atol=1e-5)
    np.testing.assert_allclose(ranked["t2i_score"], single.t2i.score, rtol=0, atol=1e-5)
    for rank in (0, 1):
        with open(out / f"{kind}_stats_rank{rank}.json", encoding="utf-8") as handle:
            assert json.load(handle)["metrics"] == pytest.approx(single.metrics)


def test_feature_memory_per_rank_does_not_grow_with_ranks(two_rank_run):
    out, single = two_rank_run
    per_rank = []
    for rank in (0, 1):
        with open(out / f"plain_stats_rank{rank}.json", encoding="utf-8") as handle:
            per_rank.append(json.load(handle)["stats"]["image_embeds_bytes_this_rank"])
    whole = single.stats["image_embeds_bytes_this_rank"]
    per_image = whole // single.stats["num_images"]
    assert per_rank == [10 * per_image, 11 * per_image]  # each rank only its slice; together = one copy
    assert sum(per_rank) == whole
