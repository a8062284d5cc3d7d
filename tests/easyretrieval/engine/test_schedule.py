import math

import pytest

from easyretrieval.engine.schedule import cosine_lr


def test_cosine_lr_matches_official_formula_by_hand():
    assert cosine_lr(0, 6, 1e-5, 0.0) == pytest.approx(1e-5)
    assert cosine_lr(3, 6, 1e-5, 0.0) == pytest.approx(0.5e-5)
    assert cosine_lr(6, 6, 1e-5, 1e-6) == pytest.approx(1e-6)
    assert cosine_lr(1, 4, 2.0, 1.0) == pytest.approx(1.0 + 0.5 * (1 + math.cos(math.pi / 4)))
    lrs = [cosine_lr(e, 6, 1e-4, 0.0) for e in range(6)]
    assert lrs == sorted(lrs, reverse=True)

