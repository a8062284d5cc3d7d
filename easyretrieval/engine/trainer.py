"""The training loop: DeepSpeed engine, official per-epoch cosine LR, evaluation after every epoch, best-model
selection, exact resume and consolidated export. App-agnostic: everything app-specific comes from a TrainTask.

    engine = build_engine(model, ds_config, init_lr, weight_decay)
    result = Trainer(task, TrainerArgs(...), dist, ds_config).fit()
"""
import contextlib
import logging
import os
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

import torch

from easyretrieval.distributed import DistInfo, barrier
from easyretrieval.engine.checkpointing import CheckpointManager, resolve_resume
from easyretrieval.engine.export import consolidated_state_dict, save_atomic
from easyretrieval.engine.rng import capture_rng_state, restore_rng_state, seed_everything
from easyretrieval.engine.run_log import RunLog, RunningMeans
from easyretrieval.engine.schedule import lr_at
from easyretrieval.engine.task import TrainTask
from easyretrieval.errors import UserError

logger = logging.getLogger("easyretrieval")

BEST_FILE = "checkpoint_best.pth"
FINAL_FILE = "checkpoint_final.pth"


@dataclass
class TrainerArgs:
    output_dir: str
    max_epoch: int
    init_lr: float
    min_lr: float = 0.0
    weight_decay: float = 0.05
    warmup_steps: int = 0  # linear LR warm-up over the first optimizer steps (0: none, as official retrieval)
    warmup_lr: float = 0.0  # LR of the first warm-up step
    save_steps: int = 0  # also checkpoint every this many optimizer steps (0: per epoch only)
    keep_last: int = 2  # resumable checkpoints kept on disk
    resume: str = ""  # '' | 'auto' | a checkpoint dir
    log_steps: int = 50
    seed: int = 42
    select_split: str = "val"  # the best epoch is the one with the highest select_split/select_metric
    select_metric: str = "r_mean"
    export_best: bool = True  # official checkpoint_best.pth (fp32, {'model': ...}) when the metric improves
    export_final: bool = True  # checkpoint_final.pth after the last epoch
    progress: bool = True
    stop_after_steps: Optional[int] = None  # tests: return after this many optimizer steps (a simulated stop)


@dataclass
class TrainState:
    """Everything about the loop's position that a resume needs (saved in every checkpoint)."""

    epoch: int = 0
    step_in_epoch: int = 0  # micro batches of `epoch` already trained
    global_step: int = 0  # optimizer steps so far
    best_epoch: Optional[int] = None
    best_value: Optional[float] = None
    best_metrics: Dict[str, Dict[str, float]] = field(default_factory=dict)
    history: List[dict] = field(default_factory=list)  # the log.txt records written so far


@dataclass
class FitResult:
    state: TrainState
    engine: object
    best_path: Optional[str]
    final_path: Optional[str]


@contextlib.contextmanager
def _scalar_safe_broadcast():
    """DeepSpeed's initial broadcasts (engine and ZeRO-3 Init) view each parameter as bytes, which fails on
    0-dim parameters (BLIP's `temp`). While the engine is built, they are broadcast as 1-element views of
    the same storage; their shape stays () as in the official state dict."""
    from deepspeed.runtime.engine import DeepSpeedEngine

    original = DeepSpeedEngine._broadcast_model

    def broadcast(self):
        scalars = [p for p in self.module.parameters() if p.dim() == 0]
        for p in scalars:
            p.data = p.data.reshape(1)
        try:
            original(self)
        finally:
            for p in scalars:
                p.data = p.data.reshape(())

    from deepspeed import comm
    from deepspeed.runtime.zero.partition_parameters import Init

    original_zero3 = Init._zero_init_param

    def zero_init_param(self, param):  # ZeRO-3: Init._zero_init_param with the same 1-element view
        if param.dim() != 0:
            return original_zero3(self, param)
        self._convert_to_deepspeed_param(param)
        group = self.get_partition_dp_group(param)
        src = 0 if comm.get_world_group() == group else comm.get_global_rank(group, 0)
        comm.broadcast(param.data.reshape(1).view(torch.uint8), src, group)
        param.partition()

    DeepSpeedEngine._broadcast_model = broadcast
    Init._zero_init_param = zero_init_param
    try:
        yield
    finally:
        DeepSpeedEngine._broadcast_model = original
        Init._zero_init_param = original_zero3


def build_engine(model, ds_config: dict, init_lr: float, weight_decay: float):
    """deepspeed.initialize with torch AdamW (official optimizer) over the trainable parameters."""
    import deepspeed

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=init_lr, weight_decay=weight_decay)
    with _scalar_safe_broadcast():
        engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, config=ds_config)
    return engine


def set_lr(engine, lr: float):
    for group in engine.optimizer.param_groups:
        group["lr"] = lr


class Trainer:
    def __init__(self, task: TrainTask, args: TrainerArgs, dist: DistInfo, ds_config: dict):
        self.task = task
        self.args = args
        self.dist = dist
        self.ds_config = ds_config
        self.gas = int(ds_config["gradient_accumulation_steps"])
        self.checkpoints = CheckpointManager(os.path.join(args.output_dir, "checkpoints"), dist, args.keep_last)
        self.log = RunLog(args.output_dir, enabled=dist.is_main)

    # -- setup ---------------------------------------------------------------------------------------------
    def _build(self):
        seed_everything(self.args.seed)  # every rank builds the model official rank 0 would build
        model = self.task.build_model()
        engine = build_engine(model, self.ds_config, self.args.init_lr, self.args.weight_decay)
        seed_everything(self.args.seed + self.dist.rank)  # official: seed + rank for the training randomness
        return engine

    def _resume(self, engine, means):
        path = resolve_resume(self.args.resume, self.checkpoints.root)
        if path is None:
            if self.args.resume == "auto" and self.dist.is_main:
                print("[easyretrieval] resume=auto: no checkpoint yet, starting fresh", flush=True)
            return TrainState()
        client_state, rank_state = self.checkpoints.load(engine, path)
        state = TrainState(**client_state["trainer"])
        restore_rng_state(rank_state["rng"])
        means.load(rank_state["means"])
        self.task.load_rank_state(engine.module, rank_state["task"])
        if self.dist.is_main:
            self._rewrite_log(state.history)
            print(f"[easyretrieval] resumed from {path}: epoch {state.epoch}, step {state.step_in_epoch}, "
                  f"global step {state.global_step}", flush=True)
        return state

    def _rewrite_log(self, history):
        """log.txt as of the checkpoint: lines written after it (by the crashed run) are replayed."""
        import json

        with open(self.log.path + ".part", "w", encoding="utf-8") as f:
            for record in history:
                f.write(json.dumps(record) + "\n")
        os.replace(self.log.path + ".part", self.log.path)

    def _save(self, engine, state, means):
        client_state = {"trainer": asdict(state), "epoch": state.epoch, "step_in_epoch": state.step_in_epoch}
        rank_state = {"rng": capture_rng_state(), "means": means.state(), "task": self.task.rank_state(engine.module)}
        self.checkpoints.save(engine, state.global_step, client_state, rank_state)

    def _export(self, engine, filename):
        state_dict = consolidated_state_dict(engine)
        path = os.path.join(self.args.output_dir, filename)
        if self.dist.is_main:
            save_atomic(self.task.export_layout(state_dict), path)
        barrier()
        return path

    # -- loop ----------------------------------------------------------------------------------------------
    def fit(self) -> FitResult:
        args = self.args
        engine = self._build()
        means = RunningMeans()
        state = self._resume(engine, means)
        steps = self.task.steps_per_epoch()
        epoch_steps = steps - steps % self.gas  # whole optimizer steps only (like drop_last)
        if epoch_steps <= 0:
            raise UserError(f"an epoch has {steps} micro batches, fewer than gradient_accumulation_steps={self.gas}")
        best_path = os.path.join(args.output_dir, BEST_FILE) if state.best_epoch is not None else None

        while state.epoch < args.max_epoch:
            epoch = state.epoch
            lr = self._lr(epoch, state.global_step)
            set_lr(engine, lr)
            if state.step_in_epoch == 0:
                means = RunningMeans()
            engine.train()
            stopped = self._train_epoch(engine, state, means, epoch, steps, epoch_steps, lr)
            if stopped:
                return FitResult(state, engine, best_path, None)

            train_stats = means.global_means()
            engine.eval()
            results = self.task.evaluate(engine, epoch)
            engine.train()
            record = {f"train_{k}": v for k, v in train_stats.items()}
            for split, metrics in results.items():
                record.update({f"{split}_{k}": float(v) for k, v in metrics.items()})
                self.log.scalars(split, metrics, epoch)
            record["epoch"] = epoch
            improved = self._update_best(state, results, epoch)
            if improved and args.export_best:
                best_path = self._export(engine, BEST_FILE)
            state.history.append(record)
            self.log.line(record)
            if self.dist.is_main:
                print(f"[easyretrieval] epoch {epoch}: " + _format(record), flush=True)
            state.epoch, state.step_in_epoch = epoch + 1, 0
            self._save(engine, state, means)

        final_path = self._export(engine, FINAL_FILE) if args.export_final else None
        if state.best_epoch is not None and self.dist.is_main:
            self.log.line({"best_epoch": state.best_epoch})
            print(f"[easyretrieval] best epoch {state.best_epoch} ({args.select_split} {args.select_metric} "
                  f"{state.best_value:.2f}); test of that epoch: {_format(state.best_metrics.get('test', {}))}",
                  flush=True)
        self.log.close()
        return FitResult(state, engine, best_path, final_path)

    def _lr(self, epoch, global_step):
        args = self.args
        return lr_at(epoch, global_step, args.max_epoch, args.init_lr, args.min_lr, args.warmup_steps, args.warmup_lr)

    def _train_epoch(self, engine, state, means, epoch, steps, epoch_steps, lr) -> bool:
        """Train from state.step_in_epoch to the end of the epoch; True when stop_after_steps stopped it."""
        args = self.args
        progress = None
        if args.progress and self.dist.is_main:
            from tqdm import tqdm

            progress = tqdm(total=epoch_steps, initial=state.step_in_epoch, desc=f"epoch {epoch}",
                            mininterval=2.0, dynamic_ncols=True)
        batches = self.task.train_batches(epoch, state.step_in_epoch)
        for i, batch in enumerate(batches, start=state.step_in_epoch):
            if i >= epoch_steps:
                break
            if 0 < args.warmup_steps and state.global_step <= args.warmup_steps:
                lr = self._lr(epoch, state.global_step)  # per optimizer step while warming up
                set_lr(engine, lr)
            out = self.task.training_step(engine, batch, epoch, i, steps)
            engine.backward(out["loss"])
            boundary = engine.is_gradient_accumulation_boundary()
            engine.step()
            logged = {k: v for k, v in out.items() if k != "loss"} or out  # the task's parts, else the loss
            values = {k: float(v.detach().item()) if torch.is_tensor(v) else float(v) for k, v in logged.items()}
            values["lr"] = lr
            means.update(values)
            state.step_in_epoch = i + 1
            if progress is not None:
                progress.update(1)
                progress.set_postfix({k: f"{v:.3f}" for k, v in values.items() if k != "lr"}, refresh=False)
            if not boundary:
                continue
            state.global_step += 1
            self.task.after_optimizer_step(engine)
            if state.global_step % args.log_steps == 0:
                self.log.scalars("train", values, state.global_step)
            if args.save_steps and state.global_step % args.save_steps == 0 and i + 1 < epoch_steps:
                self._save(engine, state, means)
            if args.stop_after_steps is not None and state.global_step >= args.stop_after_steps:
                if progress is not None:
                    progress.close()
                return True
        if progress is not None:
            progress.close()
        if state.step_in_epoch < epoch_steps:
            raise RuntimeError(f"train_batches of epoch {epoch} ended after {state.step_in_epoch} of "
                               f"{epoch_steps} micro batches")
        return False

    def _update_best(self, state, results, epoch) -> bool:
        metrics = results.get(self.args.select_split)
        if not metrics or self.args.select_metric not in metrics:
            return False
        value = float(metrics[self.args.select_metric])
        if state.best_value is not None and value <= state.best_value:
            return False
        state.best_epoch, state.best_value = epoch, value
        state.best_metrics = {split: dict(m) for split, m in results.items()}
        return True


def _format(values: dict) -> str:
    return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items())
