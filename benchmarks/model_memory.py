"""Peak memory and step time of one BLIP retrieval training step, with and without ViT checkpointing.

Default runs (issue 3): vit=base at 384 px, batch 8, vit_ckpt_layer 0 and 4; vit=large with 10.
Runs on CUDA when present (peak = torch.cuda.max_memory_allocated), else on CPU (peak = bytes of
activations saved for backward, counted with saved_tensors_hooks). Prints one line per setup and the
ratio to the setup without checkpointing of the same size.

  python benchmarks/model_memory.py [--steps 5] [--batch 8] [--image-size 384] [--setups base:0,base:4,large:10]
      [--json rows.json]
"""
import argparse
import json
import statistics
import time

import torch

from appzoo.blip_retrieval.model.blip_retrieval import BlipRetrieval
from appzoo.blip_retrieval.model.config import create_config
from appzoo.blip_retrieval.model.tokenizer import build_wordpiece_vocab, create_tokenizer

CAPTIONS = ["a dog runs on the grass near a lake", "two children play football in a park",
            "a man rides a red bicycle down the street", "a woman reads a book by the window"]


def _tokenizer(tmp_dir):
    return create_tokenizer(build_wordpiece_vocab(CAPTIONS * 4, f"{tmp_dir}/vocab.txt", vocab_size=200))


def run(vit, ckpt_layer, batch, image_size, steps, device, dtype, tokenizer):
    torch.manual_seed(0)
    config = create_config(vit, image_size, queue_size=57600,
                           vision={"grad_ckpt": ckpt_layer > 0, "ckpt_layer": ckpt_layer})
    model = BlipRetrieval(config, tokenizer).to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    image = torch.randn(batch, 3, image_size, image_size, device=device)
    captions = [CAPTIONS[i % len(CAPTIONS)] for i in range(batch)]
    idx = torch.arange(batch, device=device)
    saved = [0]

    def pack(t):
        saved[0] += t.numel() * t.element_size()
        return t

    times = []
    for step in range(steps + 1):  # step 0 warms up
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        saved[0] = 0
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32), \
                torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss_ita, loss_itm = model(image, captions, alpha=0.4, idx=idx)
        (loss_ita + loss_itm).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step:
            times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else saved[0]
    del model, optimizer
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return peak, statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setups", default="base:0,base:4,large:0,large:10", help="vit:vit_ckpt_layer,...")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=384)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="bf16")
    parser.add_argument("--json", default="", help="also write the rows to this file (after each row)")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    if device.type == "cpu":
        dtype = torch.float32  # bf16 on CPU is far slower than fp32
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = _tokenizer(tmp)
        name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
        what = "peak allocated" if device.type == "cuda" else "saved activations"
        print(f"device {name}, {args.dtype if device.type == 'cuda' else 'fp32'}, batch {args.batch}, "
              f"{args.image_size}px, median of {args.steps} steps; memory = {what}")
        baseline, rows = {}, []
        for setup in args.setups.split(","):
            vit, layers = setup.split(":")
            peak, seconds = run(vit, int(layers), args.batch, args.image_size, args.steps, device, dtype, tokenizer)
            base = baseline.setdefault(vit, (peak, seconds))
            print(f"vit={vit:5s} vit_ckpt_layer={int(layers):2d}  memory {peak / 2**30:7.2f} GiB "
                  f"({peak / base[0]:.2f}x)  step {seconds * 1000:8.1f} ms ({seconds / base[1]:.2f}x)", flush=True)
            rows.append({"vit": vit, "vit_ckpt_layer": int(layers), "memory_gib": peak / 2**30, "step_ms": seconds * 1000,
                         "memory_vs_no_ckpt": peak / base[0], "time_vs_no_ckpt": seconds / base[1]})
            if args.json:  # rewritten after every row, so a time box that ends the run keeps the finished rows
                with open(args.json, "w", encoding="utf-8") as handle:
                    json.dump({"device": name, "dtype": args.dtype if device.type == "cuda" else "fp32",
                               "batch": args.batch, "image_size": args.image_size, "memory": what, "rows": rows},
                              handle, indent=1)


if __name__ == "__main__":
    main()
