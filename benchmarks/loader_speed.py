"""Training-loader throughput, and the train transform against the official composition.

Writes --images JPEG files of --source-size (smooth random content, like photos to the decoder) to
--data-dir. Two measurements:

* Loader (--workers): builds the blip_retrieval train dataset with the train transform at --image-size
  (RandomResizedCrop, flip, RandomAugment, normalise) and times `create_train_loader` for each entry of
  --workers: images per second over --batches batches after the first (the first batch includes starting
  the workers; samples cycle over the files). With 0 workers the figure is one process's rate (images/s
  per worker).
* Transform (--transform-images N): images/s of one loader worker (this process, one torch and one
  OpenCV thread) turning N JPEG files into train tensors, ours (`read_image` + `create_transform`) against
  the official composition built from the same operations (PIL open + convert('RGB'), then torchvision
  RandomResizedCrop, flip, RandomAugment, ToTensor, Normalize: `official_transform`). Each image is seeded
  the same on both sides and the tensors must be identical. --rounds rounds, alternating which side goes
  first; each side's best round counts. Prints ours / official (the goal is >= 1.0).

Prints a table and, with --json, writes the rows (and the transform comparison).

  python benchmarks/loader_speed.py                                   # CPU: 0 and 2 workers
  python benchmarks/loader_speed.py --workers '' --transform-images 200   # transform: ours vs official
  python benchmarks/loader_speed.py --workers 8,16 --batches 40      # GPU machine (benchmarks/gpu_suite.py)
"""
import argparse
import json
import os
import tempfile
import time

import cv2
import numpy as np
import torch
from PIL import Image

from appzoo.blip_retrieval.data.datasets import RetrievalTrainDataset, read_image
from appzoo.blip_retrieval.data.loaders import create_train_loader
from appzoo.blip_retrieval.data.transforms import create_transform, official_transform
from easyretrieval.distributed import DistInfo


def write_images(root, count, width, height, samples, seed=0):
    """`count` JPEG files (quality 90) and an official-format train annotation of `samples` entries that
    cycle over them; returns (annotation path, image folder)."""
    rng = np.random.default_rng(seed)
    folder = os.path.join(root, f"jpeg_{width}x{height}")
    os.makedirs(folder, exist_ok=True)
    entries = []
    for i in range(count):
        name = f"{i:06d}.jpg"
        path = os.path.join(folder, name)
        if not os.path.exists(path):
            coarse = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
            image = Image.fromarray(coarse).resize((width, height), Image.BICUBIC)
            noise = rng.integers(-12, 13, size=(height, width, 3))
            pixels = np.clip(np.asarray(image, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(path, format="JPEG", quality=90)
    for i in range(max(count, samples)):
        entries.append({"image": f"{i % count:06d}.jpg", "caption": f"picture number {i}", "image_id": str(i % count)})
    ann = os.path.join(folder, f"train_{count}_{samples}.json")
    with open(ann, "w", encoding="utf-8") as handle:
        json.dump(entries, handle)
    return ann, folder


def time_loader(dataset, workers, batch, batches):
    """Images per second of the train loader over `batches` batches after the first."""
    loader = create_train_loader(dataset, batch, DistInfo(), num_workers=workers, pin_memory=False,
                                 persistent_workers=False, seed=0)
    loader.sampler.set_epoch(0)
    iterator = iter(loader)
    next(iterator)  # worker start-up and the first batch are not counted
    start = time.perf_counter()
    done = 0
    for _ in range(batches):
        try:
            images, _captions, _idx = next(iterator)
        except StopIteration:
            break
        done += images.shape[0]
    seconds = time.perf_counter() - start
    del iterator
    return done / seconds, done, seconds


def _official_read(path):
    """Official flickr30k_train.__getitem__: Image.open(path).convert('RGB')."""
    return Image.open(path).convert("RGB")


def time_transform(paths, read, transform):
    """Seconds to turn every file of `paths` into a train tensor; image i is seeded with i."""
    start = time.perf_counter()
    for i, path in enumerate(paths):
        torch.manual_seed(i)
        np.random.seed(i)
        transform(read(path))
    return time.perf_counter() - start


def same_tensors(paths, sides):
    """Whether both sides give the identical tensor for every file (image i seeded with i on both)."""
    for i, path in enumerate(paths):
        outputs = []
        for read, transform in sides.values():
            torch.manual_seed(i)
            np.random.seed(i)
            outputs.append(transform(read(path)))
        if not torch.equal(*outputs):
            return False
    return True


def compare_transforms(paths, image_size, rounds):
    """Best-round images/s of ours and of the official composition over `paths`, and whether every tensor
    was identical. One torch and one OpenCV thread, as in a loader worker."""
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    sides = {"ours": (read_image, create_transform(image_size, True)),
             "official": (_official_read, official_transform(image_size, True))}
    identical = same_tensors(paths, sides)  # untimed; also warms both sides up
    best = {name: float("inf") for name in sides}
    for r in range(rounds):
        for name in (["official", "ours"] if r % 2 == 0 else ["ours", "official"]):
            best[name] = min(best[name], time_transform(paths, *sides[name]))
        print(f"  round {r + 1}: ours {len(paths) / best['ours']:.1f}, official {len(paths) / best['official']:.1f} "
              f"images/s (best so far)", flush=True)
    ours, official = len(paths) / best["ours"], len(paths) / best["official"]
    return {"images": len(paths), "rounds": rounds, "ours_images_per_s": ours, "official_images_per_s": official,
            "ratio": ours / official, "identical": identical}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=256, help="JPEG files to write (samples cycle over them)")
    parser.add_argument("--source-size", default="640x480", help="WIDTHxHEIGHT of the JPEG files")
    parser.add_argument("--image-size", type=int, default=384, help="train transform output size")
    parser.add_argument("--workers", default="0,2", help="comma-separated loader worker counts ('' = none)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=8, help="timed batches per worker count")
    parser.add_argument("--data-dir", default=os.path.join(tempfile.gettempdir(), "easyretrieval_loader_speed"))
    parser.add_argument("--transform-images", type=int, default=0,
                        help="also time the train transform, ours vs official, on this many files (0 = off)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the transform comparison")
    parser.add_argument("--json", default="", help="also write the rows to this file (after each row)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.source_size.lower().split("x"))

    tick = time.perf_counter()
    samples = max((args.batches + 2) * args.batch, args.transform_images)
    ann, folder = write_images(args.data_dir, args.images, width, height, samples)
    dataset = RetrievalTrainDataset(ann, folder, create_transform(args.image_size, True))
    print(f"{args.images} JPEG files {width}x{height} -> train transform {args.image_size} px, batch {args.batch}, "
          f"{os.cpu_count()} CPUs, set-up {time.perf_counter() - tick:.1f} s", flush=True)
    report = {"image_size": args.image_size, "source_size": [width, height], "batch": args.batch,
              "cpus": os.cpu_count(), "rows": []}

    def write_json():
        if args.json:
            with open(args.json, "w", encoding="utf-8") as handle:
                json.dump(report, handle, indent=1)

    for workers in [int(w) for w in args.workers.split(",") if w.strip()]:
        rate, done, seconds = time_loader(dataset, workers, args.batch, args.batches)
        per_worker = rate / max(workers, 1)
        report["rows"].append({"workers": workers, "images_per_s": rate, "images_per_s_per_worker": per_worker,
                               "images": done, "seconds": seconds})
        print(f"workers {workers:3d}: {rate:9.1f} images/s ({per_worker:.1f} per worker; {done} images in "
              f"{seconds:.2f} s)", flush=True)
        write_json()
    if args.transform_images > 0:
        paths = [os.path.join(folder, ann_entry["image"]) for ann_entry in dataset.annotation[:args.transform_images]]
        print(f"train transform, one worker, {len(paths)} files, {args.rounds} rounds:", flush=True)
        result = compare_transforms(paths, args.image_size, args.rounds)
        report["transform"] = result
        print(f"transform: ours {result['ours_images_per_s']:.1f} images/s, official "
              f"{result['official_images_per_s']:.1f} images/s per worker: ratio {result['ratio']:.2f}x; "
              f"tensors {'identical' if result['identical'] else 'DIFFERENT'}", flush=True)
        write_json()
        if not result["identical"]:
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
