"""What `index --gallery G` names: an image folder (recursive), an `oss://` prefix, or an annotation file in
the official format (a JSON list of entries with "image"), listed before any model is loaded.

Each image gets `path` (absolute local path or oss:// URL: the index's item id, so that galleries appended
from other folders never collide) and `name` (its path relative to the gallery, or as the annotation names
it: what search prints as "id").
"""
import os
from dataclasses import dataclass
from typing import List

from easyretrieval import fileio
from easyretrieval.errors import UserError

from appzoo.blip_retrieval.predict_inputs import IMAGE_EXTENSIONS


@dataclass
class GalleryItems:
    names: List[str]   # relative to the gallery (folder / prefix) or as the annotation names them
    paths: List[str]   # what is read: absolute local paths or oss:// URLs (unique)

    def __len__(self):
        return len(self.paths)


def _folder(spec):
    try:
        names = fileio.list_files(spec, IMAGE_EXTENSIONS)
    except FileNotFoundError:
        raise UserError(f"--gallery '{spec}' not found (give an image folder, an oss:// prefix or an annotation "
                        ".json)") from None
    if not names:
        raise UserError(f"--gallery '{spec}': no images ({', '.join(IMAGE_EXTENSIONS)}) found under it")
    root = spec if fileio.is_oss(spec) else os.path.abspath(spec)
    names = [n.replace(os.sep, "/") for n in names]
    return GalleryItems(names, [fileio.join(root, n) for n in names])


def _annotation(spec, image_root):
    from appzoo.blip_retrieval.data.datasets import annotation_image_names

    root = image_root or (os.path.dirname(spec.rstrip("/")) if fileio.is_oss(spec)
                          else os.path.dirname(os.path.abspath(spec)))
    if not fileio.is_oss(root):
        root = os.path.abspath(root)
    names = annotation_image_names(spec)
    if not names:
        raise UserError(f"annotation file '{spec}' lists no images")
    return GalleryItems(names, [fileio.join(root, name) for name in names])


def list_gallery(spec: str, image_root: str = "") -> GalleryItems:
    """The gallery's images, in a fixed order (sorted names, or the annotation's order).

    spec: a local folder or oss:// prefix (every image file under it, recursively) or a .json annotation
    file (its entries' "image", relative to `image_root`, default the file's folder). UserError naming
    `spec` when it is missing, holds no image or is malformed.
    """
    if not spec:
        raise UserError("--gallery is required: an image folder, an oss:// prefix or an annotation .json")
    if spec.lower().endswith(".json"):
        if not fileio.is_oss(spec) and not os.path.isfile(spec):
            raise UserError(f"--gallery annotation file '{spec}' not found")
        return _annotation(spec, image_root)
    if not fileio.is_oss(spec) and os.path.isfile(spec):
        raise UserError(f"--gallery '{spec}' is a file: give an image folder, an oss:// prefix or an annotation .json")
    return _folder(spec)
