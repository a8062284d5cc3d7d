"""The engine with a real DeepSpeed engine: ZeRO stages vs one process, exact resume after SIGKILL (also
during a save), keep_last, offline export, and two torchrun "nodes" on 127.0.0.1."""
import os

import pytest
import torch

from engine_launch import load_result, run_toy, run_toy_two_nodes
from toy_task import ToyModel

from easyretrieval.engine.checkpointing import TMP_PREFIX, list_complete
from easyretrieval.engine.export import consolidate_checkpoint, export_command
from easyretrieval.engine.schedule import lr_at

# The toy task names no app: exported checkpoints hold the bare state dict (TrainTask.export_layout).
TRAINABLE = ("net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias")
FROZEN = ("net_m.0.weight", "net_m.0.bias", "net_m.2.weight", "net_m.2.bias")


def assert_same_tensors(a, b, keys, atol):
    for key in keys:
        torch.testing.assert_close(a[key], b[key], atol=atol, rtol=0, msg=lambda m: f"{key}: {m}")


@pytest.fixture(scope="module")
def single_process(tmp_path_factory):
    """fp32, no ZeRO, one process with the global batch (2 ranks x 4)."""
    out = tmp_path_factory.mktemp("single")
    run_toy(out, "--stage", 0, "--batch", 8, nproc=1)
    return load_result(out)


@pytest.fixture(scope="module")
def zero_run(tmp_path_factory):
    """zero_run(stage): the output folder of one 2-rank run per ZeRO stage (batch 4 per rank, 2 epochs), shared
    by the tests that read it."""
    runs = {}

    def run(stage):
        if stage not in runs:
            out = tmp_path_factory.mktemp(f"zero{stage}")
            run_toy(out, "--stage", stage, "--batch", 4)
            runs[stage] = out
        return runs[stage]

    return run


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_zero_stage_matches_single_process(zero_run, single_process, stage):
    out = zero_run(stage)
    result = load_result(out)
    assert len(result["losses"]) == len(single_process["losses"]) == 16
    torch.testing.assert_close(torch.tensor(result["losses"]), torch.tensor(single_process["losses"]),
                               atol=1e-5, rtol=1e-5)
    assert result["losses"][-1] < 0.5 * result["losses"][0]  # it learns
    assert_same_tensors(result["state_dict"], single_process["state_dict"], TRAINABLE + FROZEN, atol=1e-5)
    initial = torch.load(os.path.join(out, "checkpoint_best.pth"), weights_only=False)
    assert set(initial) == set(result["state_dict"])


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """ZeRO-3, 2 ranks, random noise in every step (RNG state matters), checkpoint every 3 steps."""
    out = tmp_path_factory.mktemp("uninterrupted")
    run_toy(out, "--stage", 3, "--save_steps", 3, "--noise", 0.1)
    return out


def _assert_same_run(out, reference):
    for rank in (0, 1):
        a, b = load_result(out, rank), load_result(reference, rank)
        assert a["losses"] == b["losses"]
        assert_same_tensors(a["state_dict"], b["state_dict"], list(b["state_dict"]), atol=0)
    with open(os.path.join(out, "log.txt")) as f, open(os.path.join(reference, "log.txt")) as g:
        assert f.read() == g.read()


def test_sigkill_during_a_save_then_resume_is_exact(tmp_path, uninterrupted):
    """SIGKILL mid-epoch, inside the save of step 6 (DeepSpeed's files written, no marker yet): the checkpoint
    of step 3 stays the latest; resume=auto continues from it exactly and removes the half-written save.
    (A SIGKILL between saves leaves the same state: the app's resume test covers it with real data.)"""
    killed = run_toy(tmp_path, "--stage", 3, "--save_steps", 3, "--noise", 0.1, "--kill_in_save", 6, check=False)
    assert killed.returncode != 0
    root = os.path.join(tmp_path, "checkpoints")
    assert any(name.startswith(TMP_PREFIX) for name in os.listdir(root))  # the half-written save
    assert [step for step, _ in list_complete(root)] == [3]
    resumed = run_toy(tmp_path, "--stage", 3, "--save_steps", 3, "--noise", 0.1, "--resume", "auto")
    assert "resumed from" in resumed.stdout + resumed.stderr
    assert not any(name.startswith(TMP_PREFIX) for name in os.listdir(root))
    _assert_same_run(tmp_path, uninterrupted)


def test_keep_last_bounds_checkpoints(uninterrupted):
    steps = [step for step, _ in list_complete(os.path.join(uninterrupted, "checkpoints"))]
    assert steps == [15, 16]  # keep_last=2 of 3, 6, 8 (epoch end), 9, 12, 15, 16 (epoch end)


@pytest.mark.parametrize("stage", [1, 3])
def test_export_from_checkpoint_equals_live_weights(tmp_path, zero_run, stage):
    out = zero_run(stage)
    live = load_result(out)["state_dict"]
    output = os.path.join(tmp_path, "exported.pth")
    assert export_command([str(out), "--output", output]) == 0
    exported = torch.load(output, weights_only=False)
    assert list(exported) == list(live)
    assert_same_tensors(exported, live, list(live), atol=0)
    final = torch.load(os.path.join(out, "checkpoint_final.pth"), weights_only=False)
    assert_same_tensors(final, live, list(live), atol=0)
    step_dir = list_complete(os.path.join(out, "checkpoints"))[-1][1]
    assert_same_tensors(consolidate_checkpoint(step_dir), live, list(live), atol=0)


def test_two_nodes_train_like_one_node_with_two_ranks(tmp_path, uninterrupted):
    """Two one-rank torchrun "nodes" reproduce the one-node 2-rank ZeRO-3 run bit for bit."""
    run_toy_two_nodes(tmp_path, "--stage", 3, "--save_steps", 3, "--noise", 0.1)
    _assert_same_run(tmp_path, uninterrupted)


def test_warmup_sets_the_lr_of_every_step_and_resumes_exactly(tmp_path):
    """Warm-up over 12 optimizer steps spans epochs 0-1 (8 steps an epoch, 2 epochs); a run killed in the
    warm-up and resumed takes the same LRs and losses as an uninterrupted one."""
    full, killed = tmp_path / "full", tmp_path / "killed"
    run_toy(full, "--stage", 1, "--warmup_steps", 12, "--save_steps", 3, "--noise", 0.1)
    reference = load_result(full)
    expected = [lr_at(step // 8, step, 2, 0.05, 0.0, 12, 0.0) for step in range(16)]
    assert reference["lrs"] == pytest.approx(expected, rel=1e-12, abs=0)
    assert reference["lrs"][0] == 0.0 and reference["lrs"][12] == pytest.approx(0.025)  # epoch 1's cosine
    proc = run_toy(killed, "--stage", 1, "--warmup_steps", 12, "--save_steps", 3, "--noise", 0.1,
                   "--kill_after_step", 5, check=False)
    assert proc.returncode != 0
    run_toy(killed, "--stage", 1, "--warmup_steps", 12, "--save_steps", 3, "--noise", 0.1, "--resume", "auto")
    resumed = load_result(killed)
    assert resumed["lrs"] == reference["lrs"] and resumed["losses"] == reference["losses"]


def test_a_group_lr_scale_scales_that_groups_lr_every_step(tmp_path):
    """The task's optimizer groups: net.2 at lr_scale 0.5 follows the schedule at half the LR; at lr_scale 0
    it never moves (weight decay included), while the rest trains."""
    half, frozen = tmp_path / "half", tmp_path / "frozen"
    run_toy(half, "--stage", 1, "--head_lr_scale", 0.5, "--warmup_steps", 4)
    lrs = load_result(half)["group_lrs"]
    assert len(lrs) == 16 and all(len(step) == 2 for step in lrs)
    assert [b for _, b in lrs] == pytest.approx([0.5 * a for a, _ in lrs], rel=1e-12, abs=0)
    assert [a for a, _ in lrs] == pytest.approx([lr_at(s // 8, s, 2, 0.05, 0.0, 4, 0.0) for s in range(16)])
    run_toy(frozen, "--stage", 1, "--head_lr_scale", 0)
    result = load_result(frozen)
    torch.manual_seed(7)  # the Trainer's seed_everything(seed=7) before build_model
    initial = ToyModel().state_dict()
    assert_same_tensors(result["state_dict"], initial, ("net.2.weight", "net.2.bias"), atol=0)
    assert not torch.equal(result["state_dict"]["net.0.weight"], initial["net.0.weight"])
