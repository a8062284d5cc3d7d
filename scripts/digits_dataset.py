"""A second synthetic image-caption dataset, unlike the demo's, to check that a recipe is not tuned to it.

Each image holds one seven-segment digit with four attributes: the digit (0-9), its colour (scarlet,
navy, lime, teal, violet, gold), the background texture (plain, striped, dotted, checkered) and the side
it stands on (left or right: words a horizontal flip makes false). Captions use other words and other
sentence shapes than the shapes dataset (numerals or number words, texture synonyms). Within a split
every image has a distinct attribute tuple. Written in the official format (train: one entry per
caption with image_id; val/test: a caption list per image), byte-identical for the same arguments:

    python scripts/digits_dataset.py OUT_DIR [--seed 0]
    easyretrieval --app blip_retrieval --mode train ... --user_defined_parameters "dataset=custom \
        image_root=OUT_DIR/images ann_root=OUT_DIR/annotations train_file=digits_train.json \
        val_file=digits_val.json test_file=digits_test.json ..."
"""
import argparse
import io
import json
import os

import numpy as np
from PIL import Image, ImageDraw

COLOURS = {"scarlet": (200, 20, 40), "navy": (20, 30, 120), "lime": (120, 220, 30), "teal": (0, 128, 128),
           "violet": (150, 60, 220), "gold": (230, 180, 0)}
TEXTURES = ("plain", "striped", "dotted", "checkered")
SIDES = {"left": 0.3, "right": 0.7}  # horizontal centre of the digit, as a fraction of the side
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# Seven segments a-g lit for each digit (a top, b top-right, c bottom-right, d bottom, e bottom-left,
# f top-left, g middle).
SEGMENTS = ("abcdef", "bc", "abdeg", "abcdg", "bcfg", "acdfg", "acdefg", "abc", "abcdefg", "abcdfg")
_TEXTURE_WORDS = {"plain": ("plain", "blank", "empty"), "striped": ("striped", "stripy", "lined"),
                  "dotted": ("dotted", "spotted", "polka dot"), "checkered": ("checkered", "chequered", "checked")}
_SIDE_WORDS = {"left": ("left", "left-hand"), "right": ("right", "right-hand")}
_TEMPLATES = (
    "the digit {num} in {colour} on the {side} of a {texture} background",
    "a {colour} {num} sits on the {side} side of a {texture} backdrop",
    "{texture} backdrop with the number {num} drawn in {colour} at the {side}",
    "on a {texture} pattern a {colour} numeral {num} appears to the {side}",
    "number {num}, {colour}, {side} half, {texture} texture",
    "a {colour} figure {num} placed {side} over a {texture} surface",
)
BASE, INK = (232, 228, 218), (170, 166, 158)  # background and texture tones


def attribute_space():
    return [(d, c, t, s) for d in range(10) for c in COLOURS for t in TEXTURES for s in SIDES]


def _texture(draw, texture, big, period):
    if texture == "striped":
        for y in range(0, big, period):
            draw.rectangle([0, y, big, y + period // 2 - 1], fill=INK)
    elif texture == "dotted":
        r = period // 4
        for y in range(period // 2, big, period):
            for x in range(period // 2, big, period):
                draw.ellipse([x - r, y - r, x + r, y + r], fill=INK)
    elif texture == "checkered":
        for y in range(0, big, period):
            for x in range(0, big, period):
                if (x // period + y // period) % 2:
                    draw.rectangle([x, y, x + period - 1, y + period - 1], fill=INK)


def draw_image(attrs, image_size, rng):
    """One digit image, drawn at 2x and downsampled, with jitter of place, size and colour."""
    digit, colour, texture, side = attrs
    big = image_size * 2
    img = Image.new("RGB", (big, big), BASE)
    draw = ImageDraw.Draw(img)
    _texture(draw, texture, big, period=max(4, big // 12))
    h = big * 0.55 * (1 + rng.uniform(-0.08, 0.08))
    w, t = h * 0.5, h * 0.13
    cx = big * (SIDES[side] + rng.uniform(-0.05, 0.05))
    cy = big * (0.5 + rng.uniform(-0.08, 0.08))
    x0, x1, y0, ym, y1 = cx - w / 2, cx + w / 2, cy - h / 2, cy, cy + h / 2
    bars = {"a": (x0, y0, x1, y0 + t), "d": (x0, y1 - t, x1, y1), "g": (x0, ym - t / 2, x1, ym + t / 2),
            "f": (x0, y0, x0 + t, ym), "e": (x0, ym, x0 + t, y1), "b": (x1 - t, y0, x1, ym), "c": (x1 - t, ym, x1, y1)}
    fill = tuple(int(v) for v in np.clip(np.array(COLOURS[colour]) + rng.integers(-10, 11, size=3), 0, 255))
    for seg in SEGMENTS[digit]:
        draw.rectangle(bars[seg], fill=fill)
    return img.resize((image_size, image_size), Image.Resampling.BOX)


def make_captions(attrs, n, rng):
    digit, colour, texture, side = attrs
    captions = []
    for k in rng.permutation(len(_TEMPLATES))[:n]:
        num = NUMBER_WORDS[digit] if rng.random() < 0.5 else str(digit)
        captions.append(_TEMPLATES[k].format(
            num=num, colour=colour, side=_SIDE_WORDS[side][rng.integers(2)],
            texture=_TEXTURE_WORDS[texture][rng.integers(3)]))
    return captions


def make_digits_dataset(out_dir, seed=0, n_train=400, n_val=100, n_test=100, image_size=96, captions_per_image=5):
    """Write the dataset into out_dir (images/<split>/*.jpg, annotations/digits_<split>.json)."""
    rng = np.random.default_rng(seed)
    space = attribute_space()
    os.makedirs(os.path.join(out_dir, "annotations"), exist_ok=True)
    for split, count in (("train", n_train), ("val", n_val), ("test", n_test)):
        os.makedirs(os.path.join(out_dir, "images", split), exist_ok=True)
        entries = []
        for i, k in enumerate(rng.choice(len(space), size=count, replace=False)):
            rel = f"{split}/{i:05d}.jpg"
            buf = io.BytesIO()
            draw_image(space[k], image_size, rng).save(buf, format="JPEG", quality=90, subsampling=0)
            with open(os.path.join(out_dir, "images", rel), "wb") as f:
                f.write(buf.getvalue())
            caps = make_captions(space[k], captions_per_image, rng)
            if split == "train":
                entries += [{"image": rel, "caption": c, "image_id": f"{split}_{i:05d}"} for c in caps]
            else:
                entries.append({"image": rel, "caption": caps})
        with open(os.path.join(out_dir, "annotations", f"digits_{split}.json"), "w", encoding="utf-8") as f:
            json.dump(entries, f, indent=1, sort_keys=True)
    return os.path.join(out_dir, "images"), os.path.join(out_dir, "annotations")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(make_digits_dataset(args.out_dir, seed=args.seed))


if __name__ == "__main__":
    main()
