"""A persistent gallery index: L2-normalised feature vectors in committed shards, searched with FAISS.

Folder layout (INDEX_DIR):
    index.json                identity of the model that made the features, feature size, FAISS kind
    shards/rRRR-SSSSS.npy     float32 [n, dim] features of one shard
    shards/rRRR-SSSSS.<x>.npy optional per-item arrays of that shard (e.g. "vit": image token embeddings)
    shards/rRRR-SSSSS.json    its entries [{"id", "path"}, ...], written last: the shard's commit mark
    failed/rRRR.jsonl         items that could not be embedded, with the reason (one JSON object a line)
    faiss.index, faiss.json   the FAISS index of all committed shards and which shards it holds

Every file is written to a temporary name and renamed, and a shard counts only once its .json exists, so a
build killed at any moment (SIGKILL included) leaves a consistent index: rerunning the build embeds only
what no committed shard holds. Each rank writes its own shards (names carry the rank), so several ranks
build one index without coordination. Rows are ordered by item id whatever the shard layout, so an
appended or resumed build gives the same index as one uninterrupted build.

FAISS kinds (inner product on L2-normalised vectors = cosine, as BLIP's ITC): "flat" (exact,
IndexFlatIP), "ivf" (IndexIVFFlat, nlist about 4 sqrt(N), nprobe) and "hnsw" (IndexHNSWFlat, M 32,
efSearch); the approximate kinds record their recall@10 against exact search on a sample at build time.
"""
import glob
import json
import os
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import faiss
import numpy as np

from easyretrieval.atomic_files import write_atomic, write_json_atomic
from easyretrieval.errors import UserError

FORMAT = "easyretrieval-gallery-index/1"
KINDS = ("flat", "ivf", "hnsw")
_SHARD = re.compile(r"^r(\d{3})-(\d{5})\.json$")


@dataclass
class SearchHits:
    """Best first per query: `row` indexes `GalleryIndex.entries` (-1 = fewer hits than top_k)."""

    score: np.ndarray  # [Q, k] float32 inner products
    row: np.ndarray    # [Q, k] int64


def _save_npy(path, array):
    write_atomic(path, lambda handle: np.save(handle, array, allow_pickle=False))


class GalleryStore:
    """The folder of one index: its identity, committed shards and failures (writing and reading)."""

    def __init__(self, folder: str, meta: dict):
        self.folder = folder
        self.meta = meta

    # -- creating and opening -------------------------------------------------------------------------
    @classmethod
    def create_or_open(cls, folder: str, identity: dict, dim: int, kind: str = "flat") -> "GalleryStore":
        """A new index in `folder`, or the existing one when its identity and kind are the same (append or
        resume). An existing index of another model or kind is refused (UserError)."""
        if kind not in KINDS:
            raise UserError(f"index kind '{kind}' is not one of {', '.join(KINDS)}")
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise UserError(f"index folder '{folder}' is a file; give a folder")
        meta_path = os.path.join(folder, "index.json")
        if os.path.isfile(meta_path):
            store = cls.open(folder)
            store.check_identity(identity)
            if store.meta["kind"] != kind:
                raise UserError(f"index '{folder}' is of kind '{store.meta['kind']}', not '{kind}'; build into a "
                                f"new folder to change the kind")
            return store
        if os.path.isdir(folder) and os.listdir(folder):
            raise UserError(f"'{folder}' is not empty and holds no index.json: give an empty or new folder")
        meta = {"format": FORMAT, "identity": identity, "dim": int(dim), "kind": kind}
        os.makedirs(os.path.join(folder, "shards"), exist_ok=True)
        write_json_atomic(meta_path, meta)
        return cls(folder, meta)

    @classmethod
    def open(cls, folder: str) -> "GalleryStore":
        meta_path = os.path.join(folder, "index.json")
        if not os.path.isfile(meta_path):
            raise UserError(f"'{folder}' is not a gallery index (no index.json); build one with `easyretrieval index`")
        with open(meta_path, encoding="utf-8") as handle:
            meta = json.load(handle)
        if meta.get("format") != FORMAT:
            raise UserError(f"'{folder}' holds an index of format {meta.get('format')!r}; this version reads {FORMAT}")
        return cls(folder, meta)

    def check_identity(self, identity: dict):
        """UserError naming the first field where `identity` differs from the index's model."""
        mine = self.meta["identity"]
        for key in sorted(set(mine) | set(identity)):
            if mine.get(key) != identity.get(key):
                raise UserError(f"index '{self.folder}' was built with another model ({key}: {mine.get(key)!r} in "
                                f"the index, {identity.get(key)!r} now); use the model it was built with or "
                                f"build a new index")

    # -- writing ----------------------------------------------------------------------------------------
    def _shard_names(self, rank: Optional[int] = None) -> List[str]:
        names = []
        for path in glob.glob(os.path.join(self.folder, "shards", "r*-*.json")):
            match = _SHARD.match(os.path.basename(path))
            if match and (rank is None or int(match.group(1)) == rank):
                names.append(os.path.basename(path)[:-len(".json")])
        return sorted(names)

    def _next_name(self, rank: int) -> str:
        # Every file of the rank counts, committed or not: a half-written shard's name is never reused.
        used = [int(m.group(1)) for p in glob.glob(os.path.join(self.folder, "shards", f"r{rank:03d}-*"))
                for m in [re.match(r"^r\d{3}-(\d{5})", os.path.basename(p))] if m]
        return f"r{rank:03d}-{(max(used) + 1) if used else 0:05d}"

    def commit_shard(self, rank: int, features: np.ndarray, entries: Sequence[dict],
                     extras: Optional[Dict[str, np.ndarray]] = None) -> str:
        """Commit one shard: features [n, dim] float32 (L2-normalised), entries [{"id", "path"}] (n), and
        optional per-item arrays (first axis n). Returns the shard's name."""
        features = np.ascontiguousarray(features, dtype=np.float32)
        if features.ndim != 2 or features.shape != (len(entries), self.meta["dim"]):
            raise ValueError(f"features {features.shape} for {len(entries)} entries of dim {self.meta['dim']}")
        name = self._next_name(rank)
        base = os.path.join(self.folder, "shards", name)
        _save_npy(base + ".npy", features)
        for key, array in (extras or {}).items():
            if not re.fullmatch(r"[a-z0-9_]+", key) or len(array) != len(entries):
                raise ValueError(f"extra '{key}' needs a lowercase name and {len(entries)} rows")
            _save_npy(f"{base}.{key}.npy", np.ascontiguousarray(array))
        write_json_atomic(base + ".json", {"entries": list(entries), "extras": sorted(extras or {})})
        return name

    def record_failures(self, rank: int, failures: Sequence[dict]):
        """Append items that could not be embedded ({"id", "path", "error"}) to this rank's report."""
        if not failures:
            return
        path = os.path.join(self.folder, "failed", f"r{rank:03d}.jsonl")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "a", encoding="utf-8") as handle:
            for item in failures:
                handle.write(json.dumps(item, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    # -- reading ----------------------------------------------------------------------------------------
    def committed_ids(self) -> set:
        ids = set()
        for name in self._shard_names():
            with open(os.path.join(self.folder, "shards", name + ".json"), encoding="utf-8") as handle:
                ids.update(e["id"] for e in json.load(handle)["entries"])
        return ids

    def failures(self) -> List[dict]:
        """Items that could not be embedded (latest report per id, minus those a later shard holds)."""
        latest = {}
        for path in sorted(glob.glob(os.path.join(self.folder, "failed", "r*.jsonl"))):
            with open(path, encoding="utf-8") as handle:
                for line in handle:
                    if line.strip():
                        item = json.loads(line)
                        latest[item["id"]] = item
        done = self.committed_ids()
        return [item for key, item in sorted(latest.items()) if key not in done]

    def load(self, with_extras: Sequence[str] = ()):
        """(features [N, dim] float32, entries, {extra: array}) of all committed shards, rows sorted by id.

        An id committed twice (two ranks, or a build resumed from an older shard layout) is kept once."""
        feats, entries, extras = [], [], {key: [] for key in with_extras}
        for name in self._shard_names():
            base = os.path.join(self.folder, "shards", name)
            with open(base + ".json", encoding="utf-8") as handle:
                shard = json.load(handle)
            feats.append(np.load(base + ".npy", allow_pickle=False))
            entries.extend(shard["entries"])
            for key in with_extras:
                if key not in shard["extras"]:
                    raise UserError(f"index '{self.folder}' holds no '{key}' arrays (shard {name}); rebuild it "
                                    f"with them or do without")
                extras[key].append(np.load(f"{base}.{key}.npy", mmap_mode="r"))
        if not entries:
            return np.zeros((0, self.meta["dim"]), np.float32), [], {k: None for k in with_extras}
        features = np.concatenate(feats)
        order, seen = [], set()
        for row in sorted(range(len(entries)), key=lambda r: entries[r]["id"]):
            if entries[row]["id"] not in seen:
                seen.add(entries[row]["id"])
                order.append(row)
        order = np.asarray(order, dtype=np.int64)
        out_extras = {}
        for key, parts in extras.items():
            offsets = np.cumsum([0] + [len(p) for p in parts])
            shard_of = np.searchsorted(offsets, order, side="right") - 1
            out_extras[key] = _RowView(parts, offsets, order, shard_of)
        return features[order], [entries[r] for r in order], out_extras


class _RowView:
    """Rows of per-shard memory-mapped arrays in the index's row order, read only when indexed."""

    def __init__(self, parts, offsets, order, shard_of):
        self.parts, self.offsets, self.order, self.shard_of = parts, offsets, order, shard_of

    def __len__(self):
        return len(self.order)

    def __getitem__(self, rows):
        rows = np.atleast_1d(np.asarray(rows, dtype=np.int64))
        out = [np.asarray(self.parts[self.shard_of[r]][self.order[r] - self.offsets[self.shard_of[r]]]) for r in rows]
        return np.stack(out)


def _build_faiss(features: np.ndarray, kind: str, seed: int = 0):
    dim = features.shape[1]
    if kind == "flat" or len(features) < 64:  # an approximate index of a tiny gallery is pointless
        index = faiss.IndexFlatIP(dim)
    elif kind == "ivf":
        nlist = max(1, min(int(4 * np.sqrt(len(features))), len(features) // 39))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        index.train(features)
        index.nprobe = max(1, nlist // 8)
    else:
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = 64
    index.add(features)
    return index


def _recall_vs_exact(index, features: np.ndarray, k: int = 10, sample: int = 256, seed: int = 0) -> float:
    """Mean overlap of the top-k of `index` with exact search, over a sample of the gallery's own vectors."""
    rng = np.random.default_rng(seed)
    queries = features[rng.choice(len(features), size=min(sample, len(features)), replace=False)]
    exact = faiss.IndexFlatIP(features.shape[1])
    exact.add(features)
    k = min(k, len(features))
    _, truth = exact.search(queries, k)
    _, found = index.search(queries, k)
    return float(np.mean([len(set(t) & set(f)) / k for t, f in zip(truth, found)]))


class GalleryIndex:
    """A built index, ready to search: features, entries (rows sorted by id) and the FAISS index."""

    def __init__(self, store: GalleryStore, features, entries, faiss_index, extras):
        self.store, self.features, self.entries, self.faiss_index, self.extras = \
            store, features, entries, faiss_index, extras

    @property
    def meta(self):
        return self.store.meta

    def __len__(self):
        return len(self.entries)

    @classmethod
    def finalize(cls, store: GalleryStore) -> "GalleryIndex":
        """Build faiss.index from every committed shard (main rank, after all ranks committed)."""
        features, entries, _ = store.load()
        if not entries:
            raise UserError(f"index '{store.folder}' holds no images (see its failed/ report)")
        index = _build_faiss(features, store.meta["kind"])
        shards = store._shard_names()
        write_atomic(os.path.join(store.folder, "faiss.index"), faiss.serialize_index(index).tobytes())
        info = {"shards": shards, "count": len(entries)}
        if store.meta["kind"] != "flat" and len(features) >= 64:
            info["recall_at_10_vs_exact"] = _recall_vs_exact(index, features)
        write_json_atomic(os.path.join(store.folder, "faiss.json"), info)
        return cls(store, features, entries, index, {})

    @classmethod
    def open(cls, folder: str, with_extras: Sequence[str] = ()) -> "GalleryIndex":
        """The index in `folder`; faiss.index is rebuilt when it does not hold exactly the committed shards."""
        store = GalleryStore.open(folder)
        features, entries, extras = store.load(with_extras)
        if not entries:
            raise UserError(f"index '{folder}' holds no images yet; build it with `easyretrieval index`")
        info_path, index_path = os.path.join(folder, "faiss.json"), os.path.join(folder, "faiss.index")
        index = None
        if os.path.isfile(info_path) and os.path.isfile(index_path):
            with open(info_path, encoding="utf-8") as handle:
                info = json.load(handle)
            if info.get("shards") == store._shard_names() and info.get("count") == len(entries):
                index = faiss.deserialize_index(np.fromfile(index_path, dtype=np.uint8))
        if index is None:
            built = cls.finalize(store)
            return cls(store, built.features, built.entries, built.faiss_index, extras)
        return cls(store, features, entries, index, extras)

    def search(self, queries: np.ndarray, top_k: int) -> SearchHits:
        """The top_k rows by inner product for each query [Q, dim] (float32, L2-normalised)."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.meta["dim"]:
            raise ValueError(f"queries {queries.shape}, index dim {self.meta['dim']}")
        score, row = self.faiss_index.search(queries, min(int(top_k), len(self.entries)))
        return SearchHits(score.astype(np.float32), row.astype(np.int64))
