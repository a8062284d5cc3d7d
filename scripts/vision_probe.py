"""Can this ViT learn the synthetic shapes' attributes at all? A supervised check of the image encoder alone.

Trains a freshly initialised `VisionEncoder` (the model's own class and options) with one linear head per
attribute (colour, shape, size, position, background; read back from the captions by
scripts/attribute_errors.py) on the train images of the synthetic dataset with the official test transform,
batch 16, AdamW (LR 1e-3, weight decay 0.05), one torch thread, and prints the test accuracy per attribute
four times during training. What the encoder cannot learn with labels, ITC cannot teach it either.

    python scripts/vision_probe.py [--vit_stem patch|conv] [--vit_init_std 0.02] [--patch_size 8]
        [--image_size 64] [--steps 800] [--synthetic_dir DIR]
"""
import argparse
import os
import sys
import time

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from attribute_errors import ATTRIBUTES, parse_caption, split_entries  # noqa: E402


def load_split(root, split, transform):
    entries = split_entries(os.path.join(root, "annotations"), split)
    from PIL import Image

    images = torch.stack([transform(Image.open(os.path.join(root, "images", e["image"])).convert("RGB"))
                          for e in entries])
    return images, [parse_caption(e["caption"][0]) for e in entries]


def main():
    from appzoo.blip_retrieval.data.builders import synthetic_dir
    from appzoo.blip_retrieval.data.synthetic import make_synthetic_dataset
    from appzoo.blip_retrieval.data.transforms import create_transform
    from appzoo.blip_retrieval.model.config import VIT_STEMS, create_config
    from appzoo.blip_retrieval.model.vision_encoder import VisionEncoder
    from appzoo.blip_retrieval.params import SCHEMA

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vit", default="tiny", choices=("tiny", "small"))
    parser.add_argument("--vit_stem", default="patch", choices=VIT_STEMS)
    parser.add_argument("--vit_init_std", type=float, default=0.02)
    parser.add_argument("--patch_size", type=int, default=8)
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--synthetic_dir", default="")
    args = parser.parse_args()
    torch.set_num_threads(1)
    root = synthetic_dir(SCHEMA.resolve({"synthetic_dir": args.synthetic_dir}))
    make_synthetic_dataset(root)  # reused when present (as the demo's)
    transform = create_transform(args.image_size, train=False)
    train_x, train_attrs = load_split(root, "train", transform)
    test_x, test_attrs = load_split(root, "test", transform)
    classes = [sorted({a[k] for a in train_attrs}) for k in range(len(ATTRIBUTES))]
    train_y = torch.tensor([[classes[k].index(a[k]) for k in range(len(ATTRIBUTES))] for a in train_attrs])
    test_y = torch.tensor([[classes[k].index(a[k]) if a[k] in classes[k] else -1 for k in range(len(ATTRIBUTES))]
                           for a in test_attrs])

    torch.manual_seed(args.seed)
    config = create_config(args.vit, args.image_size, vision={"patch_size": args.patch_size, "stem": args.vit_stem,
                                                               "init_std": args.vit_init_std}).vision
    encoder = VisionEncoder(config)
    heads = nn.ModuleList(nn.Linear(config.width, len(c)) for c in classes)
    optimizer = torch.optim.AdamW(list(encoder.parameters()) + list(heads.parameters()), lr=1e-3, weight_decay=0.05)
    generator = torch.Generator().manual_seed(args.seed)
    start = time.time()
    print(f"vit={args.vit} vit_stem={args.vit_stem} vit_init_std={args.vit_init_std} patch_size={args.patch_size} "
          f"image_size={args.image_size}: test accuracy per attribute (chance "
          + ", ".join(f"{name} {1 / len(c):.2f}" for name, c in zip(ATTRIBUTES, classes)) + ")")
    for step in range(1, args.steps + 1):
        batch = torch.randint(0, len(train_x), (16,), generator=generator)
        cls = encoder(train_x[batch])[:, 0]
        loss = sum(nn.functional.cross_entropy(head(cls), train_y[batch, k]) for k, head in enumerate(heads))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % max(1, args.steps // 4) == 0 or step == args.steps:
            with torch.no_grad():
                cls = encoder(test_x)[:, 0]
                accs = [(heads[k](cls).argmax(1) == test_y[:, k]).float().mean().item() for k in range(len(heads))]
            print(f"step {step}: " + " ".join(f"{n} {a:.2f}" for n, a in zip(ATTRIBUTES, accs))
                  + f" ({time.time() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
