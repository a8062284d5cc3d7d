"""Evaluation speed: the official BLIP loop vs our evaluator, same model and data, in one run (issue 7).

(a) official_reference.official_evaluation: one query at a time, image embeddings repeated k_test
times, fp32; (b) appzoo.blip_retrieval.evaluation.RetrievalEvaluator. Checks that R@K are identical
(and reports the largest score difference; exit code 1 when they differ), prints both times and the
ratio, and one JSON line.
The gallery is real JPEG files (random blocks) with random captions, written to --data-dir.

  python benchmarks/eval_speed.py                                   # CPU: small ViT, 200 images, 1,000 texts, k 32
  python benchmarks/eval_speed.py --vit base --image-size 384 --images 1000 --k-test 128   # GPU
  python benchmarks/eval_speed.py ... --precision bf16              # ours under bf16 autocast (GPU)
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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vit", default="small")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--captions-per-image", type=int, default=5)
    parser.add_argument("--k-test", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32, help="images per encoder batch (both)")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"), help="ours only")
    parser.add_argument("--itm-batch-size", type=int, default=256)
    parser.add_argument("--vocab", default="", help="a vocab.txt (default: built from the captions)")
    parser.add_argument("--data-dir", default=os.path.join(tempfile.gettempdir(), "easyretrieval_eval_speed"))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--skip-official", action="store_true", help="time ours only")
    args = parser.parse_args()

    device = torch.device(args.device)
    ann = write_gallery(args.data_dir, args.images, args.captions_per_image)
    dataset = RetrievalEvalDataset(ann, os.path.join(args.data_dir, "images"), create_transform(args.image_size, False))
    vocab = args.vocab or build_wordpiece_vocab(dataset.text, os.path.join(args.data_dir, "vocab.txt"), vocab_size=400)
    tokenizer = create_tokenizer(vocab)
    torch.manual_seed(0)
    model = BlipRetrieval(create_config(args.vit, args.image_size, vocab_size=len(tokenizer), queue_size=8),
                          tokenizer).to(device).eval()
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), "
          f"threads {torch.get_num_threads()}, vit {args.vit} {args.image_size}px, {len(dataset)} images, "
          f"{len(dataset.text)} texts, k_test {args.k_test}", flush=True)

    evaluator = RetrievalEvaluator(args.k_test, args.batch_size, precision=args.precision, device=device,
                                   progress=False, itm_batch_size=args.itm_batch_size)
    with torch.no_grad():  # warm-up (kernels, allocator) for both paths
        image = torch.randn(2, 3, args.image_size, args.image_size, device=device)
        ids = tokenizer(["a dog", "a cat"], padding="max_length", max_length=35, return_tensors="pt").to(device)
        embeds = model.encode_image(image)
        model.itm_logits(embeds, ids.input_ids, ids.attention_mask)
        model.itm_logits_cached(model.cross_kv(embeds), torch.arange(2, device=device), ids.input_ids, ids.attention_mask)
    synchronize(device)

    tick = time.perf_counter()
    ours = evaluator.evaluate(model, dataset)
    synchronize(device)
    t_ours = time.perf_counter() - tick
    out = {"device": str(device), "vit": args.vit, "image_size": args.image_size, "images": len(dataset),
           "texts": len(dataset.text), "k_test": args.k_test, "precision": args.precision, "ours_s": round(t_ours, 3),
           "ours_timings": {k: round(v, 3) for k, v in ours.timings.items()},
           "itm_pairs_ours": ours.stats["itm_pairs_this_rank"], "itm_pairs_official": ours.stats["itm_pairs_official"],
           "metrics_ours": ours.metrics}
    print(f"ours:     {t_ours:9.2f} s  {ours.timings}", flush=True)
    if not args.skip_official:
        loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=False)
        tick = time.perf_counter()
        ref = official_evaluation(model, loader, dataset.text, args.k_test, device=device)
        synchronize(device)
        t_ref = time.perf_counter() - tick
        ref_metrics = itm_eval(ref.scores_i2t, ref.scores_t2i, dataset.txt2img, dataset.img2txt)
        diff = max(float((ours.scores_i2t - ref.scores_i2t).abs().max()), float((ours.scores_t2i - ref.scores_t2i).abs().max()))
        same = ref_metrics == ours.metrics
        out.update(official_s=round(t_ref, 3), speedup=round(t_ref / t_ours, 2), max_abs_score_diff=diff,
                   recall_identical=same, metrics_official=ref_metrics)
        print(f"official: {t_ref:9.2f} s", flush=True)
        print(f"speed-up: {t_ref / t_ours:.2f}x   R@K identical: {same}   max |score diff|: {diff:.2e}", flush=True)
        if not same:
            print(f"official {ref_metrics}\nours     {ours.metrics}", flush=True)
    print(json.dumps(out), flush=True)
    return 0 if out.get("recall_identical", True) else 1


if __name__ == "__main__":
    raise SystemExit(main())
