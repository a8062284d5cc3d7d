"""scripts/standardise_images.py on real JPEG files: train channels standardised, annotations copied."""
import json
import sys

import numpy as np
import pytest
from PIL import Image

from appzoo.blip_retrieval.data.transforms import CLIP_MEAN, CLIP_STD
from scripts import standardise_images


def test_train_channels_have_mean_0_std_1_after_clip_normalisation(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    for split, count in (("train", 4), ("test", 2)):
        (tmp_path / "images" / split).mkdir(parents=True)
        for i in range(count):  # bright, low-contrast images like the digits set
            pixels = (200 + rng.integers(0, 40, size=(16, 16, 3))).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "images" / split / f"{i}.png")
    (tmp_path / "ann").mkdir()
    (tmp_path / "ann" / "test.json").write_text(json.dumps([{"image": "test/0.png", "caption": ["x"]}]))
    out = tmp_path / "out"
    monkeypatch.setattr(sys, "argv", ["standardise_images.py", str(tmp_path / "images"), str(tmp_path / "ann"),
                                      str(out)])
    standardise_images.main()
    assert json.loads((out / "annotations" / "test.json").read_text())[0]["image"] == "test/0.png"
    assert standardise_images.image_files(out / "images") == standardise_images.image_files(tmp_path / "images")
    train = np.stack([standardise_images.read(out / "images" / "train" / f"{i}.png") for i in range(4)])
    normed = (train - np.array(CLIP_MEAN)) / np.array(CLIP_STD)
    assert normed.mean((0, 1, 2)) == pytest.approx(np.zeros(3), abs=0.05)  # 8-bit rounding, a few clipped
    assert normed.std((0, 1, 2)) == pytest.approx(np.ones(3), abs=0.1)


def test_stops_without_train_images(tmp_path, monkeypatch):
    (tmp_path / "images" / "val").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(tmp_path / "images" / "val" / "a.jpg")
    monkeypatch.setattr(sys, "argv", ["standardise_images.py", str(tmp_path / "images"), str(tmp_path),
                                      str(tmp_path / "o")])
    with pytest.raises(SystemExit, match="no images under"):
        standardise_images.main()
