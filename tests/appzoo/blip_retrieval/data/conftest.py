"""Fixtures of the data tests: real JPEG files and annotation files written into tmp dirs."""
import json
import os

import pytest
from PIL import Image


def write_jpeg(path, colour=(200, 30, 30), size=(40, 32)):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("RGB", size, colour).save(path, format="JPEG", quality=90)
    return path


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f)
    return path


@pytest.fixture
def image_root(tmp_path):
    """Four real JPEGs a.jpg, b.jpg, sub/c.jpg, sub/d.jpg of different colours."""
    root = tmp_path / "images"
    for name, colour in [("a.jpg", (255, 0, 0)), ("b.jpg", (0, 255, 0)), ("sub/c.jpg", (0, 0, 255)),
                         ("sub/d.jpg", (250, 250, 0))]:
        write_jpeg(str(root / name), colour)
    return str(root)
