"""Fixtures of the data tests: real JPEG files written into tmp dirs."""
import pytest

from data_helpers import write_jpeg


@pytest.fixture
def image_root(tmp_path):
    """Four real JPEGs a.jpg, b.jpg, sub/c.jpg, sub/d.jpg of different colours."""
    root = tmp_path / "images"
    for name, colour in [("a.jpg", (255, 0, 0)), ("b.jpg", (0, 255, 0)), ("sub/c.jpg", (0, 0, 255)),
                         ("sub/d.jpg", (250, 250, 0))]:
        write_jpeg(str(root / name), colour)
    return str(root)
