"""`Index`: a persistent BLIP gallery index, built once, searched by text (ITC, optional ITM re-rank) or image.

    from appzoo.blip_retrieval import BlipRetrieval, Index
    model = BlipRetrieval.from_pretrained("output/demo/best")
    index = Index.build(model, "photos/", "photos.index")          # or Index.open("photos.index")
    for result in index.search(model, ["a dog on a beach"], top_k=10, rerank=16):
        print([(hit.id, hit.score) for hit in result.hits])

Scores: ITC cosine similarity of the L2-normalised features (FAISS inner product), or with `rerank=K` the
evaluator's score of the top K candidates (ITM positive logit + ITC similarity). A query with a model other
than the one that built the index is refused (UserError naming the field that differs).
"""
import os
from dataclasses import asdict, dataclass, field
from typing import List, Optional, Sequence, Union

import numpy as np
import torch

from easyretrieval.distributed import DistInfo, barrier, group_active
from easyretrieval.errors import UserError
from easyretrieval.index import GalleryIndex, GalleryStore

from appzoo.blip_retrieval.index.build import VIT_EXTRA, BuildOptions, BuildReport, build_index
from appzoo.blip_retrieval.model.inference import eval_mode
from appzoo.blip_retrieval.index.gallery import GalleryItems, list_gallery
from appzoo.blip_retrieval.index.identity import model_identity
from appzoo.blip_retrieval.index.rerank import order_by_score, rerank_text_queries

ITC, ITM_ITC = "itc", "itm+itc"


@dataclass
class SearchHit:
    rank: int     # 1 = best
    id: str       # the image's name in its gallery (relative path, or as the annotation names it)
    path: str     # the file (absolute local path or oss:// URL)
    score: float  # ITC similarity, or ITM positive logit + ITC similarity when re-ranked


@dataclass
class QueryHits:
    query: str                # the text, or the query image's path
    kind: str                 # "text" or "image": what the query is
    scored_by: str            # "itc" or "itm+itc"
    hits: List[SearchHit] = field(default_factory=list)

    def to_json(self) -> dict:
        """One line of `easyretrieval search`: {"query", "scored_by", "hits": [{"rank", "id", "path", "score"}]}."""
        return {"query": self.query, "scored_by": self.scored_by, "hits": [asdict(h) for h in self.hits]}


def _dist_from_torch() -> DistInfo:
    if group_active():
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        return DistInfo(rank=rank, world_size=world, local_rank=int(os.environ.get("LOCAL_RANK", rank)),
                        local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", world)))
    return DistInfo()


def _items_of(gallery, image_root) -> GalleryItems:
    if isinstance(gallery, GalleryItems):
        return gallery
    if isinstance(gallery, (str, os.PathLike)):
        return list_gallery(os.fspath(gallery), image_root)
    paths = [os.fspath(p) for p in gallery]
    return GalleryItems(paths, [p if "://" in p else os.path.abspath(p) for p in paths])


def check_texts(texts, max_words):
    """UserError for a query that official pre_caption empties (it would match nothing in particular)."""
    from appzoo.blip_retrieval.model.tokenizer import pre_caption

    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise TypeError("queries must be a list of strings (wrap a single query in a list)")
    empty = [t for t in texts if not pre_caption(t, max_words)]
    if empty:
        raise UserError(f"query {empty[0]!r} is empty once normalised as captions are (the characters .!\"()*#:;~ "
                        "removed); give words")


class Index:
    """A gallery index on disk, opened for search (features, entries and the FAISS index in memory)."""

    def __init__(self, gallery: GalleryIndex):
        self.gallery = gallery
        self.build_report: Optional[BuildReport] = None

    # ------------------------------------------------------------------ building and opening
    @classmethod
    def build(cls, model, gallery: Union[str, Sequence[str], GalleryItems], folder: str, *, image_root: str = "",
              kind: str = "flat", append: bool = False, store_vit: bool = False, batch_size: int = 32,
              num_workers: int = 0, commit_every: int = 512, progress: bool = True) -> "Index":
        """Embed `gallery` with `model` into `folder` and open it (`index.build_report` says what was done).

        gallery: an image folder or oss:// prefix (recursive), an official-format annotation .json (images
        relative to `image_root`, default its folder), or a list of image paths. kind: flat (exact), ivf or
        hnsw. append: add the gallery's new images to a finished index. store_vit: keep each image's ViT
        token embeddings (float16, [1+P, Wv]) so re-ranking reads no image files. A folder holding an
        unfinished build of the same model resumes it. Under torch.distributed every rank calls this and
        embeds a share. UserError: another model's or kind's index, a finished index without append, a
        missing gallery.
        """
        items = _items_of(gallery, image_root)
        options = BuildOptions(kind=kind, append=append, store_vit=store_vit, batch_size=batch_size,
                               num_workers=num_workers, commit_every=commit_every, progress=progress)
        report = build_index(model, items, folder, options, _dist_from_torch())
        barrier()
        index = cls.open(folder)
        index.build_report = report
        return index

    @classmethod
    def open(cls, folder: str) -> "Index":
        """The index in `folder` (UserError when it is none or holds no images)."""
        store = GalleryStore.open(folder)
        extras = [VIT_EXTRA] if store.meta.get("about", {}).get("store_vit") else []
        return cls(GalleryIndex.open(folder, with_extras=extras))

    @property
    def folder(self) -> str:
        return self.gallery.store.folder

    @property
    def about(self) -> dict:
        """Where the model came from ("source") and what the index stores; shown, never compared."""
        return dict(self.gallery.meta.get("about", {}))

    @property
    def stores_vit(self) -> bool:
        return VIT_EXTRA in self.gallery.extras

    def __len__(self):
        return len(self.gallery)

    def load_model(self, device=None):
        """The model this index records as its source (BlipRetrieval.from_pretrained), checked against it."""
        from appzoo.blip_retrieval.model.blip_retrieval import BlipRetrieval

        source = self.about.get("source", "")
        if not source or "***" in source:
            raise UserError(f"index '{self.folder}' records no usable model source ({source or 'none'}): give "
                            "the model it was built with (--pretrained)")
        if os.path.isabs(source) and not os.path.exists(source):
            raise UserError(f"index '{self.folder}' was built with the model {source}, which is no longer there: "
                            "give the model it was built with (--pretrained)")
        model = BlipRetrieval.from_pretrained(source, device=device)
        self.check_model(model)
        return model

    def check_model(self, model):
        """UserError unless `model` is the model that built this index (config, weights, vocab)."""
        self.gallery.store.check_identity(model_identity(model))

    # ------------------------------------------------------------------ searching
    def search(self, model, queries: Sequence[str], top_k: int = 10, rerank: int = 0) -> List[QueryHits]:
        """Text -> image: the `top_k` best images for each query text, best first.

        Scores are ITC similarities, or with `rerank=K` (K >= top_k) the top K ITC candidates re-scored as
        the evaluator scores them (ITM positive logit + ITC similarity; ViT embeddings from the index when
        it stores them, else recomputed from the image files). Texts are normalised as captions (official
        pre_caption). UserError: another model, rerank < top_k, a query that normalisation empties, an
        image file that can no longer be read for the re-rank.
        """
        self.check_model(model)
        check_texts(queries, model.config.max_words)
        top_k, rerank = int(top_k), int(rerank)
        if top_k < 1 or rerank < 0:
            raise UserError(f"top_k must be >= 1 and rerank >= 0 (got {top_k}, {rerank})")
        if 0 < rerank < top_k:
            raise UserError(f"rerank={rerank} re-scores fewer candidates than top_k={top_k} returns: give rerank >= "
                            "top_k (or rerank=0)")
        if not queries:
            return []
        feats = model.embed_texts(list(queries)).cpu().numpy()
        found = self.gallery.search(feats, max(top_k, rerank))
        if not rerank:
            return [self._hits(q, "text", found.row[i], found.score[i], top_k, ITC) for i, q in enumerate(queries)]
        with eval_mode(model):
            scores = rerank_text_queries(model, queries, found.row[:, :rerank], found.score[:, :rerank],
                                         lambda rows: self._image_embeds(model, rows))
        out = []
        for i, query in enumerate(queries):
            rows, score = order_by_score(found.row[i, :rerank], scores[i])
            out.append(self._hits(query, "text", rows, score, top_k, ITM_ITC))
        return out

    def search_images(self, model, images: Sequence, top_k: int = 10) -> List[QueryHits]:
        """Image -> image: the `top_k` gallery images nearest each query image (PIL images or paths) by ITC
        cosine similarity. (No re-rank: ITM scores an image against a text.)"""
        self.check_model(model)
        feats = model.embed_images(list(images)).cpu().numpy()
        found = self.gallery.search(feats, int(top_k))
        names = [os.fspath(i) if isinstance(i, (str, os.PathLike)) else f"image {n}" for n, i in enumerate(images)]
        return [self._hits(name, "image", found.row[i], found.score[i], top_k, ITC) for i, name in enumerate(names)]

    def _hits(self, query, kind, rows, scores, top_k, scored_by) -> QueryHits:
        hits = []
        for row, score in zip(rows, scores):
            if row < 0 or len(hits) == top_k:
                continue
            entry = self.gallery.entries[int(row)]
            hits.append(SearchHit(len(hits) + 1, entry.get("name", entry["id"]), entry["path"], float(score)))
        return QueryHits(query, kind, scored_by, hits)

    def _image_embeds(self, model, rows: np.ndarray) -> torch.Tensor:
        """ViT embeddings [U, 1+P, Wv] of gallery rows: stored ones (float16, cast to the model's dtype), or
        recomputed from the files with the test transform."""
        device = next(model.parameters()).device
        if self.stores_vit:
            return torch.from_numpy(np.asarray(self.gallery.extras[VIT_EXTRA][rows])).to(device, torch.float32)
        from appzoo.blip_retrieval.data.datasets import read_image

        pixels = []
        for row in rows:
            path = self.gallery.entries[int(row)]["path"]
            try:
                pixels.append(model.image_transform(read_image(path)))
            except Exception as e:  # noqa: BLE001 - any read failure stops the re-rank the same way
                raise UserError(f"cannot read gallery image '{path}' for the ITM re-rank: {type(e).__name__}: {e} "
                                "(restore it, or search without rerank)") from None
        batch = torch.stack(pixels)
        return torch.cat([model.encode_image(batch[i:i + 32].to(device)) for i in range(0, len(batch), 32)])
