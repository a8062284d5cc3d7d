"""Download speed: easyretrieval's resolver vs a plain single-stream urllib download of the same file.

Both fetch a generated file (default 200 MB) from a local HTTP server running in its own process; the
resolver also hashes (sha256 + the server's Content-MD5), fsyncs and renames. Runs alternate, best of N.

    python benchmarks/download_speed.py [--size_mb 200] [--repeats 3]
"""
import argparse
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "easyretrieval",
                                "modelzoo"))
from local_servers import FaultyHttpServer  # noqa: E402

from easyretrieval.modelzoo import resolve  # noqa: E402

PATH = "/bench/model.pth"


def _serve(size, checksums, port_queue, stop_event):
    server = FaultyHttpServer(checksums=checksums)
    server.add(PATH, os.urandom(size))
    server.start()
    port_queue.put(server.port)
    stop_event.wait()
    server.stop()


def plain_download(url, dest):
    with urllib.request.urlopen(url) as response, open(dest, "wb") as f:
        for block in iter(lambda: response.read(1 << 20), b""):
            f.write(block)


def ours(url, cache_dir):
    return resolve(url, cache_dir=cache_dir, progress=False)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size_mb", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--checksums", default="md5", help="headers the server sends: md5, crc64, md5,crc64 or none")
    args = p.parse_args()
    checksums = () if args.checksums == "none" else tuple(args.checksums.split(","))
    ctx = multiprocessing.get_context("spawn")
    port_queue, stop = ctx.Queue(), ctx.Event()
    server = ctx.Process(target=_serve, args=(args.size_mb << 20, checksums, port_queue, stop), daemon=True)
    server.start()
    url = f"http://127.0.0.1:{port_queue.get(timeout=120)}{PATH}"
    work = tempfile.mkdtemp(prefix="er-bench-")
    times = {"plain urllib": [], "easyretrieval resolve": []}
    try:
        for i in range(args.repeats):
            dest = os.path.join(work, f"plain{i}")
            start = time.perf_counter()
            plain_download(url, dest)
            times["plain urllib"].append(time.perf_counter() - start)
            os.remove(dest)
            cache = os.path.join(work, f"cache{i}")
            start = time.perf_counter()
            path = ours(url, cache)
            times["easyretrieval resolve"].append(time.perf_counter() - start)
            assert os.path.getsize(path) == args.size_mb << 20
            shutil.rmtree(cache)
    finally:
        stop.set()
        server.join(timeout=10)
        shutil.rmtree(work, ignore_errors=True)
    best = {name: min(ts) for name, ts in times.items()}
    print(f"file: {args.size_mb} MiB over loopback, server checksum headers: {args.checksums}; best of {args.repeats}")
    for name, t in best.items():
        print(f"  {name:24s} {t:7.3f} s  {args.size_mb / t:8.1f} MiB/s   (all: {', '.join(f'{x:.3f}' for x in times[name])})")
    ratio = best["easyretrieval resolve"] / best["plain urllib"]
    verdict = "slower" if ratio > 1 else "faster"
    print(f"ratio ours/plain = {ratio:.2f}x time ({abs(ratio - 1) * 100:.0f}% {verdict}; ours also verifies "
          f"length + checksums, records sha256, fsyncs and renames atomically)")


if __name__ == "__main__":
    main()
