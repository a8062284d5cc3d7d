"""A self-contained HTML page of retrieval results: each query with its top-k images (or texts) and scores,
the ground truth marked when known, and an optional table of metrics. Opens offline in any browser.

Thumbnails are JPEG data URIs inside the page (thumbnails="embed", one file to share) or JPEG files in a
folder beside it (thumbnails="folder": FILE_files/, for pages with many images). An image that cannot be
read is shown as a labelled empty box, never dropped silently.
"""
import base64
import hashlib
import html
import io
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from PIL import Image

from easyretrieval import fileio
from easyretrieval.atomic_files import write_atomic

THUMB_PX = 160


@dataclass
class Hit:
    """One retrieved item: an image (path) or a text, with its score; `correct` marks a ground truth."""

    id: str
    score: float
    path: Optional[str] = None
    text: Optional[str] = None
    correct: Optional[bool] = None


@dataclass
class QueryResult:
    """A query (text, or an image path) and its hits best first; `note` is shown under the query."""

    query_text: Optional[str] = None
    query_image: Optional[str] = None
    hits: List[Hit] = field(default_factory=list)
    note: str = ""


class _Thumbnails:
    def __init__(self, mode: str, folder: Optional[str], size: int):
        if mode not in ("embed", "folder"):
            raise ValueError(f"thumbnails must be 'embed' or 'folder', got {mode!r}")
        self.mode, self.folder, self.size, self.cache = mode, folder, size, {}

    def src(self, path: str) -> Optional[str]:
        """The <img src> of `path`'s thumbnail, or None when the image cannot be read."""
        if path not in self.cache:
            self.cache[path] = self._make(path)
        return self.cache[path]

    def _make(self, path):
        try:
            image = Image.open(io.BytesIO(fileio.read_bytes(path)))
            image = image.convert("RGB")
        except Exception:  # noqa: BLE001 - any unreadable image is shown as such
            return None
        image.thumbnail((self.size, self.size))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=85)
        data = buffer.getvalue()
        if self.mode == "embed":
            return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")
        name = hashlib.sha1(path.encode("utf-8")).hexdigest()[:16] + ".jpg"
        os.makedirs(self.folder, exist_ok=True)
        write_atomic(os.path.join(self.folder, name), data)
        return f"{os.path.basename(self.folder)}/{name}"


_STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222}
h1{font-size:20px} table.metrics{border-collapse:collapse;margin:8px 0 24px}
table.metrics td,table.metrics th{border:1px solid #ccc;padding:4px 10px;text-align:right}
.query{margin:18px 0;padding:10px;border-top:1px solid #ddd}
.qtext{font-weight:600;margin-bottom:6px} .note{color:#666;font-size:13px;margin-bottom:6px}
.hits{display:flex;flex-wrap:wrap;gap:10px} .hit{width:%(w)dpx;font-size:12px;border:3px solid transparent;padding:2px}
.hit.correct{border-color:#2a9d3a} .hit img{max-width:%(w)dpx;max-height:%(w)dpx;display:block}
.missing{width:%(w)dpx;height:%(h)dpx;background:#eee;color:#900;display:flex;align-items:center;justify-content:center}
.qimg img{max-width:%(w)dpx;max-height:%(w)dpx} .rank{color:#555}
"""


def _image_html(thumbs: _Thumbnails, path: str, alt: str) -> str:
    src = thumbs.src(path)
    if src is None:
        return f'<div class="missing" title="{html.escape(path)}">unreadable image</div>'
    return f'<img src="{src}" alt="{html.escape(alt)}" title="{html.escape(path)}">'


def write_html_report(path: str, title: str, queries: Sequence[QueryResult],
                      metrics: Optional[Dict[str, Dict[str, float]]] = None, intro: str = "",
                      thumbnails: str = "embed", thumb_px: int = THUMB_PX) -> str:
    """Write the page to `path` (atomically) and return it. `metrics`: {row label: {column: value}}."""
    folder = os.path.splitext(path)[0] + "_files" if thumbnails == "folder" else None
    thumbs = _Thumbnails(thumbnails, folder, thumb_px)
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{_STYLE % {'w': thumb_px, 'h': thumb_px // 2}}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    if intro:
        parts.append(f"<p>{html.escape(intro)}</p>")
    if metrics:
        columns = list(dict.fromkeys(c for row in metrics.values() for c in row))
        parts.append("<table class='metrics'><tr><th></th>" + "".join(f"<th>{html.escape(c)}</th>" for c in columns)
                     + "</tr>")
        for label, row in metrics.items():
            cells = "".join(f"<td>{row[c]:.2f}</td>" if c in row else "<td></td>" for c in columns)
            parts.append(f"<tr><th>{html.escape(label)}</th>{cells}</tr>")
        parts.append("</table>")
    for number, query in enumerate(queries, 1):
        parts.append("<div class='query'>")
        if query.query_image:
            parts.append(f"<div class='qimg'>{_image_html(thumbs, query.query_image, 'query image')}</div>")
        if query.query_text:
            parts.append(f"<div class='qtext'>{number}. {html.escape(query.query_text)}</div>")
        if query.note:
            parts.append(f"<div class='note'>{html.escape(query.note)}</div>")
        parts.append("<div class='hits'>")
        for rank, hit in enumerate(query.hits, 1):
            css = "hit correct" if hit.correct else "hit"
            body = _image_html(thumbs, hit.path, hit.id) if hit.path else f"<div>{html.escape(hit.text or hit.id)}</div>"
            mark = " ✓" if hit.correct else ""
            parts.append(f"<div class='{css}'>{body}<div class='rank'>#{rank} {hit.score:.3f}{mark}</div>"
                         f"<div>{html.escape(hit.id)}</div></div>")
        parts.append("</div></div>")
    parts.append("</body></html>")
    return write_atomic(path, "\n".join(parts))
