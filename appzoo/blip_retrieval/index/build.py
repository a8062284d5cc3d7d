"""Embed a gallery into a GalleryStore: ITC features (and optionally ViT token embeddings) in committed shards.

Every rank embeds its share of the images the store does not hold yet (resume after a kill, or --append),
committing a shard every `commit_every` images, so a run killed at any moment loses at most that many
images' work and never leaves a corrupt index. Images that cannot be read go to the store's failure report
(failed/) and are retried by the next build. The main rank builds the FAISS index once every rank is done.
Features are computed as the evaluator computes them: the official test transform, `encode_image`, the
normalised projection of the [CLS] token, float32.
"""
import os
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from easyretrieval.distributed import DistInfo, barrier, multi_rank
from easyretrieval.errors import UserError
from easyretrieval.index import GalleryIndex, GalleryStore
from easyretrieval.secrets import mask_secrets

from appzoo.blip_retrieval.index.gallery import GalleryItems
from appzoo.blip_retrieval.index.identity import model_identity, source_record
from appzoo.blip_retrieval.model.inference import eval_mode

VIT_EXTRA = "vit"  # the per-image array name of the stored ViT token embeddings


@dataclass
class BuildOptions:
    kind: str = "flat"          # FAISS index: flat (exact), ivf or hnsw (approximate, recall recorded)
    append: bool = False        # allow adding to a finished index
    store_vit: bool = False     # also store the ViT token embeddings (float16) for --rerank
    batch_size: int = 32        # images per forward
    num_workers: int = 0        # image-reading worker processes
    commit_every: int = 512     # images per committed shard
    progress: bool = True
    worker_start_method: str = "forkserver"


@dataclass
class BuildReport:
    folder: str
    total: int                  # images in the index now
    embedded: int               # images this build embedded (all ranks)
    already: int                # gallery images the index held before this build
    failed: List[dict] = field(default_factory=list)  # {"id", "path", "error"} of images not in the index
    recall_vs_exact: Optional[float] = None
    vit_bytes_per_image: int = 0

    def summary(self) -> str:
        text = (f"index {self.folder}: {self.total} images ({self.embedded} embedded now, {self.already} were "
                f"already in it)")
        if self.recall_vs_exact is not None:
            text += f"; approximate search recall@10 vs exact {self.recall_vs_exact:.3f}"
        if self.vit_bytes_per_image:
            text += f"; ViT embeddings stored, {self.vit_bytes_per_image / 2 ** 20:.2f} MiB per image"
        if self.failed:
            text += (f"; {len(self.failed)} images could not be read and are not in the index: listed in "
                     f"{os.path.join(self.folder, 'failed')}/ (one JSON line each: id, path, error)")
        return text


class _GalleryImages(Dataset):
    """Item i -> (transformed image or None, i, error text or None): a read failure is data, not an exception."""

    def __init__(self, paths, transform):
        self.paths, self.transform = list(paths), transform

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        from appzoo.blip_retrieval.data.datasets import read_image

        try:
            return self.transform(read_image(self.paths[i])), i, None
        except Exception as e:  # noqa: BLE001 - every read/decode failure is reported the same way
            return None, i, mask_secrets(f"{type(e).__name__}: {e}")


def _collate(items):
    good = [(pixels, i) for pixels, i, error in items if error is None]
    bad = [(i, error) for _, i, error in items if error is not None]
    pixels = torch.stack([p for p, _ in good]) if good else None
    return pixels, [i for _, i in good], bad


class _Shard:
    """The features, entries and ViT embeddings waiting for the next commit."""

    def __init__(self):
        self.feats, self.entries, self.vits = [], [], []

    def __len__(self):
        return len(self.entries)

    def commit(self, store, rank):
        if not self.entries:
            return
        extras = {VIT_EXTRA: np.concatenate(self.vits)} if self.vits else None
        store.commit_shard(rank, np.concatenate(self.feats), self.entries, extras)
        self.__init__()


def _device_of(model):
    return next(model.parameters()).device


def embed_share(model, items: GalleryItems, positions: List[int], store: GalleryStore, rank: int,
                options: BuildOptions) -> int:
    """Embed items[positions] into `store` as rank `rank`; returns how many were committed."""
    from appzoo.blip_retrieval.data.loaders import _worker_kwargs

    if not positions:
        return 0
    dataset = _GalleryImages([items.paths[p] for p in positions], model.image_transform)
    loader = DataLoader(dataset, batch_size=options.batch_size, shuffle=False, collate_fn=_collate,
                        **_worker_kwargs(options.num_workers, False, False, options.worker_start_method))
    bar = None
    if options.progress and rank == 0:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(positions), desc="embedding images", unit="img", dynamic_ncols=True, mininterval=1.0)
    device, shard, committed = _device_of(model), _Shard(), 0
    try:
        with eval_mode(model):
            for pixels, local, bad in loader:
                if bad:
                    store.record_failures(rank, [{"id": items.paths[positions[i]], "path": items.paths[positions[i]],
                                                  "name": items.names[positions[i]], "error": error}
                                                 for i, error in bad])
                if pixels is not None:
                    embeds = model.encode_image(pixels.to(device))
                    shard.feats.append(model.image_feat(embeds).float().cpu().numpy())
                    if options.store_vit:
                        shard.vits.append(embeds.to(torch.float16).cpu().numpy())
                    shard.entries += [{"id": items.paths[positions[i]], "path": items.paths[positions[i]],
                                       "name": items.names[positions[i]]} for i in local]
                if len(shard) >= options.commit_every:
                    committed += len(shard)
                    shard.commit(store, rank)
                if bar is not None:
                    bar.update(len(local) + len(bad))
            committed += len(shard)
            shard.commit(store, rank)
    finally:
        if bar is not None:
            bar.close()
    return committed


def _check_can_write(store: GalleryStore, append: bool):
    if store.has_search_index() and not append:
        raise UserError(f"'{store.folder}' holds a finished index; add --append to embed the gallery's new images "
                        "into it, or give a new folder")


def open_store_for_build(model, folder: str, options: BuildOptions) -> GalleryStore:
    """The store in `folder` for this model (created, or reopened to resume / append); UserError for another
    model's index, another kind, or a finished index without `append`."""
    about = {"source": source_record(getattr(model, "pretrained_source", "")), "store_vit": bool(options.store_vit)}
    store = GalleryStore.create_or_open(folder, model_identity(model), model.config.embed_dim, options.kind, about)
    _check_can_write(store, options.append)
    if options.store_vit != bool(store.meta.get("about", {}).get("store_vit")):
        have = "stores" if store.meta.get("about", {}).get("store_vit") else "does not store"
        raise UserError(f"index '{folder}' {have} ViT embeddings: build into it with the same --store_vit choice")
    return store


def check_folder_before_model(folder: str, append: bool):
    """The checks of `folder` that need no model (before loading one): a file, or a finished index without
    --append, is refused."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise UserError(f"--output '{folder}' is a file; give a folder")
    if os.path.isfile(os.path.join(folder, "index.json")):
        _check_can_write(GalleryStore.open(folder), append)


def build_index(model, items: GalleryItems, folder: str, options: BuildOptions, dist: DistInfo) -> Optional[BuildReport]:
    """Embed `items` missing from the index in `folder` (all ranks call this together; every rank takes an
    interleaved share) and build its FAISS index on the main rank. Returns the report on the main rank,
    None elsewhere."""
    if options.commit_every < 1 or options.batch_size < 1:
        raise UserError("--commit_every and --batch_size must be >= 1")
    folder = os.path.abspath(folder)
    if dist.is_main:
        open_store_for_build(model, folder, options)
    barrier()  # the store exists and is this model's
    store = GalleryStore.open(folder)
    done = store.committed_ids()
    barrier()  # every rank has read what is done before any rank commits more
    todo = [p for p, path in enumerate(items.paths) if path not in done]
    mine = todo[dist.rank::dist.world_size]
    embedded = embed_share(model, items, mine, store, dist.rank, options)
    totals = torch.tensor([embedded], dtype=torch.long)
    if multi_rank():
        if torch.distributed.get_backend() == "nccl":
            totals = totals.cuda()
        torch.distributed.all_reduce(totals)  # also the barrier: every rank has committed
    if not dist.is_main:
        return None
    index = GalleryIndex.finalize(store)
    info = _read_faiss_info(folder)
    cfg = model.config.vision
    vit_bytes = (cfg.num_patches + 1) * cfg.width * 2 if options.store_vit else 0
    return BuildReport(folder, len(index), int(totals.sum()), len(items) - len(todo), store.failures(),
                       info.get("recall_at_10_vs_exact"), vit_bytes)


def _read_faiss_info(folder):
    import json

    with open(os.path.join(folder, "faiss.json"), encoding="utf-8") as handle:
        return json.load(handle)
