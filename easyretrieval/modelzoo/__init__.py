"""Model zoo: named checkpoints and URLs resolved to verified files in a local cache.

    from easyretrieval.modelzoo import resolve
    resolve("bert-base-uncased")  -> the HF hub snapshot folder holding its vocab.txt
    resolve("https://host/model.pth")  -> ~/.cache/easyretrieval/.../model.pth

Apps register their named weights in the catalog (`catalog.register`) when they are imported.
"""
from easyretrieval.modelzoo._cache import default_cache_dir
from easyretrieval.modelzoo.catalog import CATALOG, ModelEntry
from easyretrieval.modelzoo.resolver import find_cached, is_offline, resolve

__all__ = ["CATALOG", "ModelEntry", "default_cache_dir", "find_cached", "is_offline", "resolve"]
