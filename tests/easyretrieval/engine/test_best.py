"""best.json names the epoch the best files hold; a resume from another run's folder copies them only when
they are of the checkpoint's best epoch."""
import os

from easyretrieval.engine import best


def _run(folder, epoch, files=("checkpoint_best.pth", "val_metrics.json")):
    folder.mkdir(parents=True, exist_ok=True)
    for name in files:
        (folder / name).write_text(f"{name} of epoch {epoch}")
    best.write_manifest(str(folder), epoch, "val", "r_mean", 50.0, list(files))


def test_best_files_only_for_the_recorded_epoch(tmp_path):
    _run(tmp_path / "a", 3)
    assert best.best_files(str(tmp_path / "a"), 3) == [str(tmp_path / "a" / "checkpoint_best.pth"),
                                                      str(tmp_path / "a" / "val_metrics.json")]
    assert best.best_files(str(tmp_path / "a"), 2) is None
    os.remove(tmp_path / "a" / "val_metrics.json")
    assert best.best_files(str(tmp_path / "a"), 3) is None  # a named file is missing
    assert best.best_files(str(tmp_path / "none"), 0) is None


def test_adopt_copies_the_files_and_the_record(tmp_path):
    _run(tmp_path / "a", 1)
    assert best.adopt_best(str(tmp_path / "b"), str(tmp_path / "a"), 1)
    assert (tmp_path / "b" / "checkpoint_best.pth").read_text() == "checkpoint_best.pth of epoch 1"
    assert best.read_manifest(str(tmp_path / "b"))["epoch"] == 1
    assert not best.adopt_best(str(tmp_path / "c"), str(tmp_path / "a"), 0)  # another epoch: nothing copied
    assert not (tmp_path / "c").exists()


def test_run_dir_of_checkpoint():
    assert best.run_dir_of_checkpoint("/x/run/checkpoints/step_00000004") == "/x/run"
