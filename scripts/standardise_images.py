"""Copy an image-caption dataset with each colour channel standardised over its train images (a diagnostic).

Every image under IMAGE_ROOT (recursively, JPEG/PNG) is rewritten under OUT/images so that, after the CLIP
normalisation of the transforms, each channel of the train images has mean 0 and std 1:
p' = m + s * (((p - m) / s - mu) / sd), with m, s the CLIP mean/std and mu, sd the train images' channel mean
and std after the CLIP normalisation; values are clipped to [0, 1] (the share clipped is printed). The
annotation files are copied unchanged to OUT/annotations. It tests whether a dataset's pixel statistics
keep a scratch model collapsed (README "Training from scratch"); training does not use it.

    python scripts/standardise_images.py DIR/images DIR/annotations OUT --train_subdir train
"""
import argparse
import os
import shutil

import numpy as np
from PIL import Image

from appzoo.blip_retrieval.data.transforms import CLIP_MEAN, CLIP_STD

EXTENSIONS = (".jpg", ".jpeg", ".png")


def image_files(root):
    """Paths relative to root of its images, sorted."""
    found = []
    for folder, _dirs, names in os.walk(root):
        found += [os.path.relpath(os.path.join(folder, n), root) for n in names if n.lower().endswith(EXTENSIONS)]
    return sorted(found)


def read(path):
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("image_root")
    parser.add_argument("ann_root")
    parser.add_argument("out")
    parser.add_argument("--train_subdir", default="train", help="folder under image_root with the train images")
    args = parser.parse_args()
    files = image_files(args.image_root)
    train = [f for f in files if f.startswith(args.train_subdir + os.sep)]
    if not train:
        raise SystemExit(f"standardise_images: no images under {os.path.join(args.image_root, args.train_subdir)}")
    mean, std = np.array(CLIP_MEAN), np.array(CLIP_STD)
    normed = np.stack([(read(os.path.join(args.image_root, f)) - mean) / std for f in train])
    mu, sd = normed.mean((0, 1, 2)), normed.std((0, 1, 2))
    print(f"train channels after CLIP normalisation: mean {mu.round(3)}, std {sd.round(3)}")
    shutil.copytree(args.ann_root, os.path.join(args.out, "annotations"), dirs_exist_ok=True)
    clipped = 0.0
    for f in files:
        p = read(os.path.join(args.image_root, f))
        q = mean + std * (((p - mean) / std - mu) / sd)
        clipped += ((q < 0) | (q > 1)).mean()
        target = os.path.join(args.out, "images", f)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        Image.fromarray((np.clip(q, 0, 1) * 255).round().astype(np.uint8)).save(target, quality=95)
    print(f"{len(files)} images written to {os.path.join(args.out, 'images')}; "
          f"share of values clipped {clipped / len(files):.4f}")


if __name__ == "__main__":
    main()
