"""Output folders: refused in one line when they are a file or cannot be written, locked by the run that
uses them (a killed run leaves no stale lock), and evaluate/predict beside a training run write a subfolder."""
import json
import os
import signal
import subprocess
import sys

import pytest

from easyretrieval import run_dir
from easyretrieval.errors import UserError

HOLDER = """
import sys, time
from easyretrieval.run_dir import claim_output_dir
claim_output_dir(sys.argv[1], "train")
print("claimed", flush=True)
time.sleep(600)
"""


@pytest.fixture
def unwritable(tmp_path):
    """A folder nobody may write to: chmod 555, or chattr +i for root (who ignores mode bits)."""
    folder = tmp_path / "locked"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not supported here (root ignores chmod)")
    try:
        yield folder
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


@pytest.fixture
def claimed():
    paths = []
    yield paths
    for path in paths:
        run_dir.release_output_dir(path)


def test_a_file_is_refused_and_kept(tmp_path):
    path = tmp_path / "results"
    path.write_text("mine")
    with pytest.raises(UserError, match=f"--output_dir '{path}' is an existing file"):
        run_dir.claim_output_dir(str(path), "train")
    assert path.read_text() == "mine"


def test_unwritable_folder_and_folder_inside_it_are_refused(unwritable):
    for path in (unwritable, unwritable / "new" / "run"):
        with pytest.raises(UserError) as info:
            run_dir.claim_output_dir(str(path), "train")
        assert f"--output_dir '{path}' cannot be" in str(info.value)


def test_new_folder_is_created_with_its_lock(tmp_path, claimed):
    path = str(tmp_path / "a" / "run")
    run_dir.claim_output_dir(path, "evaluate")
    claimed.append(path)
    assert sorted(os.listdir(path)) == [run_dir.LOCK_FILE]
    with open(os.path.join(path, run_dir.LOCK_FILE)) as f:
        assert json.load(f)["pid"] == os.getpid()
    assert [n for n in os.listdir(tmp_path / "a") if n != "run"] == []  # no staging folder left


def test_second_run_is_refused_while_the_first_lives_and_not_after_a_kill(tmp_path, claimed):
    path = str(tmp_path / "run")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, path], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "claimed"
        with pytest.raises(UserError) as info:
            run_dir.claim_output_dir(path, "train")
        assert f"is in use by a train run (pid {holder.pid}" in str(info.value)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    run_dir.claim_output_dir(path, "train")  # the kernel released the killed run's lock
    claimed.append(path)


def test_mode_output_dir_keeps_another_runs_record(tmp_path):
    path = str(tmp_path)
    assert run_dir.mode_output_dir(path, "evaluate") == path  # nothing recorded yet
    (tmp_path / "config.json").write_text(json.dumps({"mode": "train"}))
    assert run_dir.mode_output_dir(path, "evaluate") == os.path.join(path, "evaluate")
    assert run_dir.mode_output_dir(path, "predict") == os.path.join(path, "predict")
    assert run_dir.mode_output_dir(path, "train") == path
    (tmp_path / "config.json").write_text(json.dumps({"mode": "evaluate"}))
    assert run_dir.mode_output_dir(path, "evaluate") == path  # a new evaluate replaces an evaluate


def test_training_does_not_mix_into_another_run(tmp_path):
    run_dir.check_train_output_dir(str(tmp_path), continuing=False)  # empty: fine
    (tmp_path / "config.json").write_text(json.dumps({"mode": "predict"}))
    with pytest.raises(UserError, match="holds the results of a predict run"):
        run_dir.check_train_output_dir(str(tmp_path), continuing=False)
    (tmp_path / "config.json").write_text(json.dumps({"mode": "train"}))
    (tmp_path / "log.txt").write_text('{"epoch": 0}\n')
    with pytest.raises(UserError, match=r"holds an earlier training run \(log.txt\); continue it with resume=auto"):
        run_dir.check_train_output_dir(str(tmp_path), continuing=False)
    run_dir.check_train_output_dir(str(tmp_path), continuing=True)
