"""The datasets `dataset=` names (flickr, coco, custom, custom_oss, synthetic) and their files.

`DATASETS` maps each name to a `DatasetFiles` class that says where that dataset's images and annotation
files are (and what it needs before a run, e.g. generating the synthetic data); `build_dataset(config, split)`
looks the name up and builds the train or eval dataset with the official transform. A plugin registers
another name with `@DATASETS.register("name")` (and adds it to the `dataset` parameter's choices).
"""
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from easyretrieval import fileio
from easyretrieval.errors import UserError
from easyretrieval.registry import Registry

from appzoo.blip_retrieval.data.datasets import RetrievalEvalDataset, RetrievalTrainDataset
from appzoo.blip_retrieval.data.synthetic import MANIFEST as SYNTHETIC_MANIFEST
from appzoo.blip_retrieval.data.synthetic import VERSION as SYNTHETIC_VERSION
from appzoo.blip_retrieval.data.synthetic import make_synthetic_dataset
from appzoo.blip_retrieval.data.transforms import create_transform

SPLITS = ("train", "val", "test")
FLICKR_MODELZOO = "alibaba-pai/blip/flickr30k/annotation/"
DATASETS = Registry("dataset")


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


class DatasetFiles:
    """Where one `dataset=` keeps its images and annotation files (the base: image_root and ann_root given)."""

    default_files: Dict[str, str] = {}  # split -> annotation file in ann_root when {split}_file is not set

    def roots(self, config) -> Tuple[str, str]:
        """(image_root, ann_root) of this dataset under `config`."""
        if not config.image_root:
            raise UserError(f"dataset={config.dataset} needs image_root=<folder the image paths are relative to>")
        return config.image_root, config.ann_root

    def fetch_missing(self, name) -> Optional[str]:
        """A local copy of annotation file `name` when ann_root lacks it, or None (then it is an error)."""
        return None

    def generated(self, config) -> bool:
        """Whether local rank 0 must generate this dataset before a run (`generate`)."""
        return False

    def generate(self, config):
        """Create the dataset's files (called on local rank 0 of each node when `generated`)."""

    def check_generated(self, config):
        """After `generate` on local rank 0: raise UserError on a rank that does not see its files."""


@DATASETS.register("flickr")
class Flickr30k(DatasetFiles):
    """Official Flickr30k (Karpathy split); missing annotation files come from the EasyNLP modelzoo."""

    default_files = {s: f"flickr30k_{s}.json" for s in SPLITS}

    def fetch_missing(self, name):
        if name not in self.default_files.values():
            return None
        from easyretrieval.modelzoo import resolve  # downloads once per node under a file lock

        return resolve(FLICKR_MODELZOO + name)


@DATASETS.register("coco")
class Coco(DatasetFiles):
    """Official COCO (Karpathy split)."""

    default_files = {s: f"coco_karpathy_{s}.json" for s in SPLITS}


@DATASETS.register("custom")
class Custom(DatasetFiles):
    """Your own data: annotation files named by {split}_file in ann_root, images under image_root."""


@DATASETS.register("custom_oss")
class CustomOss(DatasetFiles):
    """Your own data with the images in an OSS bucket (image_root=oss://bucket/prefix)."""

    def roots(self, config):
        image_root, ann_root = super().roots(config)
        if not image_root.startswith("oss://"):
            raise UserError(f"dataset=custom_oss needs image_root=oss://bucket/prefix, got '{image_root}' "
                            "(use dataset=custom for local images)")
        return image_root, ann_root


@DATASETS.register("synthetic")
class Synthetic(DatasetFiles):
    """Generated images of coloured shapes with captions (tests and the demo), cached per seed."""

    default_files = {s: f"synthetic_{s}.json" for s in SPLITS}

    def roots(self, config):
        root = synthetic_dir(config)
        return os.path.join(root, "images"), os.path.join(root, "annotations")

    def generated(self, config):
        return True

    def generate(self, config):
        make_synthetic_dataset(synthetic_dir(config), seed=config.synthetic_seed)

    def check_generated(self, config):
        root = synthetic_dir(config)
        if not os.path.isfile(os.path.join(root, SYNTHETIC_MANIFEST)):
            raise UserError(f"the synthetic dataset in '{root}' was not generated by local rank 0 (see its error)")


def dataset_files(config) -> DatasetFiles:
    """The registered DatasetFiles of `config.dataset` (UserError with a did-you-mean for an unknown name)."""
    return DATASETS.get(config.dataset)()


def _file_names(config, source, split):
    given = config.get(f"{split}_file") or ""
    names = [n.strip() for n in given.split(",") if n.strip()]
    if not names and split in source.default_files:
        names = [source.default_files[split]]
    if not names:
        raise UserError(f"dataset={config.dataset} needs {split}_file=<annotation file in ann_root>")
    if split != "train" and len(names) > 1:
        raise UserError(f"{split}_file: give one evaluation file, got {len(names)}")
    return names


def _annotation_path(source, ann_root, name):
    path = fileio.join(ann_root, name) if ann_root else name
    if fileio.exists(path):
        return path
    fetched = source.fetch_missing(name)
    if fetched is not None:
        return fetched
    where = f" in ann_root '{ann_root}'" if ann_root else " (ann_root is not set)"
    raise UserError(f"annotation file '{name}' not found{where}")


def data_files(config, splits=SPLITS):
    """Image root and annotation paths of `splits` (synthetic: the generated dataset's; generate it first)."""
    source = dataset_files(config)
    image_root, ann_root = source.roots(config)
    files = {s: [_annotation_path(source, ann_root, n) for n in _file_names(config, source, s)] for s in splits}
    return DataFiles(image_root=image_root, files=files)


def build_dataset(config, split):
    """The train or eval dataset of `split` of `config.dataset` with its transform (train: the `train_augment`
    setting)."""
    kind = split_kind(split)
    found = data_files(config, [split])
    transform = create_transform(config.image_size, train=kind == "train", augment=config.train_augment)
    common = dict(image_root=found.image_root, transform=transform, max_words=config.max_words,
                  skip_bad_images=config.skip_bad_images, cache_images=config.cache_images)
    if kind == "train":
        return RetrievalTrainDataset(found.files[split], **common)
    return RetrievalEvalDataset(found.files[split][0], **common)
