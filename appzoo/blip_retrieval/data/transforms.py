"""Image transforms: the official BLIP retrieval train augmentation (data/__init__.py), two milder
train settings for small from-scratch runs, and the official test resize.

`train_augment` (a parameter) picks the train transform:

- official: RandomResizedCrop(scale 0.5-1, bicubic), horizontal flip, RandomAugment(2, 5) — as official;
- light: RandomResizedCrop(scale 0.8-1, bicubic) only. No flip (a caption's "left"/"right" stays true),
  no RandomAugment (its Equalize/AutoContrast recolour flat-coloured images, and its translate/shear
  offsets are in pixels, a large share of a small image: see README, "Why the demo learns");
- none: the test transform (resize only).
"""
from torchvision import transforms
from torchvision.transforms import InterpolationMode

from appzoo.blip_retrieval.data.randaugment import OFFICIAL_AUGS, RandomAugment

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
MIN_SCALE = 0.5  # official config: image_size + min_scale 0.5 for retrieval fine-tuning
LIGHT_MIN_SCALE = 0.8  # train_augment=light: crops keep at least 80% of the image area
TRAIN_AUGMENTS = ("official", "light", "none")


def create_transform(image_size: int, train: bool, augment: str = "official"):
    """PIL RGB image -> normalised float tensor (3, image_size, image_size).

    `augment` (train only): one of TRAIN_AUGMENTS; ValueError for another name.
    """
    if augment not in TRAIN_AUGMENTS:
        raise ValueError(f"unknown train augmentation '{augment}'; known: {', '.join(TRAIN_AUGMENTS)}")
    normalize = transforms.Normalize(CLIP_MEAN, CLIP_STD)
    if train and augment == "official":
        return transforms.Compose([
            transforms.RandomResizedCrop(image_size, scale=(MIN_SCALE, 1.0), interpolation=InterpolationMode.BICUBIC),
            transforms.RandomHorizontalFlip(),
            RandomAugment(2, 5, isPIL=True, augs=OFFICIAL_AUGS),
            transforms.ToTensor(),
            normalize,
        ])
    if train and augment == "light":
        return transforms.Compose([
            transforms.RandomResizedCrop(image_size, scale=(LIGHT_MIN_SCALE, 1.0),
                                         interpolation=InterpolationMode.BICUBIC),
            transforms.ToTensor(),
            normalize,
        ])
    return transforms.Compose([
        transforms.Resize((image_size, image_size), interpolation=InterpolationMode.BICUBIC),
        transforms.ToTensor(),
        normalize,
    ])
