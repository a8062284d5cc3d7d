import math

import pytest

from easyretrieval.engine.schedule import cosine_lr, lr_at, warmup_lr


def test_cosine_lr_matches_official_formula_by_hand():
    assert cosine_lr(0, 6, 1e-5, 0.0) == pytest.approx(1e-5)
    assert cosine_lr(3, 6, 1e-5, 0.0) == pytest.approx(0.5e-5)
    assert cosine_lr(6, 6, 1e-5, 1e-6) == pytest.approx(1e-6)
    assert cosine_lr(1, 4, 2.0, 1.0) == pytest.approx(1.0 + 0.5 * (1 + math.cos(math.pi / 4)))
    lrs = [cosine_lr(e, 6, 1e-4, 0.0) for e in range(6)]
    assert lrs == sorted(lrs, reverse=True)


def test_warmup_is_the_official_linear_ramp_then_holds():
    assert warmup_lr(0, 100, 1e-6, 1e-3) == pytest.approx(1e-6)
    assert warmup_lr(50, 100, 0.0, 1e-3) == pytest.approx(5e-4)
    assert warmup_lr(100, 100, 0.0, 1e-3) == pytest.approx(1e-3)
    assert warmup_lr(500, 100, 0.0, 1e-3) == pytest.approx(1e-3)
    assert warmup_lr(3, 0, 0.0, 1e-3) == 1e-3  # no warm-up


def test_lr_at_caps_the_epoch_cosine_by_the_warmup_ramp():
    # no warm-up: exactly the official per-epoch cosine, whatever the step
    assert [lr_at(e, 37 * e, 4, 1.0, 0.0) for e in range(4)] == [cosine_lr(e, 4, 1.0, 0.0) for e in range(4)]
    # warm-up over 30 steps that spans into epoch 1 (20 steps an epoch)
    assert lr_at(0, 0, 4, 1.0, 0.0, 30, 0.1) == pytest.approx(0.1)
    assert lr_at(0, 15, 4, 1.0, 0.0, 30, 0.1) == pytest.approx(0.55)
    assert lr_at(1, 25, 4, 1.0, 0.0, 30, 0.1) == pytest.approx(min(0.1 + 0.9 * 25 / 30, cosine_lr(1, 4, 1.0, 0.0)))
    assert lr_at(1, 30, 4, 1.0, 0.0, 30, 0.1) == pytest.approx(cosine_lr(1, 4, 1.0, 0.0))
