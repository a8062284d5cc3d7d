"""What an app hands the engine: a TrainTask (build the model, iterate data, one step, evaluate, export).

The engine (trainer, checkpoints, export) only talks to this interface, so it never imports an app.
Every method is called on every rank.
"""
from typing import Dict, Iterable, List, Mapping, Optional

import torch

from easyretrieval.engine.curves import CurveSpec


class TrainTask:
    """Subclass and implement the abstract methods; the defaults suit a plain model."""

    def build_model(self) -> torch.nn.Module:
        """The model, built the same way on every rank (weights loaded, momentum copies made)."""
        raise NotImplementedError

    def param_groups(self, model: torch.nn.Module) -> List[dict]:
        """Optimizer groups over the trainable parameters: dicts of `params` and an optional `lr_scale`
        (the group's LR is the schedule's LR times lr_scale). Default: one group, as official BLIP."""
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]

    def steps_per_epoch(self) -> int:
        """Micro batches per epoch on this rank (equal on every rank)."""
        raise NotImplementedError

    def train_batches(self, epoch: int, start_step: int) -> Iterable:
        """The micro batches of `epoch` from index `start_step` on (mid-epoch resume skips the others
        without loading them); the order must be a function of (seed, epoch) only."""
        raise NotImplementedError

    def training_step(self, engine, batch, epoch: int, step: int, steps_per_epoch: int) -> Dict[str, torch.Tensor]:
        """Forward one micro batch through `engine`; returns {'loss': scalar to backward, other scalars to log}."""
        raise NotImplementedError

    def after_optimizer_step(self, engine) -> None:
        """Called after each optimizer step (e.g. clamp a parameter's fp32 master copy)."""

    def evaluate(self, engine, epoch: int) -> Dict[str, Mapping[str, float]]:
        """{split: {metric: value}}, equal on every rank; {} when there is nothing to evaluate."""
        return {}

    def save_best_results(self, output_dir: str) -> List[str]:
        """After `evaluate` gave a new best epoch: write that epoch's results (e.g. per-split metrics and
        rankings) into output_dir; returns the paths written (rank 0; [] elsewhere)."""
        return []

    def curve_specs(self) -> Optional[List[CurveSpec]]:
        """The panels of OUTPUT_DIR/curves.png, drawn after epochs from the logged step lines (the keys
        `training_step` returns, and lr) and epoch records (f"{split}_{metric}" of `evaluate`). None: every
        logged loss, the learning rate and the metric that selects the best epoch."""
        return None

    def rank_state(self, model) -> dict:
        """Rank-local state an exact resume needs beyond DeepSpeed's checkpoint (e.g. fp32 EMA shadows)."""
        return {}

    def load_rank_state(self, model, state: dict) -> None:
        """Restore what `rank_state` returned."""

    def export_layout(self, state_dict: Dict[str, torch.Tensor]) -> object:
        """The object saved as an exported checkpoint (checkpoint_best.pth, checkpoint_final.pth) from the
        consolidated fp32 `state_dict` (parameters in their parameters' shapes). Default: the state dict."""
        return state_dict

    def save_pretrained(self, state_dict: Dict[str, torch.Tensor], folder: str, about: dict) -> None:
        """Write the best epoch's consolidated fp32 weights as a self-describing model folder (rank 0 only;
        `about`: epoch, step and metrics of that epoch). Default: no folder."""
