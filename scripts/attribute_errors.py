"""Which attributes a model trained on the synthetic shapes gets wrong, and which its ITC features encode.

Two reports on a finished run of `dataset=synthetic` (the attributes are read back from the captions with
the generator's own word lists, appzoo/blip_retrieval/data/synthetic.py):

- errors: for every wrong top-1 of the best epoch's rankings (OUTPUT_DIR/<split>_rankings.npz), the set of
  attributes (colour, shape, size, position, background) in which the retrieved item differs from the query;
- probe: a ridge-regression linear probe of each attribute from the ITC features of OUTPUT_DIR/best, fitted
  on the train images / captions and scored on the test split (chance: 1 / number of values).

    python scripts/attribute_errors.py OUTPUT_DIR [--split test] [--synthetic_dir DIR]
"""
import argparse
import collections
import json
import os
import re

import numpy as np

from appzoo.blip_retrieval.data import synthetic as S

ATTRIBUTES = ("colour", "shape", "size", "position", "background")


def parse_caption(caption):
    """(colour, shape, size, position, background) stated by a synthetic caption; '?' where not one value."""
    def one(found):
        return found[0] if len(found) == 1 else "?"

    words = {
        "colour": [c for c in S.COLOURS if re.search(rf"\b{c}\b", caption)],
        "shape": [s for s in S.SHAPES if re.search(rf"\b{s}\b", caption)],
        "size": [z for z, ws in S._SIZE_WORDS.items() if any(re.search(rf"\b{w}\b", caption) for w in ws)],
        "position": [p for p, ws in S._POSITION_WORDS.items() if any(w in caption for w in ws)],
        "background": [b for b in S.BACKGROUNDS if re.search(
            rf"\b{b} background|over {b}\b|on {b}\b|background( is)? {b}\b|a {b} image", caption)],
    }
    return tuple(one(words[a]) for a in ATTRIBUTES)


def split_entries(ann_root, split):
    """The split's annotation entries, one per image ({"image", "caption": [...]}, train's captions grouped)."""
    with open(os.path.join(ann_root, f"synthetic_{split}.json"), encoding="utf-8") as f:
        entries = json.load(f)
    if split == "train":  # one entry per caption -> one per image
        grouped = collections.OrderedDict()
        for e in entries:
            grouped.setdefault(e["image"], []).append(e["caption"])
        entries = [{"image": k, "caption": v} for k, v in grouped.items()]
    return entries


def _differ(a, b):
    return tuple(name for name, x, y in zip(ATTRIBUTES, a, b) if x != y) or ("none",)


def error_report(output_dir, ann_root, split):
    """{direction: (wrong, total, Counter of differing-attribute sets)} of the top-1 in the rankings."""
    entries = split_entries(ann_root, split)
    image_attrs = [parse_caption(e["caption"][0]) for e in entries]
    text_attrs, text_image = [], []
    for i, e in enumerate(entries):
        for c in e["caption"]:
            text_attrs.append(parse_caption(c))
            text_image.append(i)
    rankings = np.load(os.path.join(output_dir, f"{split}_rankings.npz"))
    t2i = collections.Counter(_differ(image_attrs[row[0]], text_attrs[t])
                              for t, row in enumerate(rankings["t2i_index"]) if row[0] != text_image[t])
    i2t = collections.Counter(_differ(image_attrs[i], text_attrs[row[0]])
                              for i, row in enumerate(rankings["i2t_index"]) if text_image[row[0]] != i)
    return {"text->image": (sum(t2i.values()), len(text_attrs), t2i),
            "image->text": (sum(i2t.values()), len(entries), i2t)}


def _ridge_accuracy(x_fit, y_fit, x_score, y_score):
    classes = sorted(set(y_fit))
    targets = np.array([[float(y == c) for c in classes] for y in y_fit])
    a = np.c_[x_fit, np.ones(len(x_fit))]
    w = np.linalg.solve(a.T @ a + 1e-2 * np.eye(a.shape[1]), a.T @ targets)
    pred = (np.c_[x_score, np.ones(len(x_score))] @ w).argmax(1)
    return float(np.mean([classes[p] == y for p, y in zip(pred, y_score)]))


def probe_report(output_dir, ann_root, image_root, split):
    """{attribute: (image accuracy, text accuracy, chance)} of linear probes of OUTPUT_DIR/best's ITC features."""
    import torch

    from appzoo.blip_retrieval import BlipRetrieval

    model = BlipRetrieval.from_pretrained(os.path.join(output_dir, "best"))
    feats = {}
    for part in ("train", split):
        entries = split_entries(ann_root, part)
        captions = [c for e in entries for c in e["caption"]]
        with torch.no_grad():
            images = model.embed_images([os.path.join(image_root, e["image"]) for e in entries]).numpy()
            texts = model.embed_texts(captions).numpy()
        feats[part] = (images, [parse_caption(e["caption"][0]) for e in entries], texts,
                       [parse_caption(c) for c in captions])
    report = {}
    for k, name in enumerate(ATTRIBUTES):
        fit, score = feats["train"], feats[split]
        acc_image = _ridge_accuracy(fit[0], [a[k] for a in fit[1]], score[0], [a[k] for a in score[1]])
        acc_text = _ridge_accuracy(fit[2], [a[k] for a in fit[3]], score[2], [a[k] for a in score[3]])
        report[name] = (acc_image, acc_text, 1.0 / len({a[k] for a in fit[1]}))
    return report


def main():
    from appzoo.blip_retrieval.data.builders import synthetic_dir
    from appzoo.blip_retrieval.params import SCHEMA

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("output_dir", help="a finished train run of dataset=synthetic")
    parser.add_argument("--split", default="test", choices=("val", "test"))
    parser.add_argument("--synthetic_dir", default=None, help="where the dataset is (default: the run's own)")
    args = parser.parse_args()
    with open(os.path.join(args.output_dir, "config.json"), encoding="utf-8") as f:
        run = json.load(f)["parameters"]
    where = run.get("synthetic_dir", "") if args.synthetic_dir is None else args.synthetic_dir
    root = synthetic_dir(SCHEMA.resolve({"synthetic_dir": where, "synthetic_seed": str(run.get("synthetic_seed", 0))}))
    image_root, ann_root = os.path.join(root, "images"), os.path.join(root, "annotations")
    for direction, (wrong, total, sets) in error_report(args.output_dir, ann_root, args.split).items():
        common = ", ".join(f"{'+'.join(k)} {n}" for k, n in sets.most_common(6))
        print(f"{args.split} {direction}: {wrong} of {total} top-1 wrong; differing attributes: {common}")
    print(f"linear probe of the ITC features (fit on train, scored on {args.split}): accuracy image / text (chance)")
    for name, (acc_image, acc_text, chance) in probe_report(args.output_dir, ann_root, image_root,
                                                            args.split).items():
        print(f"  {name:10s} {acc_image:.2f} / {acc_text:.2f} ({chance:.2f})")


if __name__ == "__main__":
    main()
