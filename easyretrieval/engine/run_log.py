"""What a training run records on rank 0: log.txt JSON lines (official keys), TensorBoard scalars,
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


class RunLog:
    """log.txt and TensorBoard under output_dir; silent on ranks other than 0."""

    def __init__(self, output_dir: str, enabled: bool, tensorboard: bool = True):
        self.enabled = enabled
        self.path = os.path.join(output_dir, "log.txt")
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

    def close(self):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
