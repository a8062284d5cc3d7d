"""OUTPUT_DIR/curves.png: the run's logged scalars drawn after epochs (rank 0; when: Trainer._write_curves).

What to draw is a list of `CurveSpec`s, one panel each, naming logged keys: per step (train_steps.jsonl
lines, x = optimizer step) or per epoch (log.txt records, x = epoch). The task says which (it knows its
metric names); the default draws every logged loss, the learning rate and the metric that selects the best
epoch. The engine knows no metric names of its own.
"""
import json
import os
from dataclasses import dataclass
from typing import Dict, List, Sequence

CURVES_FILE = "curves.png"
_NOT_LOSSES = ("step", "epoch", "lr", "samples_per_s")


@dataclass
class CurveSpec:
    """One panel: `keys` of the step lines (per="step") or of the epoch records (per="epoch")."""

    title: str
    keys: Sequence[str]
    per: str = "step"
    log_y: bool = False

    def __post_init__(self):
        if self.per not in ("step", "epoch"):
            raise ValueError(f"CurveSpec.per must be 'step' or 'epoch', got {self.per!r}")


def default_curve_specs(steps: List[dict], select_split: str, select_metric: str) -> List[CurveSpec]:
    """Every numeric step key but the bookkeeping ones (losses), the learning rate, and the selection metric."""
    losses = sorted({k for line in steps for k, v in line.items()
                     if k not in _NOT_LOSSES and isinstance(v, (int, float))})
    return [CurveSpec("training losses", losses), CurveSpec("learning rate", ["lr"]),
            CurveSpec(f"{select_split} {select_metric}", [f"{select_split}_{select_metric}"], per="epoch")]


def read_steps(path: str) -> List[dict]:
    """The JSON lines of train_steps.jsonl ([] when absent); a line cut by a crash is skipped."""
    if not os.path.isfile(path):
        return []
    lines = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue
    return lines


def _series(records: List[dict], keys: Sequence[str], x_key: str) -> Dict[str, list]:
    return {key: [(r[x_key], r[key]) for r in records if x_key in r and isinstance(r.get(key), (int, float))]
            for key in keys}


def write_training_curves(path: str, specs: Sequence[CurveSpec], steps: List[dict], epochs: List[dict],
                          title: str = "") -> str:
    """Draw `specs` from the step lines and epoch records into `path` (PNG, atomic); panels without points
    are left out. Returns `path`; ValueError when nothing at all has points."""
    from easyretrieval.report import Panel, plot_curves

    panels = [Panel(spec.title, spec.per, _series(steps if spec.per == "step" else epochs, spec.keys, spec.per),
                    log_y=spec.log_y) for spec in specs]
    return plot_curves(path, panels, title=title)
