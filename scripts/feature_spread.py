"""How alike a model's ITC image features of different images are: a check for collapsed features.

For the first --images images of an annotation file in the official format (val/test: one entry per image
with "image"), transformed as at evaluation (resize, CLIP normalisation), it prints the mean cosine between
the features of different images (off-diagonal mean of the cosine matrix; 1.0 = every image has the same
feature, so retrieval is at chance):

- pixels: of the normalised pixels themselves (high = the images share a large common component, e.g. a
  bright, low-contrast background, which the CLIP mean/std do not remove);
- pixels, channel-standardised: after subtracting these images' per-channel mean and dividing by their std;
- ITC features of a model, for both inputs: a scratch model (`--vit`, `--patch_size`, the official
  initialisation, seed --seed; --vit_linear_std redraws the ViT's Linear weights from trunc_normal(0, std)
  instead of the official 0.02) or, with --model, a saved model folder (see README "Python"), which also
  prints the mean cosine of the ITC features of the images' first captions.

A diagnostic for README "Training from scratch", not part of training:

    python scripts/feature_spread.py --image_root DIR/images --ann_file DIR/annotations/digits_test.json \
        --image_size 64 --patch_size 8
"""
import argparse
import json
import os

import torch
from PIL import Image
from timm.layers import trunc_normal_

from appzoo.blip_retrieval.data.transforms import create_transform
from appzoo.blip_retrieval.model import BlipRetrieval
from appzoo.blip_retrieval.model.config import create_config


def mean_offdiag_cosine(x):
    """Mean cosine between different rows of x [N, ...] (flattened), N >= 2."""
    x = torch.nn.functional.normalize(x.flatten(1).double(), dim=-1)
    sim = x @ x.t()
    n = len(x)
    return ((sim.sum() - sim.diagonal().sum()) / (n * (n - 1))).item()


def channel_standardised(images):
    """images [N, 3, H, W] with each channel's mean over these images 0 and its std 1."""
    mean = images.mean((0, 2, 3), keepdim=True)
    std = images.std((0, 2, 3), keepdim=True).clamp_min(1e-6)
    return (images - mean) / std


def load_entries(image_root, ann_file, count, image_size):
    """(images [count, 3, S, S] as at evaluation, first captions) of the first `count` entries."""
    with open(ann_file, encoding="utf-8") as f:
        entries = json.load(f)[:count]
    if len(entries) < 2:
        raise SystemExit(f"feature_spread: {ann_file} has {len(entries)} entries; need at least 2")
    transform = create_transform(image_size, train=False)
    images = torch.stack([transform(Image.open(os.path.join(image_root, e["image"])).convert("RGB"))
                          for e in entries])
    captions = [e["caption"][0] if isinstance(e["caption"], list) else e["caption"] for e in entries]
    return images, captions


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image_root", required=True)
    parser.add_argument("--ann_file", required=True, help="official-format annotation JSON (val/test layout)")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--vit", default="tiny", help="named size of the scratch model (without --model)")
    parser.add_argument("--patch_size", type=int, default=16, help="of the scratch model (without --model)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vit_linear_std", type=float, default=0.0,
                        help="scratch model: redraw the ViT's Linear weights with this std (0: official 0.02)")
    parser.add_argument("--model", default="", help="a saved model folder instead of a scratch model")
    args = parser.parse_args()

    images, captions = load_entries(args.image_root, args.ann_file, args.images, args.image_size)
    standardised = channel_standardised(images)
    print(f"{len(images)} images; mean cosine between different images:")
    print(f"  {'pixels:':<40s}{mean_offdiag_cosine(images):.4f}")
    print(f"  {'pixels, channel-standardised:':<40s}{mean_offdiag_cosine(standardised):.4f}")
    torch.manual_seed(args.seed)
    if args.model:
        model = BlipRetrieval.from_pretrained(args.model)
        label = args.model
    else:
        model = BlipRetrieval(create_config(args.vit, args.image_size, queue_size=64,
                                            vision={"patch_size": args.patch_size}))
        label = f"scratch vit={args.vit} patch_size={args.patch_size} seed={args.seed}"
        if args.vit_linear_std:
            for module in model.visual_encoder.modules():
                if isinstance(module, torch.nn.Linear):
                    trunc_normal_(module.weight, std=args.vit_linear_std)
            label += f" vit_linear_std={args.vit_linear_std}"
    model.eval()
    with torch.no_grad():
        for name, batch in (("ITC image features", images), ("ITC image features, standardised input", standardised)):
            spread = mean_offdiag_cosine(model.image_feat(model.encode_image(batch)))
            print(f"  {name + ':':<40s}{spread:.6f}  ({label})")
        if args.model:
            tokens = model.tokenize(captions, "cpu")
            text = model.text_feat(model.encode_text(tokens.input_ids, tokens.attention_mask))
            print(f"  {'ITC text features (first captions):':<40s}{mean_offdiag_cosine(text):.6f}  ({label})")


if __name__ == "__main__":
    main()
