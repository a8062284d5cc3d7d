"""The official BLIP schedule as pure functions: cosine LR per epoch and the first-epoch alpha ramp."""
import math


def cosine_lr(epoch: int, max_epoch: int, init_lr: float, min_lr: float) -> float:
    """LR of `epoch` (0-based), set at the start of the epoch (official `cosine_lr_schedule`)."""
    return (init_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * epoch / max_epoch)) + min_lr


def alpha_at(epoch: int, step: int, steps_per_epoch: int, alpha: float) -> float:
    """Distillation weight at micro step `step` of `epoch`: ramps linearly through epoch 0 (official)."""
    if epoch > 0:
        return alpha
    return alpha * min(1.0, step / steps_per_epoch)
