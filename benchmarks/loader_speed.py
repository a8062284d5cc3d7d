"""Training-loader throughput: JPEG files -> the train transform -> batches, with 0..N loader workers.

Writes --images JPEG files of --source-size (smooth random content, like photos to the decoder) to
--data-dir, builds the blip_retrieval train dataset with the train transform at --image-size
(RandomResizedCrop, flip, RandomAugment, normalise) and times `create_train_loader` for each entry of
--workers: images per second over --batches batches after the first (the first batch includes starting
the workers; samples cycle over the files). With 0 workers the figure is one process's rate (images/s per worker). Prints a table and,
with --json, writes the rows.

  python benchmarks/loader_speed.py                                   # CPU: 0 and 2 workers
  python benchmarks/loader_speed.py --workers 8,16 --batches 40      # GPU machine (benchmarks/gpu_suite.py)
"""
import argparse
import json
import os
import tempfile
import time

import numpy as np
from PIL import Image

from appzoo.blip_retrieval.data.datasets import RetrievalTrainDataset
from appzoo.blip_retrieval.data.loaders import create_train_loader
from appzoo.blip_retrieval.data.transforms import create_transform
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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=256, help="JPEG files to write (samples cycle over them)")
    parser.add_argument("--source-size", default="640x480", help="WIDTHxHEIGHT of the JPEG files")
    parser.add_argument("--image-size", type=int, default=384, help="train transform output size")
    parser.add_argument("--workers", default="0,2", help="comma-separated loader worker counts")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=8, help="timed batches per worker count")
    parser.add_argument("--data-dir", default=os.path.join(tempfile.gettempdir(), "easyretrieval_loader_speed"))
    parser.add_argument("--json", default="", help="also write the rows to this file (after each row)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.source_size.lower().split("x"))

    tick = time.perf_counter()
    ann, folder = write_images(args.data_dir, args.images, width, height, (args.batches + 2) * args.batch)
    dataset = RetrievalTrainDataset(ann, folder, create_transform(args.image_size, True))
    print(f"{args.images} JPEG files {width}x{height} -> train transform {args.image_size} px, batch {args.batch}, "
          f"{os.cpu_count()} CPUs, set-up {time.perf_counter() - tick:.1f} s", flush=True)
    rows = []
    for workers in [int(w) for w in args.workers.split(",")]:
        rate, done, seconds = time_loader(dataset, workers, args.batch, args.batches)
        per_worker = rate / max(workers, 1)
        rows.append({"workers": workers, "images_per_s": rate, "images_per_s_per_worker": per_worker,
                     "images": done, "seconds": seconds})
        print(f"workers {workers:3d}: {rate:9.1f} images/s ({per_worker:.1f} per worker; {done} images in "
              f"{seconds:.2f} s)", flush=True)
        if args.json:
            with open(args.json, "w", encoding="utf-8") as handle:
                json.dump({"image_size": args.image_size, "source_size": [width, height], "batch": args.batch,
                           "cpus": os.cpu_count(), "rows": rows}, handle, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
