"""Image transforms of official BLIP retrieval (data/__init__.py): train augmentation and test resize."""
from torchvision import transforms
from torchvision.transforms import InterpolationMode

from appzoo.blip_retrieval.data.randaugment import OFFICIAL_AUGS, RandomAugment

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
MIN_SCALE = 0.5  # official config: image_size + min_scale 0.5 for retrieval fine-tuning


def create_transform(image_size: int, train: bool):
    """PIL RGB image -> normalised float tensor (3, image_size, image_size)."""
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
