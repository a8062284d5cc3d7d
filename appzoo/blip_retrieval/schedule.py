"""The distillation weight of BLIP's ITC loss over training, as a pure function (official train_retrieval.py)."""


def alpha_at(epoch: int, step: int, steps_per_epoch: int, alpha: float) -> float:
    """Distillation weight at micro step `step` of `epoch`: ramps linearly from 0 through epoch 0, then
    `alpha` (official: alpha * min(1, i / len(data_loader)) in the first epoch)."""
    if epoch > 0:
        return alpha
    return alpha * min(1.0, step / steps_per_epoch)
