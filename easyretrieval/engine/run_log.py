"""What a training run records on rank 0: log.txt JSON lines (official keys, one per epoch), train_steps.jsonl
(one JSON line per optimizer step: step, epoch, the task's losses, lr, samples_per_s), TensorBoard scalars,
and running means of the step scalars (synchronised across ranks at the end of an epoch)."""
import json
import os
from typing import Dict, Mapping

import torch


class RunningMeans:
    """Sums and counts of named scalars; `state`/`load` let an exact resume continue the epoch's means."""

    def __init__(self):
        self.sums: Dict[str, float] = {}
        self.counts: Dict[str, int] = {}

    def update(self, values: Mapping[str, float]):
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value)
            self.counts[key] = self.counts.get(key, 0) + 1

    def means(self) -> Dict[str, float]:
        return {k: self.sums[k] / self.counts[k] for k in self.sums}

    def global_means(self) -> Dict[str, float]:
        """Means over all ranks (a collective when distributed; same keys on every rank required)."""
        import torch.distributed as dist

        keys = sorted(self.sums)
        if not keys or not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return {k: self.sums[k] / self.counts[k] for k in keys}
        t = torch.tensor([[self.sums[k], self.counts[k]] for k in keys], dtype=torch.float64)
        if dist.get_backend() == "nccl":
            t = t.cuda()
        dist.all_reduce(t)
        t = t.cpu()
        return {k: float(t[i, 0] / t[i, 1]) for i, k in enumerate(keys)}

    def state(self):
        return {"sums": dict(self.sums), "counts": dict(self.counts)}

    def load(self, state):
        self.sums = dict(state["sums"])
        self.counts = dict(state["counts"])


STEPS_FILE = "train_steps.jsonl"


class RunLog:
    """log.txt, train_steps.jsonl and TensorBoard under output_dir; silent on ranks other than 0."""

    def __init__(self, output_dir: str, enabled: bool, tensorboard: bool = True):
        self.enabled = enabled
        self.path = os.path.join(output_dir, "log.txt")
        self.steps_path = os.path.join(output_dir, STEPS_FILE)
        self._steps = None
        self._writer = None
        if enabled:
            os.makedirs(output_dir, exist_ok=True)
            if tensorboard:
                try:
                    from torch.utils.tensorboard import SummaryWriter
                except ImportError:  # tensorboard not installed: log.txt still has everything
                    SummaryWriter = None
                if SummaryWriter is not None:
                    self._writer = SummaryWriter(os.path.join(output_dir, "tensorboard"))

    def scalars(self, prefix: str, values: Mapping[str, float], step: int):
        if self._writer is not None:
            for key, value in values.items():
                self._writer.add_scalar(f"{prefix}/{key}", float(value), step)

    def line(self, record: dict):
        """Append one JSON line to log.txt (official train_retrieval.py format)."""
        if self.enabled:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
                f.flush()
                os.fsync(f.fileno())

    def step(self, record: dict):
        """Append one optimizer step's JSON line to train_steps.jsonl (flushed, not fsynced: a crash may lose
        the last lines, which a resume rewrites)."""
        if not self.enabled:
            return
        if self._steps is None:
            self._steps = open(self.steps_path, "a", encoding="utf-8")
        self._steps.write(json.dumps(record) + "\n")
        self._steps.flush()

    def trim_steps(self, global_step: int):
        """Keep the lines of steps up to `global_step` (a resumed run replays the later ones)."""
        if not (self.enabled and os.path.isfile(self.steps_path)):
            return
        with open(self.steps_path, encoding="utf-8") as f:
            kept = [line for line in f if _step_of(line) is not None and _step_of(line) <= global_step]
        with open(self.steps_path + ".part", "w", encoding="utf-8") as f:
            f.writelines(kept)
        os.replace(self.steps_path + ".part", self.steps_path)

    def close(self):
        if self._steps is not None:
            self._steps.close()
            self._steps = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _step_of(line):
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None  # a line cut by a crash
