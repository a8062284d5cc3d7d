"""The training loop: DeepSpeed engine, official per-epoch cosine LR, evaluation after every epoch, best-model
selection, exact resume and consolidated export. App-agnostic: everything app-specific comes from a TrainTask.

    engine = build_engine(model, ds_config, init_lr, weight_decay)
    result = Trainer(task, TrainerArgs(...), dist, ds_config).fit()
"""
import json
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

import torch

from easyretrieval.atomic_files import write_atomic
from easyretrieval.distributed import DistInfo, barrier
from easyretrieval.engine.best import BEST_FILE, adopt_best, best_files, run_dir_of_checkpoint, write_manifest
from easyretrieval.engine.checkpointing import CheckpointManager, resolve_resume
from easyretrieval.engine.curves import CURVES_FILE, default_curve_specs, read_steps, write_training_curves
from easyretrieval.engine.deepspeed_compat import no_cpu_shm_comm_op
from easyretrieval.engine.export import consolidated_state_dict, save_atomic
from easyretrieval.engine.rng import capture_rng_state, restore_rng_state, seed_everything
from easyretrieval.engine.run_log import RunLog, RunningMeans
from easyretrieval.engine.schedule import lr_at
from easyretrieval.engine.task import TrainTask
from easyretrieval.errors import UserError
from easyretrieval.log import get_logger

logger = get_logger()

# curves.png is redrawn after an epoch only when this long has passed since the last drawing (and always after
# the last epoch): a drawing costs ~1 s of matplotlib, which epochs of seconds (small data) would pay each time.
CURVES_MIN_INTERVAL_S = 60.0
BEST_DIR = "best"  # the best epoch's model as the task's save_pretrained folder (when it writes one)
FINAL_FILE = "checkpoint_final.pth"


@dataclass
class TrainerArgs:
    """What the Trainer needs besides the task: where it writes, the schedule, checkpoints, best-epoch
    selection. LRs are per optimizer step of the cosine schedule (cosine_lr), set once per epoch."""

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
    run_record: Optional[dict] = None  # JSON: what this run is (parameters, data); saved in every checkpoint
    app: str = ""  # the registered app name, saved in every checkpoint (`easyretrieval export` uses its layout)
    log_steps: int = 50
    seed: int = 42
    select_split: str = "val"  # the best epoch is the one with the highest select_split/select_metric
    select_metric: str = ""  # a metric the task's evaluate returns (the app names it); '' selects no best epoch
    export_best: bool = True  # when the metric improves: checkpoint_best.pth (fp32, the task's export_layout)
    # and the task's save_pretrained folder OUTPUT_DIR/best
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
    """What `Trainer.fit` returns: the final loop state, the DeepSpeed engine and the exported files."""

    state: TrainState
    engine: object
    best_path: Optional[str]  # the best epoch's weights; None when there is no best epoch or they are lost
    final_path: Optional[str]
    best_files: List[str] = field(default_factory=list)  # best_path and the task's results of that epoch


def build_engine(model, ds_config: dict, init_lr: float, weight_decay: float, param_groups=None):
    """deepspeed.initialize with torch AdamW (official optimizer) over the trainable parameters.

    param_groups: optimizer groups (`TrainTask.param_groups`); None = one group of every trainable parameter.
    A group's `lr_scale` (default 1) multiplies the LR that `set_lr` gives it.
    """
    import deepspeed

    if param_groups is None:
        param_groups = [{"params": [p for p in model.parameters() if p.requires_grad]}]
    groups = [dict(g, lr_scale=float(g.get("lr_scale", 1.0))) for g in param_groups if g["params"]]
    for group in groups:
        group["lr"] = init_lr * group["lr_scale"]
    optimizer = torch.optim.AdamW(groups, lr=init_lr, weight_decay=weight_decay)
    # no_cpu_shm_comm_op: deepspeed.initialize creates DeepSpeed's backend itself when torch.distributed was
    # initialised without it
    with no_cpu_shm_comm_op():
        engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, config=ds_config)
    return engine


def set_lr(engine, lr: float):
    """Every optimizer group's LR: `lr` times the group's lr_scale (1 when the group has none)."""
    for group in engine.optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


class Trainer:
    """The epoch loop over a TrainTask under DeepSpeed; every rank builds one and calls `fit` together.

    ds_config: the filled DeepSpeed config (engine.ds_config.build_ds_config). `fit` resumes when
    args.resume says so (UserError for a checkpoint of another world size or model), trains epoch by epoch
    (an epoch's micro batches cut to whole optimizer steps; UserError when there is none), evaluates after
    each epoch, exports the best and the final weights, and checkpoints at every epoch end (and every
    args.save_steps optimizer steps). Files in args.output_dir: log.txt, train_steps.jsonl, curves.png,
    checkpoints/, checkpoint_best.pth, best.json, best/ (when the task writes one), checkpoint_final.pth.
    """

    def __init__(self, task: TrainTask, args: TrainerArgs, dist: DistInfo, ds_config: dict):
        self.task = task
        self.args = args
        self.dist = dist
        self.ds_config = ds_config
        self.gas = int(ds_config["gradient_accumulation_steps"])
        self.checkpoints = CheckpointManager(os.path.join(args.output_dir, "checkpoints"), dist, args.keep_last,
                                             args.app)
        self.log = RunLog(args.output_dir, enabled=dist.is_main)
        self._curves_drawn_at = None  # time.monotonic() of the last curves.png

    # -- setup ---------------------------------------------------------------------------------------------
    def _build(self):
        seed_everything(self.args.seed)  # every rank builds the model official rank 0 would build
        model = self.task.build_model()
        engine = build_engine(model, self.ds_config, self.args.init_lr, self.args.weight_decay,
                              self.task.param_groups(model))
        seed_everything(self.args.seed + self.dist.rank)  # official: seed + rank for the training randomness
        return engine

    def _resume(self, engine, means):
        path = resolve_resume(self.args.resume, self.checkpoints.root)
        if path is None:
            if self.args.resume == "auto":
                logger.info("resume=auto: no checkpoint yet, starting fresh")
            return TrainState()
        client_state, rank_state = self.checkpoints.load(engine, path)
        state = TrainState(**client_state["trainer"])
        restore_rng_state(rank_state["rng"])
        means.load(rank_state["means"])
        self.task.load_rank_state(engine.module, rank_state["task"])
        if self.dist.is_main:
            self._rewrite_log(state.history)
            self.log.trim_steps(state.global_step)
            self._adopt_best(state, path)
        logger.info("resumed from %s: epoch %d, step %d, global step %d", path, state.epoch, state.step_in_epoch,
                    state.global_step)
        barrier()
        return state

    def _adopt_best(self, state, checkpoint):
        """Resumed from another run's folder: copy its best files of the checkpoint's best epoch here."""
        source = run_dir_of_checkpoint(checkpoint)
        out = self.args.output_dir
        if state.best_epoch is None or os.path.abspath(source) == os.path.abspath(out):
            return
        if best_files(out, state.best_epoch) is None and adopt_best(out, source, state.best_epoch):
            logger.info("best epoch %d so far: its weights and results copied from %s", state.best_epoch, source)

    def _best_files(self, state, warn):
        """The best epoch's files in output_dir ([] when there is none); warn: say when they are missing."""
        if state.best_epoch is None or not self.args.export_best:
            return []
        found = best_files(self.args.output_dir, state.best_epoch)
        if found is None and warn and self.dist.is_main:
            logger.warning("the weights of best epoch %d are not in %s (its %s is missing or of another epoch; see "
                           "best.json)", state.best_epoch, self.args.output_dir, BEST_FILE)
        return found or []

    def _rewrite_log(self, history):
        """log.txt as of the checkpoint: lines written after it (by the crashed run) are replayed."""
        write_atomic(self.log.path, "".join(json.dumps(record) + "\n" for record in history))

    def _save(self, engine, state, means):
        client_state = {"trainer": asdict(state), "epoch": state.epoch, "step_in_epoch": state.step_in_epoch}
        rank_state = {"rng": capture_rng_state(), "means": means.state(), "task": self.task.rank_state(engine.module)}
        self.checkpoints.save(engine, state.global_step, client_state, rank_state, self.args.run_record)

    def _export(self, engine, filename, about=None):
        """Consolidated fp32 weights as `filename` (the task's export_layout); with `about` (the best epoch)
        also as the task's save_pretrained folder OUTPUT_DIR/best, if the task writes one."""
        state_dict = consolidated_state_dict(engine)
        path = os.path.join(self.args.output_dir, filename)
        if self.dist.is_main:
            save_atomic(self.task.export_layout(state_dict), path)
            if about is not None:
                self.task.save_pretrained(state_dict, os.path.join(self.args.output_dir, BEST_DIR), about)
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
        files = self._best_files(state, warn=False)

        while state.epoch < args.max_epoch:
            epoch = state.epoch
            lr = self._lr(epoch, state.global_step)
            set_lr(engine, lr)
            if state.step_in_epoch == 0:
                means = RunningMeans()
            engine.train()
            stopped = self._train_epoch(engine, state, means, epoch, steps, epoch_steps, lr)
            if stopped:
                return FitResult(state, engine, files[0] if files else None, None, files)

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
                about = {"epoch": epoch, "global_step": state.global_step,
                         "selected_by": f"{args.select_split} {args.select_metric}", "metrics": state.best_metrics}
                self._export_best(engine, state, about)
            state.history.append(record)
            self.log.line(record)
            logger.info("epoch %d: %s", epoch, _format(record))
            self._write_curves(state, last_epoch=epoch + 1 == args.max_epoch)
            state.epoch, state.step_in_epoch = epoch + 1, 0
            self._save(engine, state, means)

        final_path = self._export(engine, FINAL_FILE) if args.export_final else None
        if state.best_epoch is not None:
            self.log.line({"best_epoch": state.best_epoch})
        files = self._best_files(state, warn=True)
        self.log.close()
        return FitResult(state, engine, files[0] if files else None, final_path, files)

    def _write_curves(self, state, last_epoch):
        """OUTPUT_DIR/curves.png from train_steps.jsonl and the epoch records (rank 0), after the last epoch and
        after any other once CURVES_MIN_INTERVAL_S have passed since the last drawing. A plot that fails is a
        warning: the run and its logs matter more than the picture."""
        now = time.monotonic()
        if not self.dist.is_main or not curves_due(self._curves_drawn_at, now, last_epoch):
            return
        self._curves_drawn_at = now
        steps = read_steps(self.log.steps_path)
        specs = self.task.curve_specs() or default_curve_specs(steps, self.args.select_split, self.args.select_metric)
        try:
            write_training_curves(os.path.join(self.args.output_dir, CURVES_FILE), specs, steps, state.history,
                                  title=f"{os.path.basename(os.path.abspath(self.args.output_dir))}, epoch {state.epoch}")
        except Exception as e:  # noqa: BLE001 - any plotting failure is reported the same way
            logger.warning("%s not written: %s: %s", CURVES_FILE, type(e).__name__, e)

    def _export_best(self, engine, state, about):
        """checkpoint_best.pth (and the best/ folder), the task's results of this epoch, then best.json naming
        them (written last)."""
        self._export(engine, BEST_FILE, about)
        names = [BEST_FILE] + [os.path.basename(p) for p in self.task.save_best_results(self.args.output_dir)]
        if os.path.isdir(os.path.join(self.args.output_dir, BEST_DIR)):
            names.append(BEST_DIR)
        if self.dist.is_main:
            write_manifest(self.args.output_dir, state.best_epoch, self.args.select_split, self.args.select_metric,
                           state.best_value, names)
        barrier()

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
        window = RunningMeans()  # the micro batches of the current optimizer step
        samples_per_step = self.ds_config.get("train_batch_size") or (  # micro batch x accumulation x ranks
            self.ds_config.get("train_micro_batch_size_per_gpu", 1) * self.gas * self.dist.world_size)
        tick = time.perf_counter()
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
            window.update(values)
            state.step_in_epoch = i + 1
            if progress is not None:
                progress.update(1)
                progress.set_postfix({k: f"{v:.3f}" for k, v in values.items() if k != "lr"}, refresh=False)
            if not boundary:
                continue
            state.global_step += 1
            self.task.after_optimizer_step(engine)
            now = time.perf_counter()
            self.log.step({"step": state.global_step, "epoch": epoch, **window.means(),
                           "samples_per_s": samples_per_step / max(now - tick, 1e-9)})
            window, tick = RunningMeans(), now
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


def curves_due(drawn_at: Optional[float], now: float, last_epoch: bool,
               min_interval_s: float = CURVES_MIN_INTERVAL_S) -> bool:
    """Whether curves.png is redrawn after this epoch: always after the last epoch and the first drawing,
    otherwise once `min_interval_s` seconds (time.monotonic) have passed since the drawing at `drawn_at`."""
    return last_epoch or drawn_at is None or now - drawn_at >= min_interval_s


def _format(values: dict) -> str:
    return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items())
