"""Shared by the index tests: a tiny save_pretrained model (vit=tiny, 32 px), a gallery of real JPEG files in
nested folders with one unreadable file, and an HTML checker. A uniquely named module (not conftest)."""
import base64
import io
import os
import shutil
import sys

from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "evaluation"))
from eval_fixtures import make_model, make_tokenizer, write_gallery  # noqa: E402
from html_collect import HtmlCollector  # noqa: E402

NUM_IMAGES = 12


def make_setup(root):
    """(model, other model, gallery folder, annotation, model folder, other model folder) under `root`."""
    ann = write_gallery(root, NUM_IMAGES, captions_per_image=(1, 3), seed=5)
    gallery = os.path.join(root, "gallery")
    os.makedirs(os.path.join(gallery, "sub"))
    for i in range(NUM_IMAGES):  # a nested folder: the listing is recursive
        where = "sub" if i % 3 == 0 else ""
        shutil.copy(os.path.join(root, "images", f"img_{i:04d}.jpg"), os.path.join(gallery, where, f"img_{i:04d}.jpg"))
    with open(os.path.join(gallery, "broken.jpg"), "wb") as handle:
        handle.write(b"\xff\xd8 not really a JPEG")
    tokenizer = make_tokenizer(root)
    model, other = make_model(tokenizer, seed=11), make_model(tokenizer, seed=12)
    model.save_pretrained(os.path.join(root, "model"))
    other.save_pretrained(os.path.join(root, "other_model"))
    return model, other, gallery, ann, os.path.join(root, "model"), os.path.join(root, "other_model")


def gallery_paths(gallery):
    """The readable images of the gallery, sorted by path relative to it (as the index lists them)."""
    names = sorted(os.path.relpath(os.path.join(d, n), gallery) for d, _, ns in os.walk(gallery) for n in ns
                   if n.startswith("img_"))
    return [os.path.join(gallery, n) for n in names]


def check_html(path):
    """Parse the page; every <img> it shows must resolve to a readable JPEG thumbnail (embedded or in its
    folder). Returns (number of images, the page's text)."""
    parser = HtmlCollector()
    with open(path, encoding="utf-8") as handle:
        parser.feed(handle.read())
    parser.close()
    assert parser.stack == [], f"unclosed elements {parser.stack}"
    for img in parser.imgs:
        src = img["src"]
        if src.startswith("data:"):
            assert src.startswith("data:image/jpeg;base64,")
            data = base64.b64decode(src.split(",", 1)[1])
        else:
            with open(os.path.join(os.path.dirname(path), src), "rb") as handle:
                data = handle.read()
        Image.open(io.BytesIO(data)).verify()
    return len(parser.imgs), " ".join(parser.texts)
