"""benchmarks/gpu_suite.py --smoke: every part of the GPU check runs its real code path at toy sizes on the CPU,
so the script is known to work before a lent GPU's minutes are spent on it."""
import json
import os
import signal
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PARTS = ("eval", "train_b", "loader", "train_l", "memory")


def run_suite(out, timeout_s=780):
    proc = subprocess.Popen([sys.executable, os.path.join(REPO, "benchmarks", "gpu_suite.py"), "--smoke", "--out", out,
                             "--work-dir", os.path.join(os.path.dirname(out), "work")],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.terminate()  # the suite kills its running part's process group (ranks included) on SIGTERM
        try:
            output, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
        raise AssertionError(f"gpu_suite --smoke ran past {timeout_s} s:\n{output[-3000:]}")
    return proc.returncode, output


def test_smoke_runs_every_part_and_reports_its_figures(tmp_path):
    out = str(tmp_path / "smoke.json")
    code, output = run_suite(out)
    assert code == 0, output[-4000:]
    with open(out, encoding="utf-8") as handle:
        results = json.load(handle)
    assert results["suite"] == "smoke" and tuple(results["parts"]) == PARTS
    parts = {name: rec["result"] for name, rec in results["parts"].items()}
    assert all(rec["status"] == "ok" for rec in results["parts"].values()), results["parts"]
    assert parts["eval"]["recall_identical"] is True and parts["eval"]["official"]["extrapolated"] is True
    assert parts["eval"]["speedup"] > 0 and parts["eval"]["max_abs_score_diff"] < 1e-4
    train = parts["train_b"]["rows"]
    assert [r["setup"] for r in train] == ["DDP fp32 (official)", "ours ZeRO-2 fp32"]
    assert all(r["fits"] and r["samples_per_s"] > 0 for r in train) and train[1]["speed_vs_ddp"] > 0
    assert [r["setup"] for r in parts["train_l"]["rows"]] == ["ours ZeRO-2 fp32"]
    assert [r["workers"] for r in parts["loader"]["rows"]] == [0, 1]
    assert [(r["vit"], r["vit_ckpt_layer"]) for r in parts["memory"]["rows"]] == [("tiny", 0), ("tiny", 1)]
    # The printed table has a line per part, and the loader is compared with the engine's step rate.
    loader_line = results["summary"][PARTS.index("loader")]
    assert len(results["summary"]) == len(PARTS) and ("keeps up" in loader_line or "is slower" in loader_line)
    assert os.path.getsize(str(tmp_path / "smoke.log")) > 0


def test_a_part_past_its_time_box_is_killed_with_its_children(tmp_path):
    """run_part kills the part and everything under it at its time box, also a child in a session of its own
    (torchrun starts its ranks so)."""
    sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    import gpu_suite

    pid_file = tmp_path / "child.pid"
    part = [sys.executable, "-c", "import subprocess, sys, time; "
            f"child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], start_new_session=True, "
            f"stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
            f"open({str(pid_file)!r}, 'w').write(str(child.pid)); time.sleep(120)"]
    with open(tmp_path / "log", "w", encoding="utf-8") as log:
        record = gpu_suite.run_part("sleeper", 3, part, str(tmp_path / "part.json"), log)
    assert record["status"] == "timeout" and record["seconds"] < 60 and record["result"] is None
    child = int(pid_file.read_text())
    for _ in range(50):  # the kill is asynchronous; give the kernel a moment to reap
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        with open(f"/proc/{child}/stat") as stat:
            if stat.read().split()[2] == "Z":  # a zombie (killed, not yet reaped by init) is gone too
                break
        __import__("time").sleep(0.1)
    else:
        raise AssertionError(f"the part's child {child} outlived the time box")
