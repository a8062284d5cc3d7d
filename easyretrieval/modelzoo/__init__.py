"""Model zoo: named checkpoints and URLs resolved to verified files in a local cache.

    from easyretrieval.modelzoo import resolve
    resolve("bert-base-uncased")  -> the HF hub snapshot folder holding its vocab.txt
    resolve("https://host/model.pth")  -> ~/.cache/easyretrieval/.../model.pth

Apps register their named weights in the catalog (`catalog.register`) when they are imported.
"""
from easyretrieval.lazy_exports import lazy_exports

# Imported on first use (PEP 562): an app registering its catalog entries at import (easyretrieval.modelzoo.
# catalog) must not pull in the download machinery (oss2) when the CLI only lists parameters.
__getattr__, __all__ = lazy_exports(__name__, {
    "CATALOG": "easyretrieval.modelzoo.catalog",
    "ModelEntry": "easyretrieval.modelzoo.catalog",
    "default_cache_dir": "easyretrieval.modelzoo._cache",
    "find_cached": "easyretrieval.modelzoo.resolver",
    "is_offline": "easyretrieval.modelzoo.resolver",
    "resolve": "easyretrieval.modelzoo.resolver",
})
