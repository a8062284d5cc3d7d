"""Evaluation speed: the official BLIP loop vs our evaluator, same model and data, in one run.

(a) official_reference.official_evaluation: one query at a time, image embeddings repeated k_test
times, fp32; (b) appzoo.blip_retrieval.evaluation.RetrievalEvaluator, once per --precisions entry.
Checks that R@K are identical (and reports the largest score difference; exit code 1 when they differ),
prints both times and the ratio, the R@K change of each further precision against the first, and one
JSON line (also written to --json).
With --official-queries N the official loop re-ranks only a fixed, evenly spaced sample of N image
queries and N * texts/images text queries; its time is extrapolated (feature stage + each direction's
re-rank time scaled to all queries), and exactness is checked on the sampled rows: every sampled query's
scores and the rank of its ground truth must equal ours (so R@K over those queries is identical).
The gallery is real JPEG files (random blocks) with random captions, written to --data-dir.

  python benchmarks/eval_speed.py                                   # CPU: small ViT, 200 images, 1,000 texts, k 32
  python benchmarks/eval_speed.py --vit base --image-size 384 --images 1000 --k-test 128 \
      --precisions fp32,bf16 --official-queries 40                  # GPU (benchmarks/gpu_suite.py)
"""
import argparse
import json
import os
import tempfile
import time

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from appzoo.blip_retrieval.data.datasets import RetrievalEvalDataset
from appzoo.blip_retrieval.data.transforms import create_transform
from appzoo.blip_retrieval.evaluation import RetrievalEvaluator, itm_eval, official_evaluation
from appzoo.blip_retrieval.evaluation.metrics import FILL_SCORE, dense_ranks
from appzoo.blip_retrieval.model.blip_retrieval import BlipRetrieval
from appzoo.blip_retrieval.model.config import create_config
from appzoo.blip_retrieval.model.tokenizer import build_wordpiece_vocab, create_tokenizer

WORDS = ("a an the red green blue yellow dog cat man woman child boat lake grass park street runs sits walks "
         "plays holds near on in under big small old young house tree car bird fence beach window book").split()


def write_gallery(root, num_images, captions_per_image, seed=0):
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    entries = []
    for i in range(num_images):
        name = f"{i:05d}.jpg"
        path = os.path.join(root, "images", name)
        if not os.path.exists(path):
            pixels = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8).repeat(32, 0).repeat(32, 1)
            Image.fromarray(pixels).save(path, format="JPEG", quality=90)
        caps = [" ".join(rng.choice(WORDS, size=int(rng.integers(6, 16)))) for _ in range(captions_per_image)]
        entries.append({"image": name, "caption": caps})
    ann = os.path.join(root, f"ann_{num_images}_{captions_per_image}.json")
    with open(ann, "w", encoding="utf-8") as handle:
        json.dump(entries, handle)
    return ann


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def even_sample(total, count):
    """`count` evenly spaced indices of range(total) (all when count >= total)."""
    if count >= total:
        return list(range(total))
    return [int(i) for i in np.linspace(0, total - 1, count).round()]


def _gt_table(lists):
    """Ragged ground-truth index lists -> [Q, G] int64, -1 padded."""
    width = max(len(g) for g in lists)
    return torch.tensor([list(g) + [-1] * (width - len(g)) for g in lists], dtype=torch.long)


def compare_sampled(ours, ref, dataset, i2t_rows, t2i_rows):
    """Largest score difference and whether each sampled query's ground-truth rank is the same."""
    ours_i2t, ours_t2i = ours.scores_i2t[i2t_rows], ours.scores_t2i[t2i_rows]
    ref_i2t, ref_t2i = ref.scores_i2t[i2t_rows], ref.scores_t2i[t2i_rows]
    diff = max(float((ours_i2t - ref_i2t).abs().max()), float((ours_t2i - ref_t2i).abs().max()))
    gt_i2t = _gt_table([dataset.img2txt[i] for i in i2t_rows])
    gt_t2i = _gt_table([[dataset.txt2img[t]] for t in t2i_rows])
    same = bool(torch.equal(dense_ranks(ours_i2t, gt_i2t), dense_ranks(ref_i2t, gt_i2t))
                and torch.equal(dense_ranks(ours_t2i, gt_t2i), dense_ranks(ref_t2i, gt_t2i)))
    return diff, same


def recall_change(metrics, reference):
    return {key: round(metrics[key] - reference[key], 4) for key in reference}


def score_change(result, reference):
    """How far another precision's ranking is from the reference's (meaningful on random weights too, where
    R@K sits at chance): the share of queries with the same top-1 candidate per direction, and the largest
    score difference over the pairs both re-ranked."""
    out = {}
    for name in ("i2t", "t2i"):
        ours, ref = getattr(result, name), getattr(reference, name)
        out[f"top1_agreement_{name}"] = round(float((ours.index[:, 0] == ref.index[:, 0]).mean()), 4)
    diffs = []
    for dense, dense_ref in ((result.scores_i2t, reference.scores_i2t), (result.scores_t2i, reference.scores_t2i)):
        both = (dense != FILL_SCORE) & (dense_ref != FILL_SCORE)
        diffs.append(float((dense - dense_ref)[both].abs().max()) if bool(both.any()) else 0.0)
    out["max_abs_score_diff_common_pairs"] = max(diffs)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vit", default="small")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--captions-per-image", type=int, default=5)
    parser.add_argument("--k-test", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32, help="images per encoder batch (both)")
    parser.add_argument("--precisions", default="fp32",
                        help="ours, comma-separated (fp32, bf16, fp16; half precision needs a GPU); the first is "
                             "compared with the official loop, the others with the first")
    parser.add_argument("--itm-batch-size", type=int, default=None, help="default: the evaluator's per device")
    parser.add_argument("--official-queries", type=int, default=0,
                        help="time the official loop on this many image queries (and texts/images times as many "
                             "text queries) and extrapolate; 0: all queries")
    parser.add_argument("--vocab", default="", help="a vocab.txt (default: built from the captions)")
    parser.add_argument("--data-dir", default=os.path.join(tempfile.gettempdir(), "easyretrieval_eval_speed"))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--skip-official", action="store_true", help="time ours only")
    parser.add_argument("--json", default="", help="also write the result object to this file")
    args = parser.parse_args()
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]

    device = torch.device(args.device)
    tick = time.perf_counter()
    ann = write_gallery(args.data_dir, args.images, args.captions_per_image)
    dataset = RetrievalEvalDataset(ann, os.path.join(args.data_dir, "images"), create_transform(args.image_size, False))
    vocab = args.vocab or build_wordpiece_vocab(dataset.text, os.path.join(args.data_dir, "vocab.txt"), vocab_size=400)
    tokenizer = create_tokenizer(vocab)
    torch.manual_seed(0)
    model = BlipRetrieval(create_config(args.vit, args.image_size, vocab_size=len(tokenizer), queue_size=8),
                          tokenizer).to(device).eval()
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), "
          f"threads {torch.get_num_threads()}, vit {args.vit} {args.image_size}px, {len(dataset)} images, "
          f"{len(dataset.text)} texts, k_test {args.k_test}, set-up {time.perf_counter() - tick:.1f} s", flush=True)

    with torch.no_grad():  # warm-up (kernels, allocator) for both paths
        image = torch.randn(2, 3, args.image_size, args.image_size, device=device)
        ids = tokenizer(["a dog", "a cat"], padding="max_length", max_length=35, return_tensors="pt").to(device)
        embeds = model.encode_image(image)
        model.itm_logits(embeds, ids.input_ids, ids.attention_mask)
        model.itm_logits_cached(model.cross_kv(embeds), torch.arange(2, device=device), ids.input_ids, ids.attention_mask)
    synchronize(device)

    out = {"device": str(device), "vit": args.vit, "image_size": args.image_size, "images": len(dataset),
           "texts": len(dataset.text), "k_test": args.k_test, "ours": {}}

    def dump():  # after every stage, so that a time box that ends the run keeps the finished stages
        if args.json:
            with open(args.json, "w", encoding="utf-8") as handle:
                json.dump(out, handle, indent=1)

    first = precisions[0]
    results = {first: time_ours(model, dataset, args, first, device, out)}
    dump()
    if not args.skip_official:
        time_official(model, dataset, args, device, results[first], out)
        dump()
    for precision in precisions[1:]:
        results[precision] = time_ours(model, dataset, args, precision, device, out)
        change = recall_change(results[precision].metrics, results[first].metrics)
        out["ours"][precision]["recall_change_vs_" + first] = change
        out["ours"][precision]["score_change_vs_" + first] = score_change(results[precision], results[first])
        print(f"  R@K change vs {first}: {change}\n  ranking vs {first}: "
              f"{out['ours'][precision]['score_change_vs_' + first]}", flush=True)
        dump()
    print(json.dumps(out), flush=True)
    return 0 if out.get("recall_identical", True) else 1


def time_ours(model, dataset, args, precision, device, out):
    """Our evaluator in `precision`; its row lands in out["ours"][precision]."""
    evaluator = RetrievalEvaluator(args.k_test, args.batch_size, precision=precision, device=device,
                                   progress=False, itm_batch_size=args.itm_batch_size)
    tick = time.perf_counter()
    result = evaluator.evaluate(model, dataset)
    synchronize(device)
    seconds = time.perf_counter() - tick
    out["ours"][precision] = {
        "seconds": round(seconds, 3), "timings": {k: round(v, 3) for k, v in result.timings.items()},
        "metrics": result.metrics, "itm_pairs": result.stats["itm_pairs_this_rank"],
        "itm_pairs_official": result.stats["itm_pairs_official"]}
    print(f"ours {precision}: {seconds:9.2f} s  {out['ours'][precision]['timings']}", flush=True)
    return result


def time_official(model, dataset, args, device, ours, out):
    """The official loop (all queries, or an evenly spaced sample extrapolated) against `ours`."""
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=False)
    sampled = 0 < args.official_queries < len(dataset)
    i2t_rows = even_sample(len(dataset), args.official_queries) if sampled else None
    t2i_rows = (even_sample(len(dataset.text), round(args.official_queries * len(dataset.text) / len(dataset)))
                if sampled else None)
    tick = time.perf_counter()
    ref = official_evaluation(model, loader, dataset.text, args.k_test, device=device,
                              i2t_queries=i2t_rows, t2i_queries=t2i_rows)
    synchronize(device)
    t_measured = time.perf_counter() - tick
    if sampled:
        t_ref = (ref.timings["features"] + ref.timings["itm_i2t"] * len(dataset) / len(i2t_rows)
                 + ref.timings["itm_t2i"] * len(dataset.text) / len(t2i_rows))
        diff, same = compare_sampled(ours, ref, dataset, i2t_rows, t2i_rows)
        ref_metrics = None
    else:
        t_ref = t_measured
        ref_metrics = itm_eval(ref.scores_i2t, ref.scores_t2i, dataset.txt2img, dataset.img2txt)
        diff = max(float((ours.scores_i2t - ref.scores_i2t).abs().max()),
                   float((ours.scores_t2i - ref.scores_t2i).abs().max()))
        same = ref_metrics == ours.metrics
    first = next(iter(out["ours"]))
    t_ours = out["ours"][first]["seconds"]
    out["official"] = {
        "seconds": round(t_ref, 3), "measured_seconds": round(t_measured, 3),
        "timings": {k: round(v, 3) for k, v in ref.timings.items()}, "extrapolated": sampled,
        "queries_timed": {"i2t": len(i2t_rows) if sampled else len(dataset),
                          "t2i": len(t2i_rows) if sampled else len(dataset.text)},
        "metrics": ref_metrics}
    out.update(speedup=round(t_ref / t_ours, 2), max_abs_score_diff=diff, recall_identical=same,
               recall_checked_on="sampled queries' ground-truth ranks" if sampled else "all queries")
    how = (f"extrapolated from {len(i2t_rows)} image + {len(t2i_rows)} text queries, measured {t_measured:.2f} s"
           if sampled else "all queries")
    print(f"official: {t_ref:9.2f} s  ({how})", flush=True)
    print(f"speed-up ({first}): {t_ref / t_ours:.2f}x   R@K identical ({out['recall_checked_on']}): {same}   "
          f"max |score diff|: {diff:.2e}", flush=True)
    if not same and ref_metrics is not None:
        print(f"official {ref_metrics}\nours     {ours.metrics}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
