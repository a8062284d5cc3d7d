"""Start-up time of a one-process CPU run: DeepSpeed's backend as DeepSpeed sets it up by default (its CPU
accelerator JIT-compiles the shm communication op) vs easyretrieval's init_distributed (which skips that op,
engine/deepspeed_internals.py), each in a fresh process with an empty TORCH_EXTENSIONS_DIR (a first run, or
one after another virtualenv rebuilt the op). Then the wall time of a whole tiny `--mode train` (4 images,
vit=tiny, 32 px, one epoch, val evaluated) through the CLI.

    python benchmarks/startup_time.py [--repeats 1] [--skip-train]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

STARTS = {
    "deepspeed default": ("import datetime, deepspeed\n"
                          "deepspeed.init_distributed(dist_backend='gloo', auto_mpi_discovery=False, rank=0, "
                          "world_size=1, timeout=datetime.timedelta(seconds=60))\n"),
    "easyretrieval": ("from easyretrieval.distributed import DistInfo, init_distributed\n"
                      "init_distributed(DistInfo(), timeout_s=60)\n"),
}
TIMED = "import time\nstart = time.perf_counter()\n{body}print('SECONDS', time.perf_counter() - start)\n"


def _env(extensions):
    env = dict(os.environ, TORCH_EXTENSIONS_DIR=extensions, MASTER_ADDR="127.0.0.1", MASTER_PORT="29533",
               RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", OMP_NUM_THREADS="1")
    return env


def time_start(body):
    """Seconds from `import deepspeed` to a ready backend, and the whole process's seconds."""
    with tempfile.TemporaryDirectory() as extensions:
        tick = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", TIMED.format(body=body)], env=_env(extensions),
                              capture_output=True, text=True, timeout=900)
        total = time.perf_counter() - tick
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    inner = float(proc.stdout.split("SECONDS")[-1])
    return inner, total


def time_tiny_train():
    from PIL import Image, ImageDraw

    with tempfile.TemporaryDirectory() as root:
        os.makedirs(os.path.join(root, "data", "images"))
        train, ev = [], []
        for name, rgb in [("red", (210, 40, 40)), ("green", (40, 180, 60)), ("blue", (40, 60, 210)),
                          ("yellow", (225, 215, 30))]:
            image = Image.new("RGB", (48, 40), (250, 250, 250))
            ImageDraw.Draw(image).rectangle((8, 6, 40, 34), fill=rgb)
            image.save(os.path.join(root, "data", "images", f"{name}.jpg"), quality=90)
            captions = [f"a {name} box on white", f"white picture with a {name} block"]
            train += [{"image": f"{name}.jpg", "caption": c, "image_id": name} for c in captions]
            ev.append({"image": f"{name}.jpg", "caption": captions})
        for split, entries in (("train", train), ("val", ev)):
            with open(os.path.join(root, "data", f"{split}.json"), "w") as f:
                json.dump(entries, f)
        params = ("dataset=custom image_root=data/images ann_root=data train_file=train.json val_file=val.json "
                  "eval_splits=val vit=tiny tokenizer=build image_size=32 queue_size=8 batch_size_train=4 "
                  "batch_size_test=4 k_test=4 num_workers=0 max_epoch=1")
        env = dict(os.environ, TORCH_EXTENSIONS_DIR=os.path.join(root, "ext"), OMP_NUM_THREADS="1")
        tick = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "easyretrieval.cli", "--app", "blip_retrieval", "--mode", "train",
                               "--output_dir", "out", "--user_defined_parameters", params], cwd=root, env=env,
                              capture_output=True, text=True, timeout=900)
        seconds = time.perf_counter() - tick
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-3000:])
        compiled = os.path.isdir(os.path.join(root, "ext")) and bool(os.listdir(os.path.join(root, "ext")))
        return seconds, compiled


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--skip-train", action="store_true")
    args = parser.parse_args()
    best = {}
    for _ in range(args.repeats):
        for name, body in STARTS.items():
            inner, total = time_start(body)
            best[name] = min(best.get(name, (inner, total)), (inner, total))
            print(f"{name:18s} backend ready in {inner:6.1f} s (process {total:6.1f} s)", flush=True)
    ratio = best["deepspeed default"][0] / best["easyretrieval"][0]
    print(f"start-up ratio (DeepSpeed default / ours, backend ready, best of {args.repeats}): {ratio:.1f}x")
    if not args.skip_train:
        seconds, compiled = time_tiny_train()
        print(f"tiny --mode train (one epoch, 4 images, val evaluated): {seconds:.1f} s wall, "
              f"C++ compiled: {'yes' if compiled else 'no'}")
    print(f"load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
