"""pretrained= on the command line, end to end: a training run's best/ folder used with no size parameters in
evaluate and predict gives the recall training printed; the field cases 03 (HF folder, training checkpoint
folder, bare HF model.safetensors) and 13 (a JPEG named .pth); the per-step JSON-lines log."""
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from PIL import Image, ImageDraw

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "index"))
from index_fixtures import check_html  # noqa: E402

CLI = [sys.executable, "-c", "import sys; from easyretrieval.cli import main; sys.exit(main())"]
COLOURS = [("red", (210, 40, 40)), ("green", (40, 180, 60)), ("blue", (40, 60, 210)), ("yellow", (225, 215, 30))]
DATA = "dataset=custom image_root={root}/data/images ann_root={root}/data train_file=train.json val_file=val.json " \
       "test_file=test.json batch_size_test=4 k_test=4 num_workers=0"


def _data(root):
    """Four one-colour JPEGs, two captions each (as the field cases build them)."""
    os.makedirs(os.path.join(root, "data", "images"))
    train, evaluation = [], []
    for name, rgb in COLOURS:
        image = Image.new("RGB", (48, 40), (250, 250, 250))
        ImageDraw.Draw(image).rectangle((8, 6, 40, 34), fill=rgb)
        image.save(os.path.join(root, "data", "images", f"{name}.jpg"), quality=90)
        captions = [f"a {name} box on white", f"white picture with a {name} block"]
        train += [{"image": f"{name}.jpg", "caption": c, "image_id": name} for c in captions]
        evaluation.append({"image": f"{name}.jpg", "caption": captions})
    for split, entries in (("train", train), ("val", evaluation), ("test", evaluation)):
        with open(os.path.join(root, "data", f"{split}.json"), "w", encoding="utf-8") as handle:
            json.dump(entries, handle)
    return evaluation


def run(root, mode, out, params):
    proc = subprocess.run(CLI + ["--app", "blip_retrieval", "--mode", mode, "--output_dir", str(out),
                                 "--user_defined_parameters", DATA.format(root=root) + " " + params],
                          capture_output=True, text=True, timeout=900, cwd=root,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def recall_lines(stdout):
    return [line.split("] ", 1)[-1] for line in stdout.splitlines() if ": text retrieval" in line
            or ": image retrieval" in line]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("trained"))
    evaluation = _data(root)
    proc = run(root, "train", os.path.join(root, "run"), "vit=tiny image_size=32 queue_size=8 tokenizer=build "
                                                         "batch_size_train=4 max_epoch=2")
    return root, evaluation, proc


def test_training_writes_best_folder_and_step_log(trained):
    root, _, _ = trained
    best = os.path.join(root, "run", "best")
    assert sorted(os.listdir(best)) == ["config.json", "model.safetensors", "vocab.txt"]
    with open(os.path.join(best, "config.json"), encoding="utf-8") as handle:
        about = json.load(handle)["about"]
    with open(os.path.join(root, "run", "log.txt"), encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle]
    best_epoch = records[-1]["best_epoch"]
    assert about["epoch"] == best_epoch and about["trained_on"] == "custom"
    assert about["metrics"]["val"]["r_mean"] == [r for r in records if r.get("epoch") == best_epoch][0]["val_r_mean"]
    with open(os.path.join(root, "run", "train_steps.jsonl"), encoding="utf-8") as handle:
        steps = [json.loads(line) for line in handle]
    assert [s["step"] for s in steps] == [1, 2, 3, 4]  # 8 captions / batch 4, 2 epochs
    assert all(set(s) == {"step", "epoch", "loss_ita", "loss_itm", "lr", "samples_per_s"} for s in steps)
    assert all(s["samples_per_s"] > 0 and s["loss_itm"] > 0 for s in steps)
    from PIL import Image

    curves = Image.open(os.path.join(root, "run", "curves.png"))  # drawn after the last epoch
    assert curves.format == "PNG" and curves.size[0] > 3 * curves.size[1]  # losses, lr, val and test recall


def test_best_folder_without_sizes_gives_the_recall_training_printed(trained):
    root, evaluation, train = trained
    printed = recall_lines(train.stdout)[-4:]  # the best epoch's val and test tables, at the end of training
    assert len(printed) == 4
    best = os.path.join(root, "run", "best")
    page = os.path.join(root, "pages", "evaluate.html")
    evaluated = run(root, "evaluate", os.path.join(root, "eval_best"), f"pretrained={best} report={page}")
    assert recall_lines(evaluated.stdout) == printed
    _, text = check_html(page)
    assert "text R@1" in text and "val, image retrieval" in text and "test, image retrieval" in text
    assert "sets vit=tiny image_size=32 queue_size=8" in evaluated.stdout

    with open(os.path.join(root, "queries.txt"), "w", encoding="utf-8") as handle:
        captions = [c for entry in evaluation for c in entry["caption"]]
        handle.write("\n".join(captions) + "\n")
    out = os.path.join(root, "predict_best")
    run(root, "predict", out, f"pretrained={best} gallery={root}/data/test.json queries={root}/queries.txt top_k=4 "
                              f"report={out}.html")
    count, text = check_html(out + ".html")
    assert count == 8 * 4 and captions[0] in text  # every query's 4 images
    with open(os.path.join(out, "predictions.jsonl"), encoding="utf-8") as handle:
        ranked = [json.loads(line)["ranked_ids"] for line in handle]
    truth = [entry["image"] for entry in evaluation for _ in entry["caption"]]
    ranks = [r.index(t) for r, t in zip(ranked, truth)]
    recall = {k: 100.0 * sum(r < k for r in ranks) / len(ranks) for k in (1, 5, 10)}
    test_image_line = printed[3]
    assert test_image_line.startswith("test: image retrieval")
    assert test_image_line.split("r_mean")[0].split() == (
        f"test: image retrieval R@1 {recall[1]:6.2f} R@5 {recall[5]:6.2f} R@10 {recall[10]:6.2f}").split()


def test_best_folder_starts_a_training_without_sizes(trained):
    root, _, _ = trained
    best = os.path.join(root, "run", "best")
    proc = run(root, "train", os.path.join(root, "finetune"), f"pretrained={best} batch_size_train=4 max_epoch=1 "
                                                              "eval_splits=val")
    assert "sets vit=tiny image_size=32 queue_size=8" in proc.stdout
    assert f"pretrained={best} (save_pretrained folder {best}): missing 0, unexpected 0" in proc.stdout
    assert os.path.isfile(os.path.join(root, "finetune", "best", "model.safetensors"))


def _run_main(args, capsys):
    from easyretrieval.cli import run_main

    capsys.readouterr()  # only this run's output
    code = run_main(args)
    return code, capsys.readouterr()


def test_field_case_03_other_layouts_evaluate_or_refuse(trained, capsys):
    """The HF layout evaluates with the same recall; a training checkpoint folder is refused in one line
    that says what it is and what to do; a lone HF model.safetensors holds the same weights."""
    from appzoo.blip_retrieval.commands import convert
    from appzoo.blip_retrieval.model.sources import locate, read_weights

    root, _, train = trained
    run_dir = os.path.join(root, "run")
    hf = os.path.join(root, "hf_model")
    convert("hf", os.path.join(run_dir, "checkpoint_best.pth"), hf)  # vit and vocab found without flags
    from_hf = run(root, "evaluate", os.path.join(root, "eval_hf"), f"pretrained={hf} eval_splits=val")
    assert recall_lines(from_hf.stdout) == recall_lines(train.stdout)[-4:-2]  # the best epoch's val recall

    step = sorted(n for n in os.listdir(os.path.join(run_dir, "checkpoints")) if n.startswith("step_"))[0]
    step = os.path.join(run_dir, "checkpoints", step)
    code, captured = _run_main(["--app", "blip_retrieval", "--mode", "evaluate", "--output_dir",
                                os.path.join(root, "eval_step"), "--user_defined_parameters",
                                DATA.format(root=root) + f" pretrained={step}"], capsys)
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in captured.err
    assert "resumable training checkpoint" in lines[0] and f"resume={step}" in lines[0]
    assert f"easyretrieval export {step}" in lines[0] and "not found" not in lines[0]

    lone = os.path.join(root, "lone")
    os.makedirs(lone)
    shutil.copy(os.path.join(hf, "model.safetensors"), lone)
    lone_state = read_weights(locate(os.path.join(lone, "model.safetensors")))
    hf_state = read_weights(locate(hf))
    from appzoo.blip_retrieval.model.hf_convert import official_to_hf_key

    for key in [k for k in hf_state if official_to_hf_key(k) is not None]:  # what HF's model.safetensors holds
        assert torch.equal(lone_state[key], hf_state[key]), key


def test_field_case_13_a_jpeg_is_not_a_checkpoint(trained, capsys):
    root, _, _ = trained
    photo = os.path.join(root, "photo.pth.jpg")
    shutil.copy(os.path.join(root, "data", "images", "red.jpg"), photo)
    code, captured = _run_main(["--app", "blip_retrieval", "--mode", "evaluate", "--output_dir",
                                os.path.join(root, "eval_photo"), "--user_defined_parameters",
                                DATA.format(root=root) + f" vit=tiny image_size=32 tokenizer={root}/run/vocab.txt "
                                f"pretrained={photo}"], capsys)
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in captured.err
    assert "photo.pth.jpg is not a model checkpoint (a JPEG image)" in lines[0]
    assert "weights_only" not in lines[0]
