"""The best epoch's files in a training run's folder, and `best.json`, the record of which epoch they hold.

    OUTPUT_DIR/checkpoint_best.pth     the exported weights (official layout)
    OUTPUT_DIR/<files of the task>     e.g. val_metrics.json, val_rankings.npz of that epoch
    OUTPUT_DIR/best.json               {"epoch", "split", "metric", "value", "files": [names in OUTPUT_DIR]}

best.json is written last, so it never names files of another epoch. A run resumed from a checkpoint of
another run's folder carries that run's best files over when its best.json names the checkpoint's best
epoch (`adopt_best`), so the new folder is complete.
"""
import json
import os
import shutil
from typing import List, Optional

BEST_FILE = "checkpoint_best.pth"
MANIFEST = "best.json"


def run_dir_of_checkpoint(path: str) -> str:
    """RUN for a checkpoint RUN/checkpoints/step_N (the layout CheckpointManager writes)."""
    return os.path.dirname(os.path.dirname(os.path.abspath(path)))


def write_manifest(output_dir: str, epoch: int, split: str, metric: str, value: float, files: List[str]):
    record = {"epoch": epoch, "split": split, "metric": metric, "value": value, "files": list(files)}
    path = os.path.join(output_dir, MANIFEST)
    with open(path + ".part", "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2)
        f.write("\n")
    os.replace(path + ".part", path)


def read_manifest(run_dir: str) -> Optional[dict]:
    try:
        with open(os.path.join(run_dir, MANIFEST), encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("files"), list) else None


def best_files(run_dir: str, epoch: int) -> Optional[List[str]]:
    """The paths of `epoch`'s best files in `run_dir`, or None when best.json is of another epoch or a file
    it names is missing."""
    record = read_manifest(run_dir)
    if record is None or record.get("epoch") != epoch:
        return None
    paths = [os.path.join(run_dir, name) for name in record["files"]]
    return paths if all(os.path.exists(p) for p in paths) else None


def adopt_best(output_dir: str, source_dir: str, epoch: int) -> bool:
    """Copy `epoch`'s best files and best.json from `source_dir` into `output_dir`; False if it has none."""
    paths = best_files(source_dir, epoch)
    if paths is None:
        return False
    os.makedirs(output_dir, exist_ok=True)
    for path in paths:
        target = os.path.join(output_dir, os.path.basename(path))
        if os.path.isdir(path):  # a save_pretrained folder: copied whole, then swapped in
            shutil.rmtree(target + ".part", ignore_errors=True)
            shutil.copytree(path, target + ".part")
            shutil.rmtree(target, ignore_errors=True)
            os.rename(target + ".part", target)
        else:
            shutil.copy2(path, target + ".part")
            os.replace(target + ".part", target)
    record = read_manifest(source_dir)
    write_manifest(output_dir, record["epoch"], record.get("split"), record.get("metric"), record.get("value"),
                   record["files"])
    return True
