"""Run the toy task through the real Trainer (one plain process, or a rank under torchrun).

python toy_worker.py OUT_DIR [--stage N] [--precision P] [--batch B] [--epochs E] [--save_steps S]
    [--resume auto] [--kill_after_step K] [--kill_in_save K] [--noise F] [--lr LR] [--warmup_steps W]
    [--head_lr_scale S]
Writes OUT_DIR/result_rank{R}.pt: losses, consolidated state dict, final TrainState.
"""
import argparse
import os
import signal
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from toy_task import ToyTask  # noqa: E402

from easyretrieval.distributed import dist_info_from_env, exit_process, init_distributed  # noqa: E402
from easyretrieval.engine import checkpointing  # noqa: E402
from easyretrieval.engine.ds_config import DsParams, build_ds_config, load_ds_config  # noqa: E402
from easyretrieval.engine.export import consolidated_state_dict  # noqa: E402
from easyretrieval.engine.trainer import Trainer, TrainerArgs  # noqa: E402
from easyretrieval.distributed import shutdown_distributed  # noqa: E402
from easyretrieval.log import setup_logging  # noqa: E402


def main():
    setup_logging(int(os.environ.get("RANK", "0")))  # as the CLI does: messages through logging
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--stage", type=int, default=1)
    p.add_argument("--precision", default="fp32")
    p.add_argument("--config", default=None)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--gas", type=int, default=1)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--save_steps", type=int, default=0)
    p.add_argument("--keep_last", type=int, default=2)
    p.add_argument("--resume", default="")
    p.add_argument("--kill_after_step", type=int, default=0)
    p.add_argument("--kill_in_save", type=int, default=0)
    p.add_argument("--noise", type=float, default=0.0)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--warmup_steps", type=int, default=0)
    p.add_argument("--head_lr_scale", type=float, default=None)
    a = p.parse_args()

    info = dist_info_from_env()
    init_distributed(info, timeout_s=120)
    ds = build_ds_config(load_ds_config(a.config), DsParams(a.batch, a.gas, 0.0, a.precision, a.stage),
                         info.world_size)
    hooks = {}
    if a.kill_after_step:
        def after_step(engine, state={"n": 0}):
            state["n"] += 1
            if state["n"] == a.kill_after_step and info.rank == 0:
                os.kill(os.getpid(), signal.SIGKILL)
        hooks["after_step"] = after_step
    if a.kill_in_save:
        original = checkpointing.CheckpointManager.save

        def save(self, engine, global_step, client_state, rank_state, record=None):
            if global_step == a.kill_in_save:  # die after DeepSpeed wrote its files, before the marker
                engine.save_checkpoint(self.root, tag=checkpointing.TMP_PREFIX + checkpointing.checkpoint_name(
                    global_step), client_state=client_state, save_latest=False)
                os.kill(os.getpid(), signal.SIGKILL)
            return original(self, engine, global_step, client_state, rank_state, record)
        checkpointing.CheckpointManager.save = save
    task = ToyTask(a.batch, info.rank, info.world_size, noise=a.noise, hooks=hooks,
                    head_lr_scale=a.head_lr_scale)
    args = TrainerArgs(output_dir=a.out, max_epoch=a.epochs, init_lr=a.lr, min_lr=0.0, weight_decay=0.05,
                       save_steps=a.save_steps, keep_last=a.keep_last, resume=a.resume, seed=7, progress=False,
                       select_metric="r_mean", warmup_steps=a.warmup_steps, warmup_lr=0.0)
    result = Trainer(task, args, info, ds).fit()
    sd = consolidated_state_dict(result.engine)
    torch.save({"losses": task.losses, "lrs": task.lrs, "group_lrs": task.group_lrs, "state_dict": sd,
                "state": result.state,
                "best_path": result.best_path, "final_path": result.final_path},
               os.path.join(a.out, f"result_rank{info.rank}.pt"))


if __name__ == "__main__":
    main()
    shutdown_distributed()
    exit_process(0)
