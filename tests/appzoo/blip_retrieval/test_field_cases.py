"""The field cases of ../shared/cases (issue 13) as tests: each runs the real CLI in a process of its own on four
one-colour JPEGs (vit=tiny, 32 px, one epoch) and checks what the case requires. One training run (run A) is
shared; test names carry the case number."""
import json
import os
import shutil
import subprocess
import sys

import process_launch
import pytest
from PIL import Image, ImageDraw

CLI = [sys.executable, "-m", "easyretrieval.cli"]
COLOURS = [("red", (210, 40, 40)), ("green", (40, 180, 60)), ("blue", (40, 60, 210)), ("yellow", (225, 215, 30))]
DATA = ("dataset=custom image_root=data/images ann_root=data train_file=train.json val_file=val.json "
        "test_file=test.json")
MODEL = "vit=tiny batch_size_test=4 k_test=4 num_workers=0"
EVAL = f"{MODEL} image_size=32 queue_size=8"  # evaluate and predict


def train(**changes):
    """The training parameters of the cases (32 px, queue 8, batch 4, one epoch, val and test), with `changes`."""
    values = {"image_size": 32, "queue_size": 8, "batch_size_train": 4, "max_epoch": 1, "eval_splits": "val,test", **changes}
    return f"{DATA} {MODEL} tokenizer=build " + " ".join(f"{k}={v}" for k, v in values.items())


def write_data(root):
    os.makedirs(os.path.join(root, "data", "images"), exist_ok=True)
    train, ev = [], []
    for name, rgb in COLOURS:
        image = Image.new("RGB", (48, 40), (250, 250, 250))
        ImageDraw.Draw(image).rectangle((8, 6, 40, 34), fill=rgb)
        image.save(os.path.join(root, "data", "images", f"{name}.jpg"), quality=90)
        captions = [f"a {name} box on white", f"white picture with a {name} block"]
        train += [{"image": f"{name}.jpg", "caption": c, "image_id": name} for c in captions]
        ev.append({"image": f"{name}.jpg", "caption": captions})
    for split, entries in (("train", train), ("val", ev), ("test", ev)):
        with open(os.path.join(root, "data", f"{split}.json"), "w", encoding="utf-8") as f:
            json.dump(entries, f)
    with open(os.path.join(root, "queries.txt"), "w", encoding="utf-8") as f:
        f.write("a red box on white\nwhite picture with a blue block\n")
    words = sorted({w for entry in ev for c in entry["caption"] for w in c.split()})
    with open(os.path.join(root, "vocab.txt"), "w", encoding="utf-8") as f:  # for runs without a training
        f.write("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words) + "\n")


def cli(cwd, mode, output_dir, params, *extra, timeout=600):
    env = dict(os.environ, OMP_NUM_THREADS="1", EASYRETRIEVAL_CACHE=os.path.join(str(cwd), "cache"))
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return process_launch.run(CLI + ["--app", "blip_retrieval", "--mode", mode, "--output_dir", str(output_dir),
                                     *extra, "--user_defined_parameters", params], timeout, env=env, cwd=str(cwd))


def ok(proc):
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def refused(proc, *words):
    """The run ended with exit 2 and one error line (no traceback) holding every word; returns that line."""
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.strip() and "[WARNING]" not in line]
    assert len(errors) == 1 and errors[0].startswith("easyretrieval: error: "), proc.stderr[-3000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


def cut_short(path):
    with open(path, "rb") as f:
        head = f.read(300)
    with open(path, "wb") as f:
        f.write(head)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("cases")
    write_data(str(root))
    return root


@pytest.fixture(scope="module")
def run_a(work):
    """A one-epoch training evaluated on val and test (--seed 7); its output must never change afterwards."""
    proc = ok(cli(work, "train", "run_a", train(), "--seed", "7"))
    with open(work / "run_a" / "config.json", "rb") as f:
        return work / "run_a", f.read(), proc.stdout


def test_case01_resume_into_a_new_folder_carries_the_best_weights_and_case17_summary(work, run_a):
    proc = ok(cli(work, "train", "run_b", train(eval_splits="val", max_epoch=2, init_lr=0, min_lr=0, resume="run_a"),
                  "--seed", "7"))
    summary = [line for line in proc.stdout.splitlines() if "best epoch 0" in line and "weights: " in line]
    assert summary, proc.stdout[-3000:]
    named = summary[-1].split("weights: ")[1]
    assert "run_b/best (save_pretrained folder" in named and "run_b/checkpoint_best.pth (official layout)" in named
    assert os.path.isfile(work / "run_b/checkpoint_best.pth") and os.path.isfile(work / "run_b/best/config.json")
    for name in ("best.json", "vocab.txt", "val_metrics.json", "val_rankings.npz", "log.txt"):
        assert os.path.isfile(work / "run_b" / name), name
    with open(work / "run_b" / "best.json", encoding="utf-8") as f:
        assert json.load(f)["epoch"] == 0
    assert "the schedule changes at this epoch end" in proc.stdout
    # case 17: only val was evaluated, so no line announces test results and shows none
    assert not [line for line in proc.stdout.splitlines() if "test" in line and line.rstrip().endswith(":")]


@pytest.mark.parametrize("change,name", [("queue_size=16", "queue_size"), ("image_size=48", "image_size")])
def test_case02_resume_with_a_changed_shape_is_refused_naming_it(work, run_a, tmp_path, change, name):
    shutil.copytree(run_a[0], tmp_path / "copy")
    before = sorted(os.listdir(tmp_path / "copy"))
    key, value = change.split("=")
    line = refused(cli(work, "train", tmp_path / "copy", train(max_epoch=2, resume="auto", **{key: value}),
                       "--seed", "7"), name, "tensor shapes")
    assert "resume: this run differs from checkpoint" in line
    assert sorted(os.listdir(tmp_path / "copy")) == before  # refused before anything was written


def test_case04_unreadable_image_with_loader_workers_is_one_line(work, run_a, tmp_path):
    """evaluate with 2 loader workers (predict loads its images through the same evaluator loader; the loader
    itself: data/test_loaders.py)."""
    shutil.copytree(work / "data", tmp_path / "data")
    cut_short(tmp_path / "data" / "images" / "green.jpg")
    model = (f"vit=tiny image_size=32 queue_size=8 tokenizer={run_a[0] / 'vocab.txt'} "
             f"pretrained={run_a[0] / 'checkpoint_best.pth'} batch_size_test=4 k_test=4 num_workers=2")
    refused(cli(tmp_path, "evaluate", "ev", f"{DATA} eval_splits=val {model}"), "green.jpg")  # nothing else on
    # stderr: no worker or queue-thread traceback


def test_case05_queries_file_not_utf8_is_refused(work, tmp_path):
    (tmp_path / "queries.txt").write_bytes("一只红色的盒子\n蓝色的方块\n".encode("gbk"))
    refused(cli(work, "predict", tmp_path / "out", f"{EVAL} tokenizer=vocab.txt gallery=data/images "
                f"queries={tmp_path / 'queries.txt'} top_k=2"), "queries.txt", "not UTF-8")


def test_case06_output_dir_that_is_a_file_is_refused_and_kept(work, tmp_path):
    (tmp_path / "results_file").write_text("my notes")
    proc = cli(work, "train", tmp_path / "results_file", train(eval_splits="val"))
    refused(proc, "results_file", "is an existing file")
    assert (tmp_path / "results_file").read_text() == "my notes"


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


def test_case07_output_dir_not_writable_is_refused(work, unwritable):
    for out in (unwritable, unwritable / "run"):
        refused(cli(work, "train", out, train(eval_splits="val")), str(out), "cannot be")


def test_case08_a_folder_in_use_is_refused(work, tmp_path):
    holder = process_launch.start([sys.executable, "-c", "import sys, time\n"
                                   "from easyretrieval.run_dir import claim_output_dir\n"
                                   "claim_output_dir(sys.argv[1], 'train')\nprint('claimed', flush=True)\n"
                                   "time.sleep(600)\n", str(tmp_path / "out")])
    try:
        assert holder.stdout.readline().strip() == "claimed"
        proc = cli(work, "train", tmp_path / "out", train(eval_splits="val"), "--seed", "8")
        refused(proc, "is in use by a train run")
        assert os.listdir(tmp_path / "out") == [".easyretrieval.lock"]  # B wrote nothing
    finally:
        process_launch.kill_tree(holder.pid)
        holder.communicate()


def test_case09_evaluate_and_predict_keep_the_training_record(work, run_a):
    folder, config, _ = run_a
    weights = f"pretrained={folder / 'checkpoint_best.pth'}"
    evaluate = ok(cli(work, "evaluate", "run_a", f"{DATA} {EVAL} tokenizer=build eval_splits=val,test {weights}"))
    predict = ok(cli(work, "predict", "run_a", f"{EVAL} tokenizer=build gallery=data/images "
                     f"queries=queries.txt top_k=2 {weights}"))
    with open(folder / "config.json", "rb") as f:
        assert f.read() == config
    assert "this evaluate run writes into 'run_a/evaluate'" in evaluate.stdout
    for name in ("val_metrics.json", "config.json"):
        assert os.path.isfile(folder / "evaluate" / name), name
    assert os.path.isfile(folder / "predict" / "predictions.jsonl")
    assert "predict" in predict.stdout
    with open(folder / "val_metrics.json", encoding="utf-8") as f, \
            open(folder / "evaluate" / "val_metrics.json", encoding="utf-8") as g:
        assert json.load(f)["r_mean"] == pytest.approx(json.load(g)["r_mean"])  # same weights, same recall


def test_case10_queue_smaller_than_the_batch_is_refused(work, tmp_path):
    proc = cli(work, "train", tmp_path / "out", train(eval_splits="val", queue_size=2))
    refused(proc, "queue_size", "global batch of 4")
    assert not (tmp_path / "out").exists()


def test_case11_image_size_is_checked_before_any_work(work, tmp_path):
    params = (f"dataset=synthetic synthetic_dir={tmp_path / 'syn'} vit=tiny tokenizer=build image_size=100 "
              "queue_size=8 batch_size_train=4 max_epoch=1 pretrained=http://127.0.0.1:9/model_base.pth")
    refused(cli(work, "train", tmp_path / "out", params), "image_size", "multiple")
    assert not (tmp_path / "syn").exists() and not (tmp_path / "out").exists()


def test_case12_batch_larger_than_the_training_set_names_both(work, tmp_path):
    refused(cli(work, "train", tmp_path / "out", train(eval_splits="val", batch_size_train=16, queue_size=16)),
            "batch_size_train=16", "the 8 training samples")


def test_case14_training_writes_the_best_epochs_split_results(run_a):
    folder, _, stdout = run_a
    for name in ("val_metrics.json", "test_metrics.json", "val_rankings.npz", "test_rankings.npz"):
        assert os.path.isfile(folder / name), name
        assert str(folder.name) + "/" + name in stdout  # the summary says where they are
    with open(folder / "log.txt", encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    best = [r["best_epoch"] for r in records if "best_epoch" in r][-1]
    expected = [r for r in records if r.get("epoch") == best][-1]["val_r_mean"]
    with open(folder / "val_metrics.json", encoding="utf-8") as f:
        assert json.load(f)["r_mean"] == pytest.approx(expected)


def test_case15_skipped_images_are_reported(work, tmp_path):
    shutil.copytree(work / "data", tmp_path / "data")
    cut_short(tmp_path / "data" / "images" / "green.jpg")
    proc = ok(cli(tmp_path, "evaluate", "out", f"{DATA} {EVAL} tokenizer={work / 'vocab.txt'} eval_splits=val "
                  "skip_bad_images=True"))
    assert "val: 1 of 4 images skipped as unreadable (green.jpg)" in proc.stdout
    with open(tmp_path / "out" / "val_metrics.json", encoding="utf-8") as f:
        metrics = json.load(f)
    assert metrics["skipped_images"] == 1 and metrics["skipped_image_files"] == ["green.jpg"]


def test_case16_query_empty_after_normalising_is_refused(work, tmp_path):
    (tmp_path / "queries.txt").write_text("a red box on white\n...\nwhite picture with a blue block\n")
    refused(cli(work, "predict", tmp_path / "out", f"{EVAL} tokenizer=vocab.txt gallery=data/images "
                f"queries={tmp_path / 'queries.txt'} top_k=2"), "queries.txt", "line 2", "empty once normalised")
    assert not (tmp_path / "out" / "predictions.jsonl").exists()
