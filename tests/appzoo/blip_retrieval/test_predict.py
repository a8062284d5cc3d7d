"""Predict mode end to end (the CLI in a subprocess): its rankings are the official loop's rankings."""
import json
import os
import sys

import numpy as np
import process_launch
import pytest
import torch
from torch.utils.data import DataLoader

from appzoo.blip_retrieval.data.datasets import RetrievalEvalDataset
from appzoo.blip_retrieval.data.transforms import create_transform
from appzoo.blip_retrieval.model.checkpoint import save_official
from appzoo.blip_retrieval.predict import read_items
from easyretrieval.errors import UserError
from official_reference import official_evaluation  # benchmarks/ (tests/conftest.py puts it on sys.path)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "evaluation"))
from eval_fixtures import IMAGE_SIZE, make_model, make_tokenizer, write_gallery  # noqa: E402

CLI = [sys.executable, "-c", "import sys; from easyretrieval.cli import main; sys.exit(main())"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    ann = write_gallery(str(root), 9, captions_per_image=(1, 2), seed=7)
    dataset = RetrievalEvalDataset(ann, str(root / "images"), create_transform(IMAGE_SIZE, train=False))
    tokenizer = make_tokenizer(str(root))
    model = make_model(tokenizer, seed=21)
    save_official(model, str(root / "model.pth"))
    with open(root / "texts.txt", "w", encoding="utf-8") as handle:
        handle.write("\n".join(dataset.text) + "\n\n")  # a trailing blank line is ignored
    ref = official_evaluation(model, DataLoader(dataset, batch_size=4), dataset.text, k_test=4)
    return root, dataset, ref


def predict(root, out, gallery, queries, top_k, launcher=CLI):
    params = (f"vit=tiny image_size={IMAGE_SIZE} queue_size=8 pretrained={root / 'model.pth'} "
              f"tokenizer={root / 'vocab.txt'} gallery={gallery} queries={queries} top_k={top_k} k_test=4 "
              "batch_size_test=4 num_workers=0 save_embeddings=True")
    proc = process_launch.run(launcher + ["--app", "blip_retrieval", "--mode", "predict", "--output_dir", str(out),
                                          "--user_defined_parameters", params],
                              600, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    with open(out / "predictions.jsonl", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def expected(scores, top_k):
    order = torch.argsort(scores, dim=1, descending=True, stable=True)[:, :top_k]
    return order, scores.gather(1, order)


@pytest.mark.parametrize("ranks", [1, 2])
def test_text_to_image_equals_official_ranking(setup, tmp_path, ranks):
    """Also with 2 ranks (torchrun): the gallery is split across ranks, the answer is the same."""
    root, dataset, ref = setup
    launcher = CLI if ranks == 1 else process_launch.torchrun_cli(ranks)
    lines = predict(root, tmp_path, root / "images", root / "texts.txt", top_k=3, launcher=launcher)
    order, scores = expected(ref.scores_t2i, 3)
    assert len(lines) == len(dataset.text)
    for t, line in enumerate(lines):
        assert line["query"] == dataset.text[t] and line["query_id"] == str(t + 1)
        assert line["ranked_ids"] == [dataset.image[i] for i in order[t]]  # images sorted by name = dataset order
        np.testing.assert_allclose(line["scores"], scores[t].numpy(), atol=1e-4)
    emb = np.load(tmp_path / "gallery_embeddings.npy")
    with open(tmp_path / "gallery_ids.json", encoding="utf-8") as handle:
        assert json.load(handle) == dataset.image
    assert emb.shape[0] == len(dataset) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    assert np.load(tmp_path / "query_embeddings.npy").shape[0] == len(dataset.text)


def test_image_to_text_equals_official_ranking(setup, tmp_path):
    root, dataset, ref = setup
    lines = predict(root, tmp_path, root / "texts.txt", root / "images", top_k=2)
    order, scores = expected(ref.scores_i2t, 2)
    assert [line["query_id"] for line in lines] == dataset.image
    for i, line in enumerate(lines):
        assert line["ranked_ids"] == [str(t + 1) for t in order[i].tolist()]
        np.testing.assert_allclose(line["scores"], scores[i].numpy(), atol=1e-4)


def test_read_items_kinds(tmp_path, setup):
    root, dataset, _ = setup
    assert read_items(str(root / "images")).kind == "images"
    ann = read_items(str(root / "ann.json"))
    assert ann.kind == "images" and ann.ids == dataset.image
    assert read_items(str(root / "texts.txt")).values == dataset.text
    with pytest.raises(UserError, match="not found"):
        read_items(str(tmp_path / "nope"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="no images"):
        read_items(str(empty))


def test_same_kinds_rejected_in_one_line(setup, tmp_path):
    root, _, _ = setup
    proc = process_launch.run(CLI + ["--app", "blip_retrieval", "--mode", "predict", "--output_dir", str(tmp_path),
                                     "--user_defined_parameters", f"gallery={root / 'images'} queries={root / 'images'}"],
                              300)
    assert proc.returncode == 2 and "both images" in proc.stderr and "Traceback" not in proc.stderr
