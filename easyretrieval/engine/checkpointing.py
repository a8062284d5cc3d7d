"""Resumable checkpoints: atomic save, discovery of the latest complete one, and `keep_last` pruning.

Layout under `root` (output_dir/checkpoints):
  step_00000120/            one complete checkpoint (a DeepSpeed checkpoint directory)
      mp_rank_00_model_states.pt, *optim_states.pt ...   written by engine.save_checkpoint
      rank_state_00000.pt ...                             rank-local state (RNG, momentum shadows, meters)
      COMPLETE                                            JSON marker, written last: step, world size,
                                                          epoch position and the run's record (`run`)
  latest                    name of the newest complete checkpoint (replaced atomically)
  .tmp-step_00000150/       a save in progress; never read, removed by the next save or resume

A save first writes everything into the .tmp- directory, then rank 0 writes the marker and renames the
directory; a crash (even SIGKILL) at any moment leaves the previous checkpoint untouched and findable.
The output directory must be visible to every rank (a shared file system when several nodes train).
"""
import json
import os
import re
import shutil
from typing import Optional, Tuple

from easyretrieval.distributed import DistInfo, barrier
from easyretrieval.errors import UserError

MARKER = "COMPLETE"
LATEST = "latest"
TMP_PREFIX = ".tmp-"
_NAME = re.compile(r"^step_(\d+)$")


def checkpoint_name(global_step: int) -> str:
    return f"step_{global_step:08d}"


def _rank_state_file(directory, rank):
    return os.path.join(directory, f"rank_state_{rank:05d}.pt")


def _write_atomic(path, data: bytes):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_complete(directory: str) -> bool:
    return os.path.isfile(os.path.join(directory, MARKER))


def read_marker(directory: str) -> dict:
    with open(os.path.join(directory, MARKER), encoding="utf-8") as f:
        return json.load(f)


def list_complete(root: str):
    """Complete checkpoints under `root` as (global_step, path), oldest first."""
    if not os.path.isdir(root):
        return []
    found = []
    for name in os.listdir(root):
        m = _NAME.match(name)
        path = os.path.join(root, name)
        if m and os.path.isdir(path) and is_complete(path):
            found.append((int(m.group(1)), path))
    return sorted(found)


def find_latest(root: str) -> Optional[str]:
    """The newest complete checkpoint under `root`, or None; ignores partial (.tmp-) saves."""
    latest_file = os.path.join(root, LATEST)
    if os.path.isfile(latest_file):
        with open(latest_file, encoding="utf-8") as f:
            path = os.path.join(root, f.read().strip())
        complete = list_complete(root)
        if is_complete(path) and (not complete or complete[-1][1] == path):
            return path
    complete = list_complete(root)
    return complete[-1][1] if complete else None


def read_marker_or_none(directory: str) -> Optional[dict]:
    try:
        return read_marker(directory)
    except (OSError, ValueError):
        return None


def resolve_resume(resume: str, root: str) -> Optional[str]:
    """'' -> None (fresh start); 'auto' -> latest complete checkpoint or None; a path -> that checkpoint."""
    if not resume:
        return None
    if resume == "auto":
        return find_latest(root)
    path = resume
    if os.path.isdir(path) and not is_complete(path) and os.path.isdir(os.path.join(path, "checkpoints")):
        path = find_latest(os.path.join(path, "checkpoints")) or path
    elif os.path.isdir(path) and not is_complete(path):
        path = find_latest(path) or path
    if not os.path.isdir(path) or not is_complete(path):
        raise UserError(f"resume: '{resume}' is not a complete checkpoint (use resume=auto or a step_* dir)")
    return path


class CheckpointManager:
    """Saves and loads resumable checkpoints of one DeepSpeed engine; every rank calls every method."""

    def __init__(self, root: str, dist: DistInfo, keep_last: int = 2):
        if keep_last < 1:
            raise ValueError("keep_last must be >= 1")
        self.root = root
        self.dist = dist
        self.keep_last = keep_last

    def _remove_partial(self):
        if self.dist.is_main and os.path.isdir(self.root):
            for name in os.listdir(self.root):
                if name.startswith(TMP_PREFIX):
                    shutil.rmtree(os.path.join(self.root, name), ignore_errors=True)

    def save(self, engine, global_step: int, client_state: dict, rank_state: dict, record=None) -> str:
        """Write a checkpoint atomically; returns its final path. `record` (JSON: what the run is, e.g. its
        parameters) goes into the marker, where a resume reads it before loading anything."""
        name = checkpoint_name(global_step)
        final = os.path.join(self.root, name)
        tmp_tag = TMP_PREFIX + name
        tmp = os.path.join(self.root, tmp_tag)
        if self.dist.is_main:
            os.makedirs(self.root, exist_ok=True)
            self._remove_partial()
        barrier()
        engine.save_checkpoint(self.root, tag=tmp_tag, client_state=client_state, save_latest=False)
        os.makedirs(tmp, exist_ok=True)
        import torch  # here, not at the top: resolving a resume before any work needs no torch

        torch.save(rank_state, _rank_state_file(tmp, self.dist.rank) + ".part")
        os.replace(_rank_state_file(tmp, self.dist.rank) + ".part", _rank_state_file(tmp, self.dist.rank))
        barrier()
        if self.dist.is_main:
            marker = {"global_step": global_step, "world_size": self.dist.world_size,
                      "epoch": client_state.get("epoch"), "step_in_epoch": client_state.get("step_in_epoch")}
            if record is not None:
                marker["run"] = record
            _write_atomic(os.path.join(tmp, MARKER), json.dumps(marker).encode())
            if os.path.isdir(final):  # an older run's checkpoint of the same step: replace it
                shutil.rmtree(final)
            os.rename(tmp, final)
            _fsync_dir(self.root)
            _write_atomic(os.path.join(self.root, LATEST), name.encode())
            self._prune()
        barrier()
        return final

    def _prune(self):
        complete = list_complete(self.root)
        for _, path in complete[: max(0, len(complete) - self.keep_last)]:
            shutil.rmtree(path, ignore_errors=True)

    def load(self, engine, path: str) -> Tuple[dict, dict]:
        """Restore `engine` from the checkpoint at `path`; returns (client_state, this rank's rank_state)."""
        marker = read_marker(path)
        if marker.get("world_size") != self.dist.world_size:
            raise UserError(
                f"resume: {path} was written by {marker.get('world_size')} ranks, this run has "
                f"{self.dist.world_size}; an exact resume needs the same number of ranks"
            )
        root, tag = os.path.split(os.path.abspath(path))
        try:
            load_path, client_state = engine.load_checkpoint(root, tag=tag)
        except RuntimeError as e:  # e.g. size mismatches of a checkpoint written by a run without a record
            lines = [line.strip() for line in str(e).splitlines() if line.strip()] or [type(e).__name__]
            first = next((line for line in lines if "size mismatch" in line or "key" in line), lines[0])
            raise UserError(f"resume: {path} does not fit this run's model ({first.rstrip('.')}); resume with "
                            "the parameters it was trained with, or start a new run") from None
        if load_path is None:
            raise UserError(f"resume: DeepSpeed could not load {path}")
        import torch

        rank_state = torch.load(_rank_state_file(path, self.dist.rank), map_location="cpu", weights_only=False)
        self._remove_partial()
        return client_state, rank_state
