"""Image transforms: the official BLIP retrieval train augmentation (data/__init__.py), two milder
train settings for small from-scratch runs, and the official test resize.

`train_augment` (a parameter) picks the train transform:

- official: RandomResizedCrop(scale 0.5-1, bicubic), horizontal flip, RandomAugment(2, 5) — as official;
- light: RandomResizedCrop(scale 0.8-1, bicubic) only. No flip (a caption's "left"/"right" stays true),
  no RandomAugment (its Equalize/AutoContrast recolour flat-coloured images, and its translate/shear
  offsets are in pixels, a large share of a small image: see README, "Why the demo learns");
- none: the test transform (resize only).
"""
import cv2
import numpy as np
import torch
from torchvision import transforms
from torchvision.transforms import InterpolationMode

from appzoo.blip_retrieval.data.randaugment import OFFICIAL_AUGS, RandomAugment

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
MIN_SCALE = 0.5  # official config: image_size + min_scale 0.5 for retrieval fine-tuning
LIGHT_MIN_SCALE = 0.8  # train_augment=light: crops keep at least 80% of the image area
TRAIN_AUGMENTS = ("official", "light", "none")


class ToNormalizedTensor:
    """`Normalize(mean, std)(ToTensor()(image))` in one pass, bit for bit (tested on every value).

    A uint8 pixel's output depends only on its channel and value, so the 3 x 256 results are computed once
    with torchvision's own float32 operations (v / 255, then (x - mean) / std) and looked up per pixel.
    Input: a PIL RGB image or an HWC uint8 array with len(mean) channels. Output: float32 [C, H, W].
    """

    def __init__(self, mean, std):
        self.mean, self.std = tuple(mean), tuple(std)
        values = torch.arange(256, dtype=torch.uint8).to(torch.float32).div(255)  # ToTensor
        mean_t = torch.as_tensor(self.mean, dtype=torch.float32)[:, None]
        std_t = torch.as_tensor(self.std, dtype=torch.float32)[:, None]
        self.tables = [row.reshape(1, 256).copy() for row in ((values[None, :] - mean_t) / std_t).numpy()]

    def __call__(self, image):
        array = np.asarray(image)
        if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != len(self.tables):
            raise ValueError(f"ToNormalizedTensor needs an HWC uint8 image with {len(self.tables)} channels, "
                             f"got {array.dtype} {array.shape}")
        planes = cv2.split(np.ascontiguousarray(array))
        return torch.from_numpy(np.stack([cv2.LUT(plane, table) for plane, table in zip(planes, self.tables)]))

    def __repr__(self):
        return f"ToNormalizedTensor(mean={self.mean}, std={self.std})"


class ResizeTransform(transforms.Compose):
    """The test transform (and train_augment=none): bicubic resize + normalise. It draws no random numbers, so
    its output for an image can be cached (cache_images)."""

    deterministic = True


def create_transform(image_size: int, train: bool, augment: str = "official"):
    """PIL RGB image -> normalised float tensor (3, image_size, image_size).

    `augment` (train only): one of TRAIN_AUGMENTS ("official" is the official transform, bit for bit);
    ValueError for another name.
    """
    if augment not in TRAIN_AUGMENTS:
        raise ValueError(f"unknown train augmentation '{augment}'; known: {', '.join(TRAIN_AUGMENTS)}")
    to_tensor = ToNormalizedTensor(CLIP_MEAN, CLIP_STD)
    if train and augment == "official":
        return transforms.Compose([
            transforms.RandomResizedCrop(image_size, scale=(MIN_SCALE, 1.0), interpolation=InterpolationMode.BICUBIC),
            transforms.RandomHorizontalFlip(),
            RandomAugment(2, 5, isPIL=True, augs=OFFICIAL_AUGS),
            to_tensor,
        ])
    if train and augment == "light":
        return transforms.Compose([
            transforms.RandomResizedCrop(image_size, scale=(LIGHT_MIN_SCALE, 1.0),
                                         interpolation=InterpolationMode.BICUBIC),
            to_tensor,
        ])
    return ResizeTransform([
        transforms.Resize((image_size, image_size), interpolation=InterpolationMode.BICUBIC),
        to_tensor,
    ])


def official_transform(image_size: int, train: bool):
    """The official composition itself (torchvision ToTensor and Normalize as separate steps): the baseline
    that benchmarks/loader_speed.py times ours against, and that the tests check ours against."""
    normalize = transforms.Normalize(CLIP_MEAN, CLIP_STD)
    if train:
        return transforms.Compose([
            transforms.RandomResizedCrop(image_size, scale=(MIN_SCALE, 1.0), interpolation=InterpolationMode.BICUBIC),
            transforms.RandomHorizontalFlip(),
            RandomAugment(2, 5, isPIL=True, augs=OFFICIAL_AUGS),
            transforms.ToTensor(),
            normalize,
        ])
    return transforms.Compose([
        transforms.Resize((image_size, image_size), interpolation=InterpolationMode.BICUBIC),
        transforms.ToTensor(),
        normalize,
    ])
