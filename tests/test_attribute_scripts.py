"""scripts/attribute_errors.py and scripts/vision_probe.py: the caption parser recovers every attribute the
generator wrote, the error report names the differing attributes, and the probe runs on real JPEG files."""
import json
import sys

import numpy as np

from appzoo.blip_retrieval.data import synthetic
from scripts import attribute_errors, vision_probe


def test_parse_caption_reads_back_every_attribute_of_every_template():
    rng = np.random.default_rng(0)
    space = synthetic.attribute_space()
    for k in rng.choice(len(space), size=200, replace=False):
        for caption in synthetic.make_captions(space[k], len(synthetic._TEMPLATES), rng):
            assert attribute_errors.parse_caption(caption) == space[k], caption


def test_error_report_names_the_attributes_the_top1_gets_wrong(tmp_path):
    a = ("red", "circle", "small", "top", "white")
    b = ("red", "square", "small", "bottom", "white")
    rng = np.random.default_rng(1)
    entries = [{"image": f"{i}.jpg", "caption": synthetic.make_captions(t, 2, rng)} for i, t in enumerate((a, b))]
    (tmp_path / "synthetic_test.json").write_text(json.dumps(entries))
    # texts 0,1 describe image 0, texts 2,3 image 1; text 1 and image 1 retrieve the wrong item first
    np.savez(tmp_path / "test_rankings.npz", t2i_index=np.array([[0, 1], [1, 0], [1, 0], [1, 0]]),
             i2t_index=np.array([[0, 1], [0, 2]]))
    report = attribute_errors.error_report(str(tmp_path), str(tmp_path), "test")
    wrong, total, sets = report["text->image"]
    assert (wrong, total, dict(sets)) == (1, 4, {("shape", "position"): 1})
    wrong, total, sets = report["image->text"]
    assert (wrong, total, dict(sets)) == (1, 2, {("shape", "position"): 1})


def test_vision_probe_trains_the_encoder_and_prints_each_attribute(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["vision_probe.py", "--steps", "4", "--vit_stem", "conv", "--vit_init_std",
                                      "0.125", "--image_size", "32", "--synthetic_dir", str(tmp_path)])
    vision_probe.main()
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("vit=tiny vit_stem=conv vit_init_std=0.125 patch_size=8 image_size=32")
    assert [line.split(":")[0] for line in lines[1:]] == ["step 1", "step 2", "step 3", "step 4"]
    assert all(f"{name} " in lines[-1] for name in attribute_errors.ATTRIBUTES)
