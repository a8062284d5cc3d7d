"""Measure what a train transform does to the attributes the synthetic captions state.

For synthetic images (drawn as the demo's generator draws them, stored at 128 px, transformed to
--image-size) the shape's mask is transformed with the same random draws as the image, and each attribute
is read back from the result the way a caption states it:

- colour: mean colour of the (transformed) shape pixels -> nearest of the palette's colours;
- background: median colour of the pixels away from the shape -> nearest background colour;
- size: nominal half-extent x sqrt(area after / area before) -> small or large (threshold: their geometric mean);
- position: vertical centroid of the mask -> nearest of top / middle / bottom;
- all 4: colour, background, size and position all still read as captioned;
- lost: the shape has under 2 pixels left.

The mask image carries a marker (G = B = 255), so that the grey fill of RandomAugment's warps is told
apart from the shape and counted as background.

It prints, per transform (and per RandomAugment op at the official magnitude), the share of samples
whose attribute still reads as the caption says. A diagnostic of the demo data, not part of training.

    python scripts/augment_attributes.py --image-size 48 --samples 1000
"""
import argparse
import io
import math

import numpy as np
import torch
from PIL import Image
from torchvision import transforms
from torchvision.transforms import InterpolationMode

from appzoo.blip_retrieval.data import randaugment, synthetic
from appzoo.blip_retrieval.data.transforms import CLIP_MEAN, CLIP_STD, create_transform
from easyretrieval.engine.rng import seeded_cpu_rngs

STORED_SIZE = 128  # the demo's JPEGs; the transform resizes them to --image-size


def sample_images(n, seed):
    """n (attrs, PIL image as stored, shape mask as stored) triples drawn like the generator's."""
    rng = np.random.default_rng(seed)
    space = synthetic.attribute_space()
    out = []
    for k in rng.integers(len(space), size=n):
        attrs = space[k]
        img = synthetic.draw_image(attrs, STORED_SIZE, rng)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=synthetic.JPEG_QUALITY, subsampling=0)
        img = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
        arr = np.asarray(img, dtype=np.float32)
        fg = np.array(synthetic.COLOURS[attrs[0]], dtype=np.float32)
        bg = np.array(synthetic.BACKGROUNDS[attrs[4]], dtype=np.float32)
        mask = np.linalg.norm(arr - fg, axis=2) < np.linalg.norm(arr - bg, axis=2)
        # R: the shape; G, B: 255 everywhere, so that pixels a warp fills (RandomAugment's grey 128) show.
        full = np.full(mask.shape, 255.0)
        marker = np.stack([mask * 255.0, full, full], axis=2)
        out.append((attrs, img, Image.fromarray(marker.astype(np.uint8))))
    return out


def _unnormalise(t):
    mean = torch.tensor(CLIP_MEAN).view(3, 1, 1)
    std = torch.tensor(CLIP_STD).view(3, 1, 1)
    return (t * std + mean).clamp(0, 1).permute(1, 2, 0).numpy() * 255.0


def _as_array(x):
    if torch.is_tensor(x):
        return _unnormalise(x)  # our transforms end with ToTensor + Normalize
    return np.asarray(x, dtype=np.float32)


def _nearest(value, palette):
    names = list(palette)
    dist = [np.linalg.norm(value - np.array(palette[n], dtype=np.float32)) for n in names]
    return names[int(np.argmin(dist))]


def read_attributes(image, mask, size):
    """(colour, background, size word, position word, lost) as the transformed pixels show them."""
    image, marker = _as_array(image), _as_array(mask) / 255.0
    valid = marker[..., 1] > 0.75  # not filled in by a warp
    mask = np.where(valid, marker[..., 0], 0.0)
    inside, outside = mask > 0.75, (mask < 0.1) | ~valid  # a warp's grey fill is background as seen
    area = float((mask > 0.5).sum())
    if inside.sum() < 2 or area < 2:
        return None, _nearest(np.median(image[outside], axis=0), synthetic.BACKGROUNDS), None, None, True
    colour = _nearest(image[inside].mean(axis=0), synthetic.COLOURS)
    background = _nearest(np.median(image[outside], axis=0), synthetic.BACKGROUNDS) if outside.any() else None
    ys = np.nonzero(mask > 0.5)[0]
    cy = (ys.mean() + 0.5) / size
    position = min(synthetic.POSITIONS, key=lambda p: abs(synthetic.POSITIONS[p] - cy))
    return colour, background, area, position, False


def measure(samples, transform, size, seed):
    """Share (%) of samples whose colour / background / size / position still read as captioned."""
    reference = transforms.Resize((size, size), interpolation=InterpolationMode.BICUBIC)
    threshold = math.sqrt(synthetic.SIZES["small"] * synthetic.SIZES["large"])
    hits = {"colour": 0, "background": 0, "size": 0, "position": 0, "all": 0, "lost": 0}
    for i, (attrs, img, mask) in enumerate(samples):
        with seeded_cpu_rngs(seed + i):
            out_img = transform(img)
        with seeded_cpu_rngs(seed + i):
            out_mask = transform(mask)
        colour, background, area, position, lost = read_attributes(out_img, out_mask, size)
        base_area = float((np.asarray(reference(mask), dtype=np.float32)[..., 0] > 127.5).sum())
        hits["lost"] += lost
        hits["colour"] += colour == attrs[0]
        hits["background"] += background == attrs[4]
        if not lost:
            half_extent = synthetic.SIZES[attrs[2]] * math.sqrt(area / max(base_area, 1.0))
            size_ok = ("small" if half_extent < threshold else "large") == attrs[2]
            hits["size"] += size_ok
            hits["position"] += position == attrs[3]
            hits["all"] += size_ok and (colour, background, position) == (attrs[0], attrs[4], attrs[3])
    return {k: 100.0 * v / len(samples) for k, v in hits.items()}


def transforms_to_measure(size):
    """name -> transform (PIL -> tensor or array) for the official pieces and each train_augment setting."""
    crop = transforms.RandomResizedCrop(size, scale=(0.5, 1.0), interpolation=InterpolationMode.BICUBIC)
    resize = transforms.Resize((size, size), interpolation=InterpolationMode.BICUBIC)
    out = {
        "test (resize only)": create_transform(size, train=False),
        "RandomResizedCrop(0.5-1) only": crop,
        "RandomAugment(2,5) only": transforms.Compose([resize, randaugment.RandomAugment(2, 5, isPIL=True)]),
    }
    try:
        from appzoo.blip_retrieval.data.transforms import TRAIN_AUGMENTS
    except ImportError:  # before train_augment existed: the official train transform only
        out["official train transform"] = create_transform(size, train=True)
        return out
    for name in TRAIN_AUGMENTS:
        out[f"train_augment={name}"] = create_transform(size, train=True, augment=name)
    return out


def per_op(size):
    """Each RandomAugment op applied on its own at the official magnitude M=5 (signs drawn as official)."""
    resize = transforms.Resize((size, size), interpolation=InterpolationMode.BICUBIC)
    out = {}
    for name in randaugment.OFFICIAL_AUGS:
        fn, to_args = randaugment.OPS[name]

        def apply(img, fn=fn, to_args=to_args):
            return fn(np.array(resize(img)), *to_args(5))

        out[f"  op {name}"] = apply
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image-size", type=int, default=48)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    samples = sample_images(args.samples, args.seed)
    print(f"{args.samples} synthetic images, stored at {STORED_SIZE} px, transformed to {args.image_size} px; "
          "share (%) whose attribute reads as the caption states it")
    print(f"{'transform':34s} {'colour':>7s} {'backgr':>7s} {'size':>7s} {'posit':>7s} {'all 4':>7s} {'lost':>7s}")
    rows = dict(transforms_to_measure(args.image_size))
    rows.update(per_op(args.image_size))
    for name, transform in rows.items():
        r = measure(samples, transform, args.image_size, args.seed * 7919 + 1)
        print(f"{name:34s} {r['colour']:7.1f} {r['background']:7.1f} {r['size']:7.1f} {r['position']:7.1f} "
              f"{r['all']:7.1f} {r['lost']:7.1f}")


if __name__ == "__main__":
    main()
