"""The official BLIP retrieval recipe as a plain PyTorch loop (no DeepSpeed), to check our engine against.

Same parameters (`--user_defined_parameters`, the app's schema), data, transforms, loader order, per-sample
augmentation seeds, model initialisation and seeds as `easyretrieval --mode train` in one process; the loop
is official train_retrieval.py: AdamW, the LR of each step from the engine's schedule, alpha ramped
through epoch 0, `loss_ita + loss_itm`, zero_grad / backward / step. It writes the loss of every step
(and `temp` after it) to OUTPUT_DIR/curves.json; with --engine it then trains the same parameters
through our engine (the app's train mode, recording the same values) and prints both curves side by
side: the same seed must give the same losses, step by step, up to float rounding.

    python scripts/plain_train.py --output_dir /tmp/parity --max_steps 40 --engine \
        --user_defined_parameters "dataset=synthetic vit=tiny tokenizer=build image_size=48 ..."
"""
import argparse
import json
import os

import torch

from appzoo.blip_retrieval.factories import create_app_model, create_app_tokenizer
from appzoo.blip_retrieval.data import build_dataset, create_train_loader, prepare_data
from appzoo.blip_retrieval.params import SCHEMA
from appzoo.blip_retrieval.task import blip_param_groups
from easyretrieval.distributed import DistInfo
from easyretrieval.engine.rng import seed_everything
from appzoo.blip_retrieval.schedule import alpha_at
from easyretrieval.engine.schedule import lr_at
from easyretrieval.parameters import parse_user_defined_parameters

TASK_SEED = 0  # the sampler / loader seed the app passes (official create_sampler's default)


def train(cfg, output_dir, seed, max_steps):
    dist = DistInfo()
    prepare_data(cfg, dist, splits=("train",))
    train_dataset = build_dataset(cfg, "train")
    tokenizer = create_app_tokenizer(cfg, output_dir, dist, train_dataset)
    seed_everything(seed)  # as the Trainer: every rank builds the same model
    model = create_app_model(cfg, tokenizer, verbose=False)
    groups = [dict(g, lr_scale=g.get("lr_scale", 1.0)) for g in blip_param_groups(model, cfg.temp_lr_scale)]
    optimizer = torch.optim.AdamW(groups, lr=cfg.init_lr, weight_decay=cfg.weight_decay)
    seed_everything(seed + dist.rank)
    loader = create_train_loader(train_dataset, cfg.batch_size_train, dist, num_workers=0, pin_memory=False,
                                 persistent_workers=False, seed=TASK_SEED, augment_seed=seed)
    steps = len(loader)
    log = []
    model.train()
    for epoch in range(cfg.max_epoch):
        loader.sampler.set_epoch(epoch)
        loader.generator = torch.Generator().manual_seed(TASK_SEED * 100003 + epoch)
        for step, (image, caption, idx) in enumerate(loader):
            lr = lr_at(epoch, len(log), cfg.max_epoch, cfg.init_lr, cfg.min_lr, cfg.warmup_steps, cfg.warmup_lr)
            for group in optimizer.param_groups:
                group["lr"] = lr * group["lr_scale"]
            loss_ita, loss_itm = model(image, list(caption), alpha=alpha_at(epoch, step, steps, cfg.alpha), idx=idx)
            optimizer.zero_grad()
            (loss_ita + loss_itm).backward()
            optimizer.step()
            log.append({"epoch": epoch, "step": len(log) + 1, "loss_ita": loss_ita.item(),
                        "loss_itm": loss_itm.item(), "lr": lr, "temp": model.temp.item()})
            if max_steps and len(log) >= max_steps:
                return log
        print(f"epoch {epoch}: loss_ita {_mean(log, epoch, 'loss_ita'):.4f} loss_itm "
              f"{_mean(log, epoch, 'loss_itm'):.4f} temp {model.temp.item():.4f}", flush=True)
    return log


def _mean(log, epoch, key):
    values = [r[key] for r in log if r["epoch"] == epoch]
    return sum(values) / len(values)


def train_engine(cfg, output_dir, seed, max_steps):
    """Our engine on the same parameters (the app's train mode), recording the same values per step."""
    from appzoo.blip_retrieval.app import BlipRetrievalApp
    from easyretrieval.app import RunContext

    trainer = BlipRetrievalApp(cfg, RunContext(mode="train", output_dir=output_dir, seed=seed)).build_trainer()
    trainer.args.stop_after_steps = max_steps or None
    trainer.args.progress = False
    task, log = trainer.task, []
    training_step, after_step = task.training_step, task.after_optimizer_step

    def recording_step(engine, batch, epoch, step, steps_per_epoch):
        out = training_step(engine, batch, epoch, step, steps_per_epoch)
        log.append({"epoch": epoch, "step": len(log) + 1, "loss_ita": out["loss_ita"].item(),
                    "loss_itm": out["loss_itm"].item(), "lr": engine.optimizer.param_groups[0]["lr"]})
        return out

    def recording_after_step(engine):
        after_step(engine)
        log[-1]["temp"] = engine.module.temp.item()

    task.training_step, task.after_optimizer_step = recording_step, recording_after_step
    trainer.fit()
    return log


def compare(plain, engine):
    """Both curves side by side (first 10 steps, then every 10th, then epoch means); the largest difference."""
    worst = 0.0
    print(f"{'step':>5s} {'plain ita':>10s} {'engine ita':>10s} {'plain itm':>10s} {'engine itm':>10s} "
          f"{'plain temp':>10s} {'engine temp':>11s}")
    for p, e in zip(plain, engine):
        worst = max(worst, abs(p["loss_ita"] - e["loss_ita"]), abs(p["loss_itm"] - e["loss_itm"]))
        if p["step"] <= 10 or p["step"] % 10 == 0:
            print(f"{p['step']:5d} {p['loss_ita']:10.5f} {e['loss_ita']:10.5f} {p['loss_itm']:10.5f} "
                  f"{e['loss_itm']:10.5f} {p['temp']:10.5f} {e['temp']:11.5f}")
    for epoch in sorted({r["epoch"] for r in plain}):
        print(f"epoch {epoch} means: plain ita {_mean(plain, epoch, 'loss_ita'):.4f} itm "
              f"{_mean(plain, epoch, 'loss_itm'):.4f} | engine ita {_mean(engine, epoch, 'loss_ita'):.4f} "
              f"itm {_mean(engine, epoch, 'loss_itm'):.4f}")
    print(f"{min(len(plain), len(engine))} steps compared; largest loss difference {worst:.3g}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--user_defined_parameters", default="")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--max_steps", type=int, default=0, help="stop after this many steps (0: all epochs)")
    parser.add_argument("--engine", action="store_true", help="also train with our engine and compare")
    args = parser.parse_args()
    cfg = SCHEMA.resolve(parse_user_defined_parameters(args.user_defined_parameters))
    os.makedirs(args.output_dir, exist_ok=True)
    logs = {"plain": train(cfg, os.path.join(args.output_dir, "plain"), args.seed, args.max_steps)}
    if args.engine:
        logs["engine"] = train_engine(cfg, os.path.join(args.output_dir, "engine"), args.seed, args.max_steps)
        compare(logs["plain"], logs["engine"])
    with open(os.path.join(args.output_dir, "curves.json"), "w", encoding="utf-8") as f:
        json.dump(logs, f)


if __name__ == "__main__":
    main()
