"""Model zoo: named checkpoints and URLs resolved to verified files in a local cache.

    from easyretrieval.modelzoo import resolve
    resolve("blip_base_retrieval_flickr")  -> ~/.cache/easyretrieval/.../model_base_retrieval_flickr.pth
"""
from easyretrieval.modelzoo._cache import default_cache_dir
from easyretrieval.modelzoo.catalog import CATALOG, ModelEntry
from easyretrieval.modelzoo.resolver import find_cached, is_offline, resolve

__all__ = ["CATALOG", "ModelEntry", "default_cache_dir", "find_cached", "is_offline", "resolve"]
