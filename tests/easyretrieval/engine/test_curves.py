"""curves.png from the logged step lines and epoch records: the task's panels, or every logged loss."""
import json

import pytest
from PIL import Image

from easyretrieval.engine.curves import CurveSpec, default_curve_specs, read_steps, write_training_curves


def test_default_specs_plot_every_logged_loss_and_the_selection_metric(tmp_path):
    steps = [{"step": s, "epoch": 0, "loss_a": 1.0 / s, "loss_b": 2.0, "lr": 1e-4, "samples_per_s": 9.0}
             for s in range(1, 6)]
    specs = default_curve_specs(steps, "val", "r_mean")
    assert [(s.title, list(s.keys), s.per) for s in specs] == [
        ("training losses", ["loss_a", "loss_b"], "step"), ("learning rate", ["lr"], "step"),
        ("val r_mean", ["val_r_mean"], "epoch")]
    path = tmp_path / "train_steps.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in steps) + '{"step": 6, "loss')  # a line cut by a crash
    assert read_steps(str(path)) == steps and read_steps(str(tmp_path / "none")) == []
    out = write_training_curves(str(tmp_path / "curves.png"), specs, steps, [{"epoch": 0, "val_r_mean": 3.0}])
    image = Image.open(out)
    assert image.format == "PNG" and image.size[0] > 3 * image.size[1]  # three panels side by side


def test_panels_without_points_are_left_out_and_nothing_at_all_is_an_error(tmp_path):
    specs = [CurveSpec("losses", ["loss"]), CurveSpec("val", ["val_r1"], per="epoch")]
    out = write_training_curves(str(tmp_path / "c.png"), specs, [{"step": 1, "loss": 1.0}], [])
    one_panel = Image.open(out).size
    assert one_panel[0] < 1.5 * one_panel[1]
    with pytest.raises(ValueError, match="no points"):
        write_training_curves(str(tmp_path / "d.png"), specs, [], [])
    with pytest.raises(ValueError, match="per"):
        CurveSpec("x", ["y"], per="batch")


def test_curves_are_redrawn_after_the_last_epoch_and_otherwise_at_most_once_a_minute():
    from easyretrieval.engine.trainer import CURVES_MIN_INTERVAL_S, curves_due

    assert curves_due(None, 5.0, last_epoch=False)  # the first epoch's curves
    assert not curves_due(100.0, 100.0 + CURVES_MIN_INTERVAL_S - 1, last_epoch=False)  # short epochs skip a drawing
    assert curves_due(100.0, 100.0 + CURVES_MIN_INTERVAL_S, last_epoch=False)
    assert curves_due(100.0, 101.0, last_epoch=True)  # the finished run's picture is always complete
