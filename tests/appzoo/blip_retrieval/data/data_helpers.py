"""Helpers of the data tests (a uniquely named module: `conftest` is ambiguous across test folders)."""
import json
import os

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
