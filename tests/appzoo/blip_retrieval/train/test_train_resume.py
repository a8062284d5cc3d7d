"""blip_retrieval exact resume and export, 2 CPU ranks under ZeRO-3: a run SIGKILLed mid-epoch and resumed
with resume=auto ends with the same weights, queues and metrics; the exported fp32 checkpoint evaluates
to the same scores through `--mode evaluate pretrained=`."""
import json
import os
import sys

import process_launch
import pytest
import torch

from train_launch import env_for, load_result, run_worker

ARGS = ("--stage", 3, "--epochs", 2, "--n_train", 128, "--save_steps", 3)  # 8 steps per epoch


@pytest.fixture(scope="module")
def uninterrupted(synthetic, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    run_worker(synthetic, out, *ARGS)
    return out


def _log(out):
    with open(os.path.join(out, "log.txt")) as f:
        return [json.loads(line) for line in f]


def test_sigkill_mid_epoch_then_resume_auto_is_exact(synthetic, tmp_path, uninterrupted):
    # With loader workers here (none in the uninterrupted run): augmentations are seeded per sample.
    workers = ("--set", "num_workers=2", "persistent_workers=false")
    killed = run_worker(synthetic, tmp_path, *ARGS, "--kill_after_step", 5, *workers, check=False)
    assert killed.returncode != 0
    run_worker(synthetic, tmp_path, *ARGS, "--resume", "auto", *workers)
    for rank in (0, 1):
        got, ref = load_result(tmp_path, rank), load_result(uninterrupted, rank)
        assert got["losses"] == ref["losses"]
        for key, value in ref["state_dict"].items():  # weights, momentum encoders and queues
            assert torch.equal(got["state_dict"][key], value), key
    assert _log(tmp_path) == _log(uninterrupted)
    # train_steps.jsonl: the killed run's lines after its checkpoint (steps 4, 5) are replaced, not doubled
    got, ref = _steps(tmp_path), _steps(uninterrupted)
    assert [s["step"] for s in got] == list(range(1, 17))
    assert [_without_speed(s) for s in got] == [_without_speed(s) for s in ref]


def _steps(out):
    with open(os.path.join(out, "train_steps.jsonl")) as f:
        return [json.loads(line) for line in f]


def _without_speed(record):
    return {k: v for k, v in record.items() if k != "samples_per_s"}


def test_exported_weights_evaluate_identically(synthetic, tmp_path, uninterrupted):
    synthetic_dir, vocab = synthetic
    exported = os.path.join(tmp_path, "exported.pth")
    exported_run = process_launch.run([sys.executable, "-m", "easyretrieval.cli", "export", str(uninterrupted),
                                       "--output", exported], 300, env=env_for(synthetic_dir))
    assert exported_run.returncode == 0, exported_run.stderr[-4000:]
    final = torch.load(os.path.join(uninterrupted, "checkpoint_final.pth"), weights_only=False)["model"]
    state = torch.load(exported, weights_only=False)["model"]
    assert list(state) == list(final) and all(torch.equal(state[k], final[k]) for k in final)
    params = (f"dataset=synthetic synthetic_dir={synthetic_dir} vit=tiny image_size=32 queue_size=32 "
              f"tokenizer={vocab} pretrained={exported} k_test=8 batch_size_test=32 num_workers=0")
    proc = process_launch.run([sys.executable, "-m", "easyretrieval.cli", "--app", "blip_retrieval", "--mode",
                               "evaluate", "--output_dir", str(tmp_path / "eval"), "--user_defined_parameters", params],
                              300, env=env_for(synthetic_dir))
    assert proc.returncode == 0, proc.stderr[-4000:]
    last = [record for record in _log(uninterrupted) if "epoch" in record][-1]
    for split in ("val", "test"):
        with open(os.path.join(tmp_path, "eval", f"{split}_metrics.json")) as f:
            metrics = json.load(f)
        metrics = metrics.get("metrics", metrics)
        for key in ("txt_r1", "txt_r5", "txt_r10", "img_r1", "img_r5", "img_r10", "r_mean"):
            assert metrics[key] == pytest.approx(last[f"{split}_{key}"], abs=1e-9), (split, key)
    assert "text retrieval  R@1" in proc.stdout
