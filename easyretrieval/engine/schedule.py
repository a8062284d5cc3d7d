"""The learning-rate schedule as pure functions: cosine per epoch (BLIP retrieval fine-tuning) and a
linear warm-up over the first optimizer steps (BLIP pre-training's `warmup_lr_schedule`)."""
import math


def cosine_lr(epoch: int, max_epoch: int, init_lr: float, min_lr: float) -> float:
    """LR of `epoch` (0-based), set at the start of the epoch: init_lr at epoch 0, min_lr at max_epoch
    (official BLIP `cosine_lr_schedule`)."""
    return (init_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * epoch / max_epoch)) + min_lr


def warmup_lr(step: int, warmup_steps: int, start_lr: float, max_lr: float) -> float:
    """LR of optimizer step `step` (0-based) of a linear warm-up from `start_lr` to `max_lr` over
    `warmup_steps` steps (official pre-training `warmup_lr_schedule`); `max_lr` from then on."""
    if warmup_steps <= 0:
        return max_lr
    return min(max_lr, start_lr + (max_lr - start_lr) * step / warmup_steps)


def lr_at(epoch: int, global_step: int, max_epoch: int, init_lr: float, min_lr: float,
          warmup_steps: int = 0, start_lr: float = 0.0) -> float:
    """LR of optimizer step `global_step` (0-based, counted over all epochs) in `epoch`: the epoch's
    cosine LR, capped by the warm-up ramp while global_step < warmup_steps (warmup_steps=0: the official
    retrieval schedule, one LR per epoch)."""
    lr = cosine_lr(epoch, max_epoch, init_lr, min_lr)
    if global_step < warmup_steps:
        lr = min(lr, warmup_lr(global_step, warmup_steps, start_lr, init_lr))
    return lr

