"""A seeded synthetic retrieval dataset: real JPEG files of coloured shapes + flickr-format annotations.

Each image holds one shape with five attributes (colour, shape, size, vertical position, background);
captions state them in varied wording, so matching a caption to its image needs all attributes read
together (no single attribute separates 100 test images). Positions are vertical only: the official
train transform flips images horizontally. Within a split every image has a distinct attribute tuple.

Output is byte-identical for the same arguments (numpy Generator, PIL drawing, fixed JPEG settings,
sorted JSON). It is written to a temporary sibling folder and renamed into place, so a crash never
leaves a half dataset; MANIFEST.json records the arguments and a rerun with the same ones reuses it.
"""
import json
import os
import shutil
import uuid

import numpy as np
from PIL import Image, ImageDraw

from easyretrieval.errors import UserError

VERSION = 1
JPEG_QUALITY = 90
MANIFEST = "MANIFEST.json"
SPLITS = ("train", "val", "test")

COLOURS = {
    "red": (220, 30, 30), "green": (30, 170, 40), "blue": (30, 60, 220), "yellow": (235, 215, 20),
    "purple": (130, 40, 170), "orange": (245, 130, 20), "pink": (245, 120, 190), "cyan": (20, 200, 210),
}
BACKGROUNDS = {"white": (245, 245, 245), "black": (15, 15, 15), "gray": (128, 128, 128), "brown": (110, 70, 35)}
SHAPES = ("circle", "square", "triangle", "diamond", "cross")
SIZES = {"small": 0.13, "large": 0.23}  # half-extent as a fraction of the image side
POSITIONS = {"top": 0.26, "middle": 0.5, "bottom": 0.74}  # vertical centre as a fraction of the side

_SIZE_WORDS = {"small": ("small", "little", "tiny"), "large": ("large", "big", "huge")}
_POSITION_WORDS = {
    "top": ("top", "upper part", "top area"),
    "middle": ("middle", "centre", "center"),
    "bottom": ("bottom", "lower part", "bottom area"),
}
_TEMPLATES = (
    "a {size} {colour} {shape} at the {pos} of a {bg} background",
    "{bg} background with a {size} {colour} {shape} in the {pos}",
    "there is a {colour} {shape} in the {pos}, it is {size} and the background is {bg}",
    "a picture of a {size} {shape} coloured {colour}, placed in the {pos} over {bg}",
    "a {colour} {shape} of {size} size sits in the {pos} of the image, background {bg}",
    "in the {pos} of a {bg} image there is a {size} {colour} {shape}",
    "one {size} {shape}, {colour}, {pos} of the frame, on {bg}",
)


def attribute_space():
    """Every (colour, shape, size, position, background) tuple, in a fixed order."""
    return [(c, s, z, p, b) for c in COLOURS for s in SHAPES for z in SIZES for p in POSITIONS for b in BACKGROUNDS]


def draw_image(attrs, image_size, rng):
    """The image of one attribute tuple, drawn at 2x and downsampled (smooth edges), with small jitter."""
    colour, shape, size, position, background = attrs
    big = image_size * 2
    bg = np.array(BACKGROUNDS[background]) + rng.integers(-8, 9) + rng.integers(-3, 4, size=3)
    fg = np.array(COLOURS[colour]) + rng.integers(-12, 13, size=3)
    img = Image.new("RGB", (big, big), tuple(int(v) for v in np.clip(bg, 0, 255)))
    draw = ImageDraw.Draw(img)
    r = SIZES[size] * big * (1 + rng.uniform(-0.1, 0.1))
    cx = big * (0.5 + rng.uniform(-0.15, 0.15))
    cy = big * (POSITIONS[position] + rng.uniform(-0.03, 0.03))
    fill = tuple(int(v) for v in np.clip(fg, 0, 255))
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "square":
        draw.rectangle([cx - r * 0.9, cy - r * 0.9, cx + r * 0.9, cy + r * 0.9], fill=fill)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r * 0.8), (cx + r, cy + r * 0.8)], fill=fill)
    elif shape == "diamond":
        draw.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=fill)
    else:  # cross
        w = r * 0.35
        draw.rectangle([cx - r, cy - w, cx + r, cy + w], fill=fill)
        draw.rectangle([cx - w, cy - r, cx + w, cy + r], fill=fill)
    return img.resize((image_size, image_size), Image.Resampling.BOX)


def make_captions(attrs, n, rng):
    """`n` captions of one attribute tuple, each from a different template, with synonyms drawn by rng."""
    colour, shape, size, position, background = attrs
    if n > len(_TEMPLATES):
        raise ValueError(f"at most {len(_TEMPLATES)} captions per image")
    captions = []
    for t in rng.permutation(len(_TEMPLATES))[:n]:
        size_word = _SIZE_WORDS[size][rng.integers(len(_SIZE_WORDS[size]))]
        pos_word = _POSITION_WORDS[position][rng.integers(len(_POSITION_WORDS[position]))]
        captions.append(_TEMPLATES[t].format(size=size_word, colour=colour, shape=shape, pos=pos_word, bg=background))
    return captions


def _encode_jpeg(img):
    import io

    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=False, progressive=False, subsampling=0)
    return buf.getvalue()


def _write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, sort_keys=True, ensure_ascii=False)
        f.write("\n")


def _generate(root, seed, counts, image_size, captions_per_image):
    rng = np.random.default_rng(seed)
    space = attribute_space()
    if max(counts.values()) > len(space):
        raise ValueError(f"a split cannot exceed {len(space)} images (distinct attribute tuples)")
    for split in SPLITS:
        os.makedirs(os.path.join(root, "images", split))
        chosen = rng.choice(len(space), size=counts[split], replace=False)
        entries = []
        for i, k in enumerate(chosen):
            rel = f"{split}/{i:05d}.jpg"
            with open(os.path.join(root, "images", rel), "wb") as f:
                f.write(_encode_jpeg(draw_image(space[k], image_size, rng)))
            caps = make_captions(space[k], captions_per_image, rng)
            if split == "train":  # official train format: one entry per caption
                entries += [{"image": rel, "caption": c, "image_id": f"{split}_{i:05d}"} for c in caps]
            else:
                entries.append({"image": rel, "caption": caps})
        os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
        _write_json(os.path.join(root, "annotations", f"synthetic_{split}.json"), entries)


def make_synthetic_dataset(out_dir, seed=0, n_train=500, n_val=100, n_test=100, image_size=128,
                           captions_per_image=5):
    """Generate (or reuse) the dataset in `out_dir`; returns (image_root, ann_root)."""
    manifest = {"version": VERSION, "seed": seed, "n_train": n_train, "n_val": n_val, "n_test": n_test,
                "image_size": image_size, "captions_per_image": captions_per_image, "jpeg_quality": JPEG_QUALITY}
    out_dir = os.path.abspath(out_dir)
    result = (os.path.join(out_dir, "images"), os.path.join(out_dir, "annotations"))
    if _matches(out_dir, manifest):
        return result
    if os.path.exists(out_dir):
        raise UserError(f"synthetic_dir '{out_dir}' exists but does not hold this synthetic dataset "
                        f"(seed {seed}, version {VERSION}); remove it or choose another synthetic_dir")
    os.makedirs(os.path.dirname(out_dir), exist_ok=True)
    tmp = f"{out_dir}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        os.makedirs(tmp)
        counts = {"train": n_train, "val": n_val, "test": n_test}
        _generate(tmp, seed, counts, image_size, captions_per_image)
        _write_json(os.path.join(tmp, MANIFEST), manifest)  # written last: its presence means complete
        try:
            os.rename(tmp, out_dir)
        except OSError:
            if not _matches(out_dir, manifest):  # lost a race to a writer of something else
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def _matches(out_dir, manifest):
    try:
        with open(os.path.join(out_dir, MANIFEST), encoding="utf-8") as f:
            return json.load(f) == manifest
    except (OSError, ValueError):
        return False
