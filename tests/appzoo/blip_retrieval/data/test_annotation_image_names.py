"""annotation_image_names: the one reading of an annotation file's images (predict's gallery=, index --gallery)."""
import json

import pytest

from appzoo.blip_retrieval.data.datasets import annotation_image_names
from easyretrieval.errors import UserError


def test_distinct_names_in_first_seen_order(tmp_path):
    path = tmp_path / "ann.json"
    path.write_text(json.dumps([{"image": "b.jpg", "caption": "x"}, {"image": "a.jpg", "caption": ["y", "z"]},
                                {"image": "b.jpg", "caption": "w"}, "c.jpg"]))
    assert annotation_image_names(str(path)) == ["b.jpg", "a.jpg", "c.jpg"]


@pytest.mark.parametrize("entry", [{"caption": "no image"}, {"image": ""}, 7])
def test_an_entry_without_image_names_file_and_entry(tmp_path, entry):
    path = tmp_path / "ann.json"
    path.write_text(json.dumps([{"image": "a.jpg"}, entry]))
    with pytest.raises(UserError, match=r"annotation file '.*ann\.json': entry 1 has no \"image\" path"):
        annotation_image_names(str(path))
