"""Training speed and peak memory: our DeepSpeed engine (each ZeRO stage, each vit_ckpt_layer setting) against
a plain PyTorch DDP fp32 loop of the same model (the official recipe), in one run; prints ratios.

    torchrun --nproc_per_node 2 benchmarks/train_speed.py --vit tiny --image_size 64 --batch 8   # CPU
    torchrun --nproc_per_node 1 benchmarks/train_speed.py --vit base --image_size 384 --batch 32 \
        --precision bf16 --ckpt_layers 0,4                                                          # one GPU
Random images and captions (the speed of the model and engine, not of JPEG decoding). A setup that runs
out of GPU memory is reported as not fitting. `--json PATH` also writes the rows (main rank).
"""
import argparse
import gc
import json
import resource
import time

import torch
import torch.distributed as dist

from appzoo.blip_retrieval.model import build_wordpiece_vocab, create_config, create_model, create_tokenizer
from easyretrieval.distributed import device_for, dist_info_from_env, exit_process, init_distributed, \
    shutdown_distributed
from easyretrieval.engine.ds_config import DEFAULT_DS_CONFIG, DsParams, build_ds_config
from easyretrieval.engine.trainer import build_engine

WORDS = "a red blue green small large circle square dog cat runs on the beach in field with".split()


def _captions(n, gen):
    return [" ".join(WORDS[i] for i in torch.randint(len(WORDS), (8,), generator=gen).tolist()) for _ in range(n)]


def _peak_mb(device):
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS (monotone on CPU)


def _model(args, tokenizer, ckpt_layer, device):
    torch.manual_seed(0)
    cfg = create_config(args.vit, args.image_size, vocab_size=len(tokenizer), queue_size=args.queue_size,
                        vision={"grad_ckpt": ckpt_layer > 0, "ckpt_layer": ckpt_layer})
    return create_model(cfg, tokenizer).to(device)


def _release(device):
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _time(step, batches, device):
    for batch in batches[:2]:  # warm-up
        step(*batch)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for batch in batches[2:]:
        step(*batch)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def run_ddp(args, tokenizer, batches, device, ckpt_layer):
    model = _model(args, tokenizer, ckpt_layer, device)
    ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.05)

    def step(image, caption, idx):
        loss_ita, loss_itm = ddp(image, caption, alpha=0.4, idx=idx)
        opt.zero_grad()
        (loss_ita + loss_itm).backward()
        opt.step()

    return _time(step, batches, device)


def run_engine(args, tokenizer, batches, device, stage, ckpt_layer, world_size):
    model = _model(args, tokenizer, ckpt_layer, device)
    ds = build_ds_config(DEFAULT_DS_CONFIG, DsParams(args.batch, precision=args.precision, zero_stage=stage),
                         world_size)
    engine = build_engine(model, ds, 1e-5, 0.05)

    def step(image, caption, idx):
        loss_ita, loss_itm = engine(image, caption, alpha=0.4, idx=idx)
        engine.backward(loss_ita + loss_itm)
        engine.step()

    return _time(step, batches, device)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--vit", default="tiny")
    p.add_argument("--image_size", type=int, default=64)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--queue_size", type=int, default=256)
    p.add_argument("--precision", default="fp32")
    p.add_argument("--stages", default="1,2,3")
    p.add_argument("--ckpt_layers", default="0,1")
    p.add_argument("--vocab", default="", help="vocab.txt (default: a small one built from the random words)")
    p.add_argument("--skip_ddp", action="store_true", help="time our engine only")
    p.add_argument("--json", default="", help="also write the rows to this file (main rank)")
    args = p.parse_args()
    info = dist_info_from_env()
    init_distributed(info)
    device = device_for(info)
    vocab = args.vocab or build_wordpiece_vocab([" ".join(WORDS)] * 4, f"/tmp/train_speed_vocab_{info.rank}.txt")
    tokenizer = create_tokenizer(vocab)
    gen = torch.Generator().manual_seed(info.rank)
    batches = [(torch.randn(args.batch, 3, args.image_size, args.image_size, generator=gen).to(device),
                _captions(args.batch, gen), torch.randint(1000, (args.batch,), generator=gen).to(device))
               for _ in range(args.steps + 2)]
    samples = args.steps * args.batch * info.world_size
    rows = []

    def measure(name, ckpt_layer, run, baseline_s=None):
        try:
            secs = run()
        except torch.cuda.OutOfMemoryError:
            rows.append({"setup": name, "ckpt_layer": ckpt_layer, "fits": False})
            _release(device)
            return None
        rows.append({"setup": name, "ckpt_layer": ckpt_layer, "fits": True, "samples_per_s": samples / secs,
                     "peak_mb": _peak_mb(device), "speed_vs_ddp": baseline_s / secs if baseline_s else None})
        _release(device)
        return secs

    for ckpt_layer in [int(c) for c in args.ckpt_layers.split(",")]:
        base_s = None
        if not args.skip_ddp:
            base_s = measure("DDP fp32 (official)", ckpt_layer,
                             lambda: run_ddp(args, tokenizer, batches, device, ckpt_layer))
        for stage in [int(s) for s in args.stages.split(",")]:
            measure(f"ours ZeRO-{stage} {args.precision}", ckpt_layer,
                    lambda: run_engine(args, tokenizer, batches, device, stage, ckpt_layer, info.world_size), base_s)
    if info.is_main:
        print(f"vit={args.vit} image_size={args.image_size} batch/rank={args.batch} ranks={info.world_size} "
              f"device={device.type} steps={args.steps}")
        print(f"{'setup':<22} {'ckpt_layer':>10} {'samples/s':>10} {'peak MB':>9} {'speed vs DDP':>12}")
        for row in rows:
            if not row["fits"]:
                print(f"{row['setup']:<22} {row['ckpt_layer']:>10}  out of memory")
                continue
            ratio = f"{row['speed_vs_ddp']:11.2f}x" if row["speed_vs_ddp"] else f"{'-':>12}"
            print(f"{row['setup']:<22} {row['ckpt_layer']:>10} {row['samples_per_s']:>10.2f} {row['peak_mb']:>9.0f} "
                  f"{ratio}")
        if args.json:
            with open(args.json, "w", encoding="utf-8") as handle:
                json.dump({"vit": args.vit, "image_size": args.image_size, "batch_per_rank": args.batch,
                           "ranks": info.world_size, "device": device.type, "precision": args.precision,
                           "queue_size": args.queue_size, "steps": args.steps, "rows": rows}, handle, indent=1)
    dist.barrier()


if __name__ == "__main__":
    main()
    shutdown_distributed()
    exit_process(0)
