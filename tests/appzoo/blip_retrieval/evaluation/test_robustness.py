"""Skipped (unreadable) images count as misses and are reported; a hung rank fails at the configured collective
timeout."""
import json
import os
import socket
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from appzoo.blip_retrieval.data.datasets import RetrievalEvalDataset
from appzoo.blip_retrieval.data.transforms import create_transform
from appzoo.blip_retrieval.components import format_recall
from appzoo.blip_retrieval.evaluation import RetrievalEvaluator
from appzoo.blip_retrieval.evaluation.comm import EvalComm
from eval_fixtures import IMAGE_SIZE, make_model, write_gallery


def test_skipped_image_is_never_retrieved_and_counts_as_miss(tokenizer, tmp_path, capsys):
    ann = write_gallery(str(tmp_path), 8, seed=3)
    with open(tmp_path / "images" / "img_0002.jpg", "wb") as handle:
        handle.write(b"not a jpeg")
    dataset = RetrievalEvalDataset(ann, str(tmp_path / "images"), create_transform(IMAGE_SIZE, train=False),
                                   skip_bad_images=True)
    result = RetrievalEvaluator(k_test=100, batch_size=3, progress=True).evaluate(make_model(tokenizer), dataset)
    assert result.stats["missing_images"] == 1
    assert not (result.t2i.index == 2).any() and result.t2i.index.shape[1] == 7  # k clipped to readable images
    assert (result.i2t.index[2] == -1).all()
    # Its captions can never be retrieved: at most (texts - its captions) / texts of image queries succeed.
    own = len(dataset.img2txt[2])
    assert result.metrics["img_r10"] <= 100.0 * (len(dataset.text) - own) / len(dataset.text) + 1e-9
    assert result.metrics["txt_r10"] <= 100.0 * 7 / 8 + 1e-9
    assert "ITM re-rank" in capsys.readouterr().err  # the progress bar ran


def test_skipped_images_are_named_in_the_result_and_metrics_file(tokenizer, tmp_path):
    ann = write_gallery(str(tmp_path), 5, seed=4)
    with open(tmp_path / "images" / "img_0003.jpg", "wb") as handle:
        handle.write(b"not a jpeg")
    dataset = RetrievalEvalDataset(ann, str(tmp_path / "images"), create_transform(IMAGE_SIZE, train=False),
                                   skip_bad_images=True)
    evaluator = RetrievalEvaluator(k_test=4, batch_size=2, progress=False)
    result = evaluator.evaluate(make_model(tokenizer), dataset)
    assert result.skipped == {"count": 1, "of": 5, "files": ["img_0003.jpg"]}
    with open(evaluator.save(result, str(tmp_path / "out"), "val")["metrics.json"], encoding="utf-8") as handle:
        saved = json.load(handle)
    assert saved["skipped_images"] == 1 and saved["skipped_image_files"] == ["img_0003.jpg"]
    assert saved["r_mean"] == result.metrics["r_mean"]
    line = format_recall("val", result.metrics, result.skipped).splitlines()[-1]
    assert line.startswith("val: 1 of 5 images skipped as unreadable (img_0003.jpg)")


def _hang_worker(rank, port, results):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    comm = EvalComm(timeout_s=3)
    try:
        if rank == 0:
            try:
                comm.gather_rows(torch.ones(2, 3))
                results[0] = "returned"
            except Exception as e:  # noqa: BLE001 - the timeout's error type differs between versions
                results[0] = f"raised {type(e).__name__}"
            results["raised_at"] = time.monotonic()  # CLOCK_MONOTONIC: one clock for both processes
        else:
            time.sleep(20)  # a rank that never joins (the default timeout would hang for 30 minutes)
            results["woke_at"] = time.monotonic()
    finally:
        dist.destroy_process_group()


def test_collective_timeout_fails_a_hung_gather():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    results = mp.Manager().dict()
    mp.spawn(_hang_worker, args=(port, results), nprocs=2, join=True)
    assert results[0].startswith("raised"), results[0]
    # It failed by the timeout, not because the late rank left the group.
    assert results["raised_at"] < results["woke_at"]
