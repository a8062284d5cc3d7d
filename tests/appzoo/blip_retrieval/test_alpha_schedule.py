import pytest

from appzoo.blip_retrieval.schedule import alpha_at


def test_alpha_ramps_through_first_epoch_only():
    assert alpha_at(0, 0, 10, 0.4) == 0.0
    assert alpha_at(0, 5, 10, 0.4) == pytest.approx(0.2)
    assert alpha_at(0, 10, 10, 0.4) == pytest.approx(0.4)
    assert alpha_at(1, 0, 10, 0.4) == 0.4
