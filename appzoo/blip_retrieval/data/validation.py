"""Checks every annotation file before anything heavy starts; all problems are reported in one line.

A problem names the file, the entry index and what is wrong, e.g.
  annotation check failed: 2 problems: flickr30k_train.json[12]: missing key 'image'; ...
Only the first MAX_LISTED problems are listed. Image files are checked for presence (cheap) and, with
`decode=True`, fully decoded.
"""
import os
import posixpath
from concurrent.futures import ThreadPoolExecutor

from easyretrieval import fileio
from appzoo.blip_retrieval.data.datasets import load_annotation, read_image
from appzoo.blip_retrieval.model.tokenizer import pre_caption
from easyretrieval.errors import UserError

MAX_LISTED = 10
KINDS = ("train", "eval")


def _caption_problem(caption):
    if not isinstance(caption, str):
        return f"caption must be a string, got {type(caption).__name__}"
    if not caption.strip():
        return "empty caption"
    if not pre_caption(caption):
        return f"caption '{caption}' is empty once punctuation is removed"
    return None


def entry_problems(entry, kind):
    """The problems of one entry (pure; no I/O)."""
    if not isinstance(entry, dict):
        return [f"entry must be an object, got {type(entry).__name__}"]
    problems = [f"missing key '{k}'" for k in ("image", "caption") if k not in entry]
    image = entry.get("image")
    if "image" in entry:
        if not isinstance(image, str):
            problems.append(f"'image' must be a string, got {type(image).__name__}")
        elif not image.strip():
            problems.append("empty 'image' path")
        else:
            problems += path_problems(image)
    if "caption" in entry:
        caption = entry["caption"]
        if isinstance(caption, list):
            if not caption:
                problems.append("empty caption list")
            problems += [f"caption {i}: {p}" for i, c in enumerate(caption) if (p := _caption_problem(c))]
        elif kind == "eval":
            problems.append(f"'caption' must be a list of strings in an evaluation file, got {type(caption).__name__}")
        elif (p := _caption_problem(caption)) is not None:
            problems.append(p)
    if kind == "train" and "image_id" in entry and not isinstance(entry["image_id"], (str, int)):
        problems.append(f"'image_id' must be a string or integer, got {type(entry['image_id']).__name__}")
    return problems


def path_problems(rel_path):
    """An image path must be relative and stay inside image_root after normalisation."""
    if rel_path.startswith(("/", "\\")) or os.path.isabs(rel_path) or "://" in rel_path or rel_path[1:2] == ":":
        return [f"image path '{rel_path}' is absolute; it must be relative to image_root"]
    norm = posixpath.normpath(rel_path.replace("\\", "/"))
    if norm == ".." or norm.startswith("../"):
        return [f"image path '{rel_path}' leaves image_root"]
    return []


def _label(path, index=None):
    name = posixpath.basename(str(path).rstrip("/")) or str(path)
    return name if index is None else f"{name}[{index}]"


def _image_problems(image_root, images, decode, workers):
    """(index, file label, problem) for images that are missing (or undecodable with decode=True)."""

    def check(item):
        label, rel = item
        path = fileio.join(image_root, rel)
        if decode:
            try:
                read_image(path)
            except FileNotFoundError:
                return label, f"image '{rel}' not found under image_root '{image_root}'"
            except Exception as e:  # noqa: BLE001 - any decode failure is a problem of this entry
                return label, f"image '{rel}' cannot be decoded: {type(e).__name__}: {e}"
            return None
        if not fileio.exists(path):
            return label, f"image '{rel}' not found under image_root '{image_root}'"
        return None

    if workers > 1 and len(images) > 1:
        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(check, images))
    else:
        results = [check(item) for item in images]
    return [r for r in results if r is not None]


def validate_annotations(files, image_root, kind, decode=False, check_images=True):
    """Raise UserError listing the problems of `files` ({split: path or [paths]}); return entry counts.

    kind: 'train' (official or list-caption train entries) or 'eval' (`{"image", "caption": [...]}`).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    problems, counts, to_check, seen = [], {}, [], set()
    for split, paths in files.items():
        paths = [paths] if isinstance(paths, str) else list(paths)
        counts[split] = 0
        for path in paths:
            try:
                entries = load_annotation(path)
            except UserError as e:
                problems.append(str(e))
                continue
            counts[split] += len(entries)
            if not entries:
                problems.append(f"{_label(path)}: no entries")
            for i, entry in enumerate(entries):
                found = entry_problems(entry, kind)
                problems += [f"{_label(path, i)}: {p}" for p in found]
                if not found and entry["image"] not in seen:
                    seen.add(entry["image"])
                    to_check.append((_label(path, i), entry["image"]))
    if check_images and to_check:
        workers = 16 if fileio.is_oss(image_root) or decode else 1
        problems += [f"{label}: {p}" for label, p in _image_problems(image_root, to_check, decode, workers)]
    if problems:
        listed = "; ".join(problems[:MAX_LISTED])
        more = f"; ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        noun = "problem" if len(problems) == 1 else "problems"
        message = f"annotation check failed: {len(problems)} {noun}: {listed}{more}"
        raise UserError(" ".join(message.split("\n")))
    return counts
