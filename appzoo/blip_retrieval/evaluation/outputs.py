"""Evaluation outputs in output_dir, written atomically: <split>_metrics.json (recall, and the images
skipped as unreadable: `skipped_images`, `skipped_image_files`), <split>_rankings.npz, <split>_timings.json
(timings and counts)."""
import json
import os

import numpy as np


def _atomic_write(path, write):
    tmp = f"{path}.tmp.{os.getpid()}"
    write(tmp)
    os.replace(tmp, path)


def save_result(result, output_dir: str, split: str):
    """Write the three files of `split`; returns {kind: path}."""
    os.makedirs(output_dir, exist_ok=True)
    paths = {kind: os.path.join(output_dir, f"{split}_{kind}") for kind in ("metrics.json", "rankings.npz", "timings.json")}

    def write_json(obj):
        def write(tmp):
            with open(tmp, "w", encoding="utf-8") as handle:
                json.dump(obj, handle, indent=2, sort_keys=False)
                handle.write("\n")
        return write

    def write_npz(tmp):
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, i2t_index=result.i2t.index, i2t_score=result.i2t.score,
                                t2i_index=result.t2i.index, t2i_score=result.t2i.score)

    # Images skipped as unreadable (skip_bad_images=True) are recorded beside the recall they lowered.
    skipped = getattr(result, "skipped", None) or {}
    record = {"split": split, **result.metrics, "skipped_images": int(skipped.get("count", 0)),
              "skipped_image_files": list(skipped.get("files", []))}
    _atomic_write(paths["metrics.json"], write_json(record))
    _atomic_write(paths["rankings.npz"], write_npz)
    _atomic_write(paths["timings.json"], write_json({"split": split, "timings": result.timings, "stats": result.stats}))
    return paths
