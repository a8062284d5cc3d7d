"""Run blip_retrieval train mode through the real app wiring, with test-only controls.

python train_worker.py OUT_DIR [--stage N] [--precision P] [--steps K] [--epochs E] [--save_steps S]
    [--resume auto] [--kill_after_step K] [--n_train N] [--set name=value ...]
Writes OUT_DIR/result_rank{R}.pt: per-step losses (mean over ranks), consolidated state dict, TrainState.
"""
import argparse
import os
import signal

import torch
import torch.distributed as dist

from appzoo.blip_retrieval.app import BlipRetrievalApp
from easyretrieval.app import RunContext
from easyretrieval.distributed import dist_info_from_env
from easyretrieval.engine.export import consolidated_state_dict
from easyretrieval.distributed import exit_process, shutdown_distributed  # noqa: E402
from easyretrieval.log import setup_logging  # noqa: E402

TINY = {
    "dataset": "synthetic", "vit": "tiny", "tokenizer": "build", "image_size": 32, "queue_size": 32,
    "batch_size_train": 8, "batch_size_test": 32, "k_test": 8, "num_workers": 0, "init_lr": 1e-3,
}


class SubsetApp(BlipRetrievalApp):
    """The app with the training set cut to its first n_train pairs (small tests)."""

    n_train = None

    def build_dataset(self, split):
        dataset = super().build_dataset(split)
        if split == "train" and self.n_train:
            dataset.annotation = dataset.annotation[: self.n_train]
        return dataset


def main(argv=None):
    setup_logging(int(os.environ.get("RANK", "0")))  # as the CLI does: messages through logging
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--stage", type=int, default=1)
    p.add_argument("--precision", default="fp32")
    p.add_argument("--steps", type=int, default=0)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--save_steps", type=int, default=0)
    p.add_argument("--resume", default="")
    p.add_argument("--kill_after_step", type=int, default=0)
    p.add_argument("--n_train", type=int, default=0)
    p.add_argument("--config", default=None, help="DeepSpeed JSON (default: the built-in zero1)")
    p.add_argument("--set", nargs="*", default=[], action="extend")
    a = p.parse_args(argv)

    raw = dict(TINY, zero_stage=a.stage, precision=a.precision, max_epoch=a.epochs, save_steps=a.save_steps,
               resume=a.resume, synthetic_dir=os.environ["SYNTHETIC_DIR"])
    raw.update(kv.split("=", 1) for kv in a.set)
    config = BlipRetrievalApp.schema.resolve(raw)
    info = dist_info_from_env()
    SubsetApp.n_train = a.n_train
    app = SubsetApp(config, RunContext(mode="train", output_dir=a.out, seed=42, deepspeed_config=a.config,
                                              dist=info))
    trainer = app.build_trainer()
    if a.steps:
        trainer.args.stop_after_steps = a.steps
    trainer.args.progress = False
    task = trainer.task
    losses, parts = [], []  # parts: this rank's (loss_ita, loss_itm) per step
    step_fn, after_fn = task.training_step, task.after_optimizer_step

    def training_step(engine, batch, epoch, step, steps_per_epoch):
        out = step_fn(engine, batch, epoch, step, steps_per_epoch)
        mean = out["loss"].detach().clone()
        if dist.get_world_size() > 1:
            dist.all_reduce(mean)
            mean /= dist.get_world_size()
        losses.append(float(mean))
        parts.append((float(out["loss_ita"]), float(out["loss_itm"])))
        return out

    def after_optimizer_step(engine, count=[0]):
        after_fn(engine)
        count[0] += 1
        if a.kill_after_step and count[0] == a.kill_after_step and info.rank == 0:
            os.kill(os.getpid(), signal.SIGKILL)

    task.training_step, task.after_optimizer_step = training_step, after_optimizer_step
    rank_state, load_rank_state = task.rank_state, task.load_rank_state
    task.rank_state = lambda model: dict(rank_state(model), test_losses=list(losses))
    task.load_rank_state = lambda model, s: (load_rank_state(model, s), losses.extend(s["test_losses"]))
    result = trainer.fit()
    state_dict = consolidated_state_dict(result.engine)
    torch.save({"losses": losses, "state_dict": state_dict, "state": result.state,
                "momentum_shadow": result.engine.module.momentum_state_dict(), "parts": parts},
               os.path.join(a.out, f"result_rank{info.rank}.pt"))


if __name__ == "__main__":
    main()
    shutdown_distributed()
    exit_process(0)
