"""The registered datasets (`dataset=` flickr, coco, custom, custom_oss, synthetic) and their files.

Each registered object is a builder `build(config, split) -> Dataset` (split: train, val or test);
`data_files(config, splits)` says where a config's images and annotation files are, fetching the
official flickr annotation files from the modelzoo when they are missing.
"""
import os
from dataclasses import dataclass, field
from typing import Dict, List

from easyretrieval import fileio
from appzoo.blip_retrieval.data.datasets import RetrievalEvalDataset, RetrievalTrainDataset
from appzoo.blip_retrieval.data.synthetic import VERSION as SYNTHETIC_VERSION
from appzoo.blip_retrieval.data.transforms import create_transform
from easyretrieval.errors import UserError
from easyretrieval.registry import DATASETS, register_dataset

SPLITS = ("train", "val", "test")
DEFAULT_FILES = {
    "flickr": {s: f"flickr30k_{s}.json" for s in SPLITS},
    "coco": {s: f"coco_karpathy_{s}.json" for s in SPLITS},
    "synthetic": {s: f"synthetic_{s}.json" for s in SPLITS},
}
FLICKR_MODELZOO = "alibaba-pai/blip/flickr30k/annotation/"


def split_kind(split):
    if split not in SPLITS:
        raise UserError(f"unknown split '{split}'; splits: {', '.join(SPLITS)}")
    return "train" if split == "train" else "eval"


@dataclass
class DataFiles:
    image_root: str
    files: Dict[str, List[str]] = field(default_factory=dict)  # split -> annotation file paths


def synthetic_dir(config):
    """Where the synthetic dataset of this seed lives: <synthetic_dir or cache/synthetic>/v<version>_seed<seed>."""
    from easyretrieval.modelzoo import default_cache_dir  # one cache root ($EASYRETRIEVAL_CACHE) for everything

    base = config.synthetic_dir or os.path.join(default_cache_dir(), "synthetic")
    return os.path.join(os.path.abspath(os.path.expanduser(base)), f"v{SYNTHETIC_VERSION}_seed{config.synthetic_seed}")


def _file_names(config, split):
    given = config.get(f"{split}_file") or ""
    names = [n.strip() for n in given.split(",") if n.strip()]
    if not names and config.dataset in DEFAULT_FILES:
        names = [DEFAULT_FILES[config.dataset][split]]
    if not names:
        raise UserError(f"dataset={config.dataset} needs {split}_file=<annotation file in ann_root>")
    if split != "train" and len(names) > 1:
        raise UserError(f"{split}_file: give one evaluation file, got {len(names)}")
    return names


def _annotation_path(config, ann_root, name):
    path = fileio.join(ann_root, name) if ann_root else name
    if fileio.exists(path):
        return path
    if config.dataset == "flickr" and name in DEFAULT_FILES["flickr"].values():
        from easyretrieval.modelzoo import resolve  # downloads once per node under a file lock

        return resolve(FLICKR_MODELZOO + name)
    where = f" in ann_root '{ann_root}'" if ann_root else " (ann_root is not set)"
    raise UserError(f"annotation file '{name}' not found{where}")


def data_files(config, splits=SPLITS):
    """Image root and annotation paths of `splits` (synthetic: the generated dataset's; generate it first)."""
    if config.dataset == "synthetic":
        root = synthetic_dir(config)
        image_root, ann_root = os.path.join(root, "images"), os.path.join(root, "annotations")
    else:
        image_root, ann_root = config.image_root, config.ann_root
        if not image_root:
            raise UserError(f"dataset={config.dataset} needs image_root=<folder the image paths are relative to>")
        if config.dataset == "custom_oss" and not image_root.startswith("oss://"):
            raise UserError(f"dataset=custom_oss needs image_root=oss://bucket/prefix, got '{image_root}' "
                            "(use dataset=custom for local images)")
    files = {s: [_annotation_path(config, ann_root, n) for n in _file_names(config, s)] for s in splits}
    return DataFiles(image_root=image_root, files=files)


def build_retrieval_dataset(config, split):
    """The train or eval dataset of `split` with its transform (train: the `train_augment` setting)."""
    kind = split_kind(split)
    found = data_files(config, [split])
    transform = create_transform(config.image_size, train=kind == "train", augment=config.train_augment)
    common = dict(image_root=found.image_root, transform=transform, max_words=config.max_words,
                  skip_bad_images=config.skip_bad_images)
    if kind == "train":
        return RetrievalTrainDataset(found.files[split], **common)
    return RetrievalEvalDataset(found.files[split][0], **common)


for _name in ("flickr", "coco", "custom", "custom_oss", "synthetic"):
    register_dataset(_name)(build_retrieval_dataset)


def build_dataset(config, split):
    """The dataset `config.dataset` registered for `split`."""
    return DATASETS.get(config.dataset)(config, split)
