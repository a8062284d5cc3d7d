import json
import os

import pytest
from PIL import Image

from appzoo.blip_retrieval.data import synthetic
from appzoo.blip_retrieval.data.synthetic import make_synthetic_dataset
from appzoo.blip_retrieval.data.validation import validate_annotations
from easyretrieval.errors import UserError

SMALL = dict(n_train=30, n_val=12, n_test=12, image_size=48)


def _files(root):
    out = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            out[os.path.relpath(path, root)] = open(path, "rb").read()
    return out


def test_same_seed_is_byte_identical_and_another_seed_differs(tmp_path):
    make_synthetic_dataset(str(tmp_path / "a"), seed=3, **SMALL)
    make_synthetic_dataset(str(tmp_path / "b"), seed=3, **SMALL)
    make_synthetic_dataset(str(tmp_path / "c"), seed=4, **SMALL)
    a, b, c = (_files(str(tmp_path / x)) for x in "abc")
    assert len(a) == 30 + 12 + 12 + 3 + 1 and a == b
    assert a.keys() == c.keys() and a != c


def test_layout_formats_and_real_jpegs(tmp_path):
    image_root, ann_root = make_synthetic_dataset(str(tmp_path / "s"), seed=0, **SMALL)
    train = json.load(open(os.path.join(ann_root, "synthetic_train.json")))
    val = json.load(open(os.path.join(ann_root, "synthetic_val.json")))
    assert len(train) == 30 * 5 and set(train[0]) == {"image", "caption", "image_id"}
    assert isinstance(train[0]["caption"], str) and len({e["image_id"] for e in train}) == 30
    assert len(val) == 12 and all(len(e["caption"]) == 5 and len(set(e["caption"])) == 5 for e in val)
    with Image.open(os.path.join(image_root, val[0]["image"])) as im:
        assert im.format == "JPEG" and im.size == (48, 48)
    for split in ("train", "val", "test"):
        kind = "train" if split == "train" else "eval"
        validate_annotations({split: os.path.join(ann_root, f"synthetic_{split}.json")}, image_root, kind, decode=True)


def test_captions_state_every_attribute_and_tuples_are_distinct(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    attrs = ("red", "triangle", "large", "bottom", "gray")
    for caption in synthetic.make_captions(attrs, 5, rng):
        assert "red" in caption and "triangle" in caption and "gray" in caption
        assert any(w in caption for w in synthetic._SIZE_WORDS["large"])
        assert any(w in caption for w in synthetic._POSITION_WORDS["bottom"])
    space = synthetic.attribute_space()
    assert len(space) == len(set(space)) == 8 * 5 * 2 * 3 * 4


def test_shapes_are_drawn_where_the_caption_says(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    top = np.asarray(synthetic.draw_image(("red", "square", "large", "top", "black"), 64, rng)).astype(int)
    bottom = np.asarray(synthetic.draw_image(("blue", "circle", "small", "bottom", "white"), 64, rng)).astype(int)
    assert top[:32, :, 0].sum() > 3 * top[32:, :, 0].sum()  # red mass in the upper half
    assert bottom[40:, :, 2].mean() > 200 and bottom[40:, :, 0].mean() < bottom[:24, :, 0].mean()  # blue low


def test_rerun_reuses_the_cache(tmp_path):
    out = str(tmp_path / "s")
    make_synthetic_dataset(out, seed=0, **SMALL)
    marker = os.path.join(out, "images", "val", "00000.jpg")
    stamp = os.stat(marker).st_mtime_ns
    assert make_synthetic_dataset(out, seed=0, **SMALL) == (os.path.join(out, "images"), os.path.join(out, "annotations"))
    assert os.stat(marker).st_mtime_ns == stamp


def test_foreign_folder_is_never_overwritten(tmp_path):
    out = tmp_path / "s"
    make_synthetic_dataset(str(out), seed=0, **SMALL)
    with pytest.raises(UserError, match="does not hold this synthetic dataset"):
        make_synthetic_dataset(str(out), seed=1, **SMALL)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "precious.txt").write_text("keep")
    with pytest.raises(UserError):
        make_synthetic_dataset(str(tmp_path / "mine"), seed=0, **SMALL)
    assert (tmp_path / "mine" / "precious.txt").read_text() == "keep"


def test_a_crash_leaves_no_half_dataset(tmp_path, monkeypatch):
    def crash(img):
        raise RuntimeError("disk full")

    monkeypatch.setattr(synthetic, "_encode_jpeg", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        make_synthetic_dataset(str(tmp_path / "s"), seed=0, **SMALL)
    assert os.listdir(tmp_path) == []
