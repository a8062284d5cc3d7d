"""What predict's `gallery=` and `queries=` name, read and checked before any work: an image folder, an
image file, a JSON annotation file (its entries' "image"), or a text file (one query or caption a line,
UTF-8, each keeping words after the caption normalisation of training).
"""
import os
from dataclasses import dataclass
from typing import List

from easyretrieval.errors import UserError
from easyretrieval.text_input import read_text_file, split_lines

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")


@dataclass
class Items:
    kind: str            # "images" or "texts"
    ids: List[str]       # image path relative to its folder / line number of a text
    values: List[str]    # image paths to read / texts (as written)


def _image_folder(path):
    files = []
    for folder, _dirs, names in os.walk(path):
        files += [os.path.join(folder, n) for n in names if n.lower().endswith(IMAGE_EXTENSIONS)]
    files.sort()
    if not files:
        raise UserError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found under '{path}'")
    return Items("images", [os.path.relpath(f, path) for f in files], files)


def _annotation_images(path, image_root):
    from easyretrieval import fileio
    from appzoo.blip_retrieval.data.datasets import annotation_image_names

    root = image_root or os.path.dirname(os.path.abspath(path))
    ids = annotation_image_names(path)
    return Items("images", ids, [fileio.join(root, i) for i in ids])


def _text_lines(path, what):
    """Non-blank lines of a text file, numbered from 1; each must keep words after caption normalisation."""
    from appzoo.blip_retrieval.model.tokenizer import pre_caption

    text = read_text_file(path, what)
    lines = [(n + 1, line.strip()) for n, line in enumerate(split_lines(text))]
    lines = [(n, line) for n, line in lines if line]
    if not lines:
        raise UserError(f"{what} '{path}' holds no text (one query or gallery caption a line)")
    empty = [f"line {n} {line!r}" for n, line in lines if not pre_caption(line)]
    if empty:
        listed = ", ".join(empty[:10]) + (f" and {len(empty) - 10} more" if len(empty) > 10 else "")
        raise UserError(f"{what} '{path}': {listed} {'is' if len(empty) == 1 else 'are'} empty once normalised as "
                        "captions are (the characters .!\"()*#:;~ removed); give words, or remove the line")
    return Items("texts", [str(n) for n, _ in lines], [line for _, line in lines])


def read_items(path: str, image_root: str = "", what: str = "text file") -> Items:
    """What `gallery=` / `queries=` names: an image folder, an image, a JSON annotation file, or text lines.
    `what` names the file in messages (e.g. "queries file")."""
    if not path:
        raise UserError("predict needs gallery=<images or text file> and queries=<text file or images>")
    if os.path.isdir(path):
        return _image_folder(path)
    if not os.path.isfile(path):
        raise UserError(f"'{path}' not found (give an image folder, an annotation .json or a text file)")
    if path.lower().endswith(IMAGE_EXTENSIONS):
        return Items("images", [os.path.basename(path)], [path])
    if path.lower().endswith(".json"):
        return _annotation_images(path, image_root)
    return _text_lines(path, what)


def read_inputs(config):
    """(gallery, queries) Items from gallery= and queries=, one of them images and the other texts."""
    gallery = read_items(config.gallery, config.image_root, "gallery file")
    queries = read_items(config.queries, config.image_root, "queries file")
    if gallery.kind == queries.kind:
        raise UserError(f"gallery= and queries= are both {gallery.kind}: one must be images and the other a "
                        "text file (text->image or image->text)")
    return gallery, queries
