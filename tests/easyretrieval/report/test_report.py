"""HTML report: parses, references every thumbnail it shows (embedded or in its folder); curves PNG."""
import base64
import io
import os

import pytest
from PIL import Image

from easyretrieval.report import Hit, Panel, QueryResult, plot_curves, write_html_report
from html_collect import HtmlCollector


def _images(tmp_path, n):
    paths = []
    for i in range(n):
        path = tmp_path / f"im{i}.jpg"
        Image.new("RGB", (300, 200), (40 * i % 255, 90, 200)).save(path)
        paths.append(str(path))
    return paths


def _queries(paths):
    return [QueryResult(query_text="a <red> box & more", hits=[Hit(os.path.basename(p), 0.9 - 0.1 * k, path=p,
                                                                  correct=(k == 1)) for k, p in enumerate(paths)],
                        note="ground truth at rank 2"),
            QueryResult(query_image=paths[0], hits=[Hit("t1", 1.5, text="a caption"), Hit("broken", 0.2,
                                                                                        path=str(paths[0]) + ".missing")])]


@pytest.mark.parametrize("mode", ["embed", "folder"])
def test_page_parses_and_every_thumbnail_it_shows_is_there(tmp_path, mode):
    paths = _images(tmp_path, 3)
    page = write_html_report(str(tmp_path / "r.html"), "Search", _queries(paths),
                             metrics={"test": {"txt_r1": 50.0, "img_r1": 40.0}}, thumbnails=mode)
    parser = HtmlCollector()
    with open(page, encoding="utf-8") as f:
        parser.feed(f.read())
    parser.close()
    assert parser.stack == []  # every element closed
    assert len(parser.imgs) == 4  # 3 hits + the query image; the unreadable one is a labelled box
    for img in parser.imgs:
        src = img["src"]
        if mode == "embed":
            assert src.startswith("data:image/jpeg;base64,")
            data = base64.b64decode(src.split(",", 1)[1])
        else:
            with open(tmp_path / src, "rb") as f:
                data = f.read()
        assert max(Image.open(io.BytesIO(data)).size) <= 160
    text = " ".join(parser.texts)
    assert "a <red> box & more" in text and "unreadable image" in text and "50.00" in text and "✓" in text


def test_curves_png(tmp_path):
    path = plot_curves(str(tmp_path / "curves.png"), [
        Panel("losses", "step", {"loss_ita": [(1, 3.0), (2, 2.5), (3, 2.0)], "loss_itm": [(1, 0.7), (3, 0.6)]}),
        Panel("learning rate", "step", {"lr": [(1, 1e-4), (3, 5e-5)]}, log_y=True),
        Panel("val", "epoch", {"r_mean": [(0, 10.0), (1, 30.0)]}),
        Panel("empty", "epoch", {"nothing": []}),
    ])
    image = Image.open(path)
    assert image.format == "PNG" and image.size[0] > 3 * image.size[1] // 2
    with pytest.raises(ValueError, match="no points"):
        plot_curves(str(tmp_path / "none.png"), [Panel("empty", "x", {})])
