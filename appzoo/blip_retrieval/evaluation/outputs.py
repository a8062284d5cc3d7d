"""Evaluation outputs: in output_dir, written atomically, <split>_metrics.json (recall, and the images
skipped as unreadable: `skipped_images`, `skipped_image_files`), <split>_rankings.npz, <split>_timings.json
(timings and counts); on the console, the recall table (`format_recall`)."""
import json
import os

import numpy as np

from easyretrieval.atomic_files import write_atomic


def save_result(result, output_dir: str, split: str):
    """Write the three files of `split`; returns {kind: path}."""
    os.makedirs(output_dir, exist_ok=True)
    paths = {kind: os.path.join(output_dir, f"{split}_{kind}") for kind in ("metrics.json", "rankings.npz", "timings.json")}

    def json_text(obj):
        return json.dumps(obj, indent=2, sort_keys=False) + "\n"

    def write_npz(handle):
        np.savez_compressed(handle, i2t_index=result.i2t.index, i2t_score=result.i2t.score,
                            t2i_index=result.t2i.index, t2i_score=result.t2i.score)

    # Images skipped as unreadable (skip_bad_images=True) are recorded beside the recall they lowered.
    skipped = getattr(result, "skipped", None) or {}
    record = {"split": split, **result.metrics, "skipped_images": int(skipped.get("count", 0)),
              "skipped_image_files": list(skipped.get("files", []))}
    write_atomic(paths["metrics.json"], json_text(record))
    write_atomic(paths["rankings.npz"], write_npz)
    write_atomic(paths["timings.json"], json_text({"split": split, "timings": result.timings, "stats": result.stats}))
    return paths


def format_recall(split, metrics, skipped=None) -> str:
    """A two-line recall table of one split, and a third line when images were skipped (`skipped`: the
    evaluator's {"count", "of", "files"} of unreadable images)."""
    m = metrics
    table = (f"{split}: text retrieval  R@1 {m['txt_r1']:6.2f}  R@5 {m['txt_r5']:6.2f}  R@10 {m['txt_r10']:6.2f}\n"
             f"{split}: image retrieval R@1 {m['img_r1']:6.2f}  R@5 {m['img_r5']:6.2f}  R@10 {m['img_r10']:6.2f}"
             f"   r_mean {m['r_mean']:6.2f}")
    if skipped and skipped.get("count"):
        table += "\n" + format_skipped(split, skipped)
    return table


def format_skipped(split, skipped) -> str:
    """One line on the images of `split` skipped as unreadable (the evaluator's {"count", "of", "files"})."""
    files = skipped.get("files", [])
    listed = ", ".join(files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "")
    return (f"{split}: {skipped['count']} of {skipped['of']} images skipped as unreadable ({listed}); they and "
            "their captions count as misses in its recall")
