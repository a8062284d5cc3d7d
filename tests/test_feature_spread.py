"""scripts/feature_spread.py: the cosine measure, the channel standardisation and a run on real JPEG files."""
import json
import sys

import pytest
import torch
from PIL import Image

from scripts import feature_spread


def test_mean_offdiag_cosine_identical_orthogonal_and_opposite_rows():
    assert feature_spread.mean_offdiag_cosine(torch.ones(4, 3, 2)) == pytest.approx(1.0)
    assert feature_spread.mean_offdiag_cosine(torch.eye(3)) == pytest.approx(0.0)
    assert feature_spread.mean_offdiag_cosine(torch.tensor([[1.0, 2.0], [-1.0, -2.0]])) == pytest.approx(-1.0)


def test_channel_standardised_removes_a_common_offset():
    torch.manual_seed(0)
    images = 5.0 + 0.1 * torch.randn(8, 3, 4, 4)  # a large shared component: nearly identical directions
    out = feature_spread.channel_standardised(images)
    assert feature_spread.mean_offdiag_cosine(images) > 0.99
    assert out.mean((0, 2, 3)).abs().max() < 1e-5
    assert out.std((0, 2, 3)) == pytest.approx(torch.ones(3), abs=1e-5)
    assert abs(feature_spread.mean_offdiag_cosine(out)) < 0.2


def test_main_prints_each_measure_for_jpeg_files(tmp_path, monkeypatch, capsys):
    entries = []
    for i, colour in enumerate([(250, 250, 240), (240, 245, 250), (20, 20, 200), (200, 20, 20)]):
        Image.new("RGB", (32, 32), colour).save(tmp_path / f"{i}.jpg")
        entries.append({"image": f"{i}.jpg", "caption": [f"picture {i}"]})
    (tmp_path / "test.json").write_text(json.dumps(entries))
    monkeypatch.setattr(sys, "argv", ["feature_spread.py", "--image_root", str(tmp_path), "--ann_file",
                                      str(tmp_path / "test.json"), "--image_size", "32", "--patch_size", "8"])
    torch.set_num_threads(1)
    feature_spread.main()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "4 images; mean cosine between different images:"
    values = {line.split(":")[0].strip(): float(line.split(":")[1].split()[0]) for line in lines[1:]}
    assert set(values) == {"pixels", "pixels, channel-standardised", "ITC image features",
                           "ITC image features, standardised input"}
    assert all(-1.0 <= v <= 1.0 for v in values.values())
    assert values["pixels, channel-standardised"] < values["pixels"]


def test_vit_linear_std_redraws_the_scratch_vit(tmp_path, monkeypatch, capsys):
    entries = []
    for i in range(3):
        Image.new("RGB", (32, 32), (80 * i, 40, 200 - 60 * i)).save(tmp_path / f"{i}.jpg")
        entries.append({"image": f"{i}.jpg", "caption": "c"})
    (tmp_path / "test.json").write_text(json.dumps(entries))
    argv = ["feature_spread.py", "--image_root", str(tmp_path), "--ann_file", str(tmp_path / "test.json"),
            "--image_size", "32", "--patch_size", "8"]
    torch.set_num_threads(1)
    outputs = []
    for extra in ([], ["--vit_linear_std", "0.3"]):
        monkeypatch.setattr(sys, "argv", argv + extra)
        feature_spread.main()
        outputs.append([line for line in capsys.readouterr().out.splitlines() if "ITC" in line])
    assert "vit_linear_std=0.3" in outputs[1][0] and "vit_linear_std" not in outputs[0][0]
    assert outputs[0][0].split()[3] != outputs[1][0].split()[3]  # another init, other features


def test_main_stops_on_a_file_with_one_entry(tmp_path, monkeypatch):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.jpg")
    (tmp_path / "one.json").write_text(json.dumps([{"image": "a.jpg", "caption": ["a"]}]))
    monkeypatch.setattr(sys, "argv", ["feature_spread.py", "--image_root", str(tmp_path), "--ann_file",
                                      str(tmp_path / "one.json")])
    with pytest.raises(SystemExit, match="need at least 2"):
        feature_spread.main()
