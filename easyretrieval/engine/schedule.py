"""The learning-rate schedule as a pure function: cosine per epoch."""
import math


def cosine_lr(epoch: int, max_epoch: int, init_lr: float, min_lr: float) -> float:
    """LR of `epoch` (0-based), set at the start of the epoch: init_lr at epoch 0, min_lr at max_epoch
    (official BLIP `cosine_lr_schedule`)."""
    return (init_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * epoch / max_epoch)) + min_lr
