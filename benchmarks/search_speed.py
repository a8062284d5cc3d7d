"""Search speed of a gallery index: FAISS against a brute-force numpy scan, and one query end to end.

1. synthetic: an index of --gallery (10,000) random L2-normalised embeddings (embed_dim of the model) built
   through GalleryStore/GalleryIndex (flat, ivf, hnsw); each of --queries text-query vectors searched alone
   (top 10) through the index's FAISS search and through a numpy scan (gallery @ q, argpartition, sort);
   median per query of both and the ratio; then all queries at once (a --queries file); the approximate
   kinds' recall@10 against the scan. (Each timed in a block of its own: calls of FAISS and numpy taken in
   turns make their thread pools fight, about 4 ms a call on 2 cores, which no search does.)
2. real: --real-images (300) JPEG files embedded with `Index.build` (images/s), then text queries through
   `Index.search` against numpy over the same features, and --rerank (16) from the files vs from stored ViT
   embeddings (float16).
3. end to end: one text query on a --gallery-image index (features of 10,000 entries whose files cycle
   through the real JPEGs, the model's identity recorded), through `Index.search(model, [text])` as
   `easyretrieval search` runs it once the model is loaded: text encoder, identity check, FAISS, hits;
   without and with --rerank 16 (16 files read, ViT, ITM). Goal: under 50 ms without re-rank. With --cli
   also the wall time of a whole `easyretrieval search` process (interpreter, imports, model load).

  python benchmarks/search_speed.py                          # CPU, vit=small 224 px (random weights)
  python benchmarks/search_speed.py --vit base --image-size 384 --real-images 100
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

from appzoo.blip_retrieval.index.api import Index
from appzoo.blip_retrieval.index.identity import model_identity, source_record
from appzoo.blip_retrieval.model.blip_retrieval import BlipRetrieval
from appzoo.blip_retrieval.model.config import create_config
from appzoo.blip_retrieval.model.tokenizer import build_wordpiece_vocab, create_tokenizer
from easyretrieval.index import GalleryIndex, GalleryStore

WORDS = ("red green blue dog cat man woman boat lake grass park runs sits walks on the a in near big small house "
         "tree car bird fence beach window book sofa child plays").split()


def unit_rows(n, dim, seed):
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def numpy_top_k(gallery, query, k):
    scores = gallery @ query
    part = np.argpartition(-scores, k)[:k]
    order = part[np.argsort(-scores[part], kind="stable")]
    return order, scores[order]


def _summary(times):
    times = sorted(times)
    return statistics.median(times), times[int(0.9 * (len(times) - 1))]


def numpy_top_k_rows(gallery, queries, k):
    scores = queries @ gallery.T
    part = np.argpartition(-scores, k, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1, kind="stable")
    return np.take_along_axis(part, order, 1)


def timed(fn, repeats, warmup=3):
    """Median and 90th percentile of `repeats` calls fn(i) (after `warmup` calls), in milliseconds."""
    for i in range(warmup):
        fn(i)
    times = []
    for i in range(repeats):
        tick = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - tick) * 1000)
    return _summary(times)


def synthetic(args, dim, folder):
    rows = []
    gallery = unit_rows(args.gallery, dim, 0)
    queries = unit_rows(args.queries, dim, 1)
    for kind in ("flat", "ivf", "hnsw"):
        store = GalleryStore.create_or_open(os.path.join(folder, f"synthetic_index_{kind}"), {"bench": 1}, dim, kind)
        for start in range(0, args.gallery, 1000):
            store.commit_shard(0, gallery[start:start + 1000],
                               [{"id": f"{i:06d}", "path": f"{i:06d}.jpg"} for i in range(start, start + 1000)])
        index = GalleryIndex.finalize(store)
        features = index.features  # rows sorted by id: the same order as `gallery`
        n = len(queries)
        faiss_ms = timed(lambda i: index.search(queries[i % n][None], 10), args.queries)
        numpy_ms = timed(lambda i: numpy_top_k(features, queries[i % n], 10), args.queries)
        # A batch of queries at once (a --queries file): FAISS's BLAS path against one numpy matrix product.
        faiss_batch = timed(lambda i: index.search(queries, 10), 10)
        numpy_batch = timed(lambda i: numpy_top_k_rows(features, queries, 10), 10)
        found = index.search(queries, 10).row
        recall = np.mean([len(set(found[q]) & set(numpy_top_k(features, queries[q], 10)[0])) / 10
                          for q in range(n)])
        rows.append({"kind": kind, "faiss_ms": faiss_ms, "numpy_ms": numpy_ms, "ratio": numpy_ms[0] / faiss_ms[0],
                     "batch": n, "faiss_batch_ms_per_query": faiss_batch[0] / n,
                     "numpy_batch_ms_per_query": numpy_batch[0] / n, "batch_ratio": numpy_batch[0] / faiss_batch[0],
                     "recall_at_10_vs_numpy": float(recall)})
    return rows


def write_jpegs(folder, count, seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i in range(count):
        path = os.path.join(folder, f"photo_{i:04d}.jpg")
        if not os.path.isfile(path):
            blocks = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
            Image.fromarray(blocks.repeat(40, 0).repeat(40, 1)).save(path, quality=90)  # 320x320
        paths.append(path)
    return paths


def query_texts(count, seed=2):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(4, 12)))) for _ in range(count)]


def real(args, model, folder, texts):
    paths = write_jpegs(os.path.join(folder, "jpegs"), args.real_images)
    out = {}
    tick = time.perf_counter()
    index = Index.build(model, paths, os.path.join(folder, "real_index"), batch_size=32, num_workers=0,
                        progress=False)
    out["build_images_per_s"] = len(paths) / (time.perf_counter() - tick)
    stored = Index.build(model, paths, os.path.join(folder, "real_index_vit"), store_vit=True, progress=False)
    features = index.gallery.features
    feats = model.embed_texts(texts).numpy()
    n = len(texts)
    out["faiss_ms"] = timed(lambda i: index.gallery.search(feats[i % n][None], 10), args.queries)
    out["numpy_ms"] = timed(lambda i: numpy_top_k(features, feats[i % n], 10), args.queries)
    out["ratio"] = out["numpy_ms"][0] / out["faiss_ms"][0]
    out["rerank_files_ms"] = timed(lambda i: index.search(model, [texts[i % n]], 10, args.rerank), args.rerank_repeats,
                                   warmup=1)
    out["rerank_stored_vit_ms"] = timed(lambda i: stored.search(model, [texts[i % n]], 10, args.rerank),
                                        args.rerank_repeats, warmup=1)
    exact, approx = index.search(model, texts[:20], 10, args.rerank), stored.search(model, texts[:20], 10, args.rerank)
    out["stored_vit_max_score_diff"] = max(abs(a.score - b.score) for x, y in zip(exact, approx)
                                           for a, b in zip(x.hits, y.hits))
    out["stored_vit_same_ranking"] = all([h.path for h in x.hits] == [h.path for h in y.hits]
                                         for x, y in zip(exact, approx))
    return out, paths


def end_to_end(args, model, folder, paths, texts, model_dir):
    """A --gallery-entry index with the model's identity whose files cycle through the real JPEGs."""
    target = os.path.join(folder, "e2e_index")
    store = GalleryStore.create_or_open(target, model_identity(model), model.config.embed_dim, "flat",
                                        {"source": source_record(model_dir), "store_vit": False})
    features = unit_rows(args.gallery, model.config.embed_dim, 3)
    for start in range(0, args.gallery, 1000):
        ids = range(start, min(start + 1000, args.gallery))
        store.commit_shard(0, features[start:start + 1000], [
            {"id": f"e2e/{i:06d}.jpg", "path": paths[i % len(paths)], "name": f"e2e/{i:06d}.jpg"} for i in ids])
    GalleryIndex.finalize(store)
    index = Index.open(target)
    out = {"images": len(index)}
    n = len(texts)
    out["query_ms"] = timed(lambda i: index.search(model, [texts[i % n]], 10), args.queries)
    out["query_rerank_ms"] = timed(lambda i: index.search(model, [texts[i % n]], 10, args.rerank), args.rerank_repeats,
                                   warmup=1)
    if args.cli:
        cmd = [sys.executable, "-c", "import sys; from easyretrieval.cli import main; sys.exit(main())", "search",
               "--index", target, "--query", texts[0], "--device", "cpu"]
        walls = []
        for rerank in ("0", str(args.rerank)):
            tick = time.perf_counter()
            proc = subprocess.run(cmd + ["--rerank", rerank], capture_output=True, text=True, timeout=600)
            walls.append(time.perf_counter() - tick)
            if proc.returncode != 0:
                raise RuntimeError(proc.stderr[-2000:])
        out["cli_process_s"] = walls
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vit", default="small")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--gallery", type=int, default=10000)
    parser.add_argument("--real-images", type=int, default=300)
    parser.add_argument("--queries", type=int, default=100, help="timed queries per measurement")
    parser.add_argument("--rerank", type=int, default=16)
    parser.add_argument("--rerank-repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--cli", action="store_true", help="also time whole `easyretrieval search` processes")
    parser.add_argument("--data-dir", default=os.path.join(tempfile.gettempdir(), "easyretrieval_search_speed"))
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    folder = os.path.join(args.data_dir, f"{args.vit}_{args.image_size}")
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):  # indexes of an earlier run (the JPEG files and the model are kept)
        if "index" in name:
            shutil.rmtree(os.path.join(folder, name))
    texts = query_texts(max(args.queries, 20))
    tokenizer = create_tokenizer(build_wordpiece_vocab(texts * 3, os.path.join(folder, "vocab.txt"), vocab_size=200))
    torch.manual_seed(0)
    model_dir = os.path.join(folder, "model")
    if not os.path.isfile(os.path.join(model_dir, "model.safetensors")):
        BlipRetrieval(create_config(args.vit, args.image_size, vocab_size=len(tokenizer), queue_size=8),
                      tokenizer).save_pretrained(model_dir)
    model = BlipRetrieval.from_pretrained(model_dir)
    result = {"vit": args.vit, "image_size": args.image_size, "embed_dim": model.config.embed_dim,
              "torch_threads": torch.get_num_threads(), "load_average": os.getloadavg()}
    result["synthetic"] = synthetic(args, model.config.embed_dim, folder)
    result["real"], paths = real(args, model, folder, texts)
    result["end_to_end"] = end_to_end(args, model, folder, paths, texts, model_dir)
    result["load_average_after"] = os.getloadavg()

    def ms(pair):
        return f"{pair[0]:.2f} ms (p90 {pair[1]:.2f})"

    print(f"vit={args.vit} {args.image_size} px, embed_dim {model.config.embed_dim}, {torch.get_num_threads()} "
          f"torch threads, load {result['load_average'][0]:.1f}")
    for row in result["synthetic"]:
        print(f"synthetic {args.gallery} x {row['kind']:4s}: one query FAISS {ms(row['faiss_ms'])}, numpy scan "
              f"{ms(row['numpy_ms'])}: {row['ratio']:.2f}x; {row['batch']} at once FAISS "
              f"{row['faiss_batch_ms_per_query']:.3f} ms, numpy {row['numpy_batch_ms_per_query']:.3f} ms per query: "
              f"{row['batch_ratio']:.2f}x; recall@10 vs scan {row['recall_at_10_vs_numpy']:.3f}")
    r = result["real"]
    print(f"real {args.real_images} JPEGs: build {r['build_images_per_s']:.1f} images/s; FAISS {ms(r['faiss_ms'])}, "
          f"numpy {ms(r['numpy_ms'])}: {r['ratio']:.2f}x; rerank {args.rerank} from files {ms(r['rerank_files_ms'])}, "
          f"from stored ViT {ms(r['rerank_stored_vit_ms'])} (max score difference "
          f"{r['stored_vit_max_score_diff']:.2e}, same ranking {r['stored_vit_same_ranking']})")
    e = result["end_to_end"]
    print(f"end to end, one text query on {e['images']} images: {ms(e['query_ms'])} without re-rank, "
          f"{ms(e['query_rerank_ms'])} with --rerank {args.rerank}"
          + (f"; whole CLI process {e['cli_process_s'][0]:.1f} s / {e['cli_process_s'][1]:.1f} s" if args.cli else ""))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=1)


if __name__ == "__main__":
    main()
