"""A persistent gallery index of a BLIP model: build (`Index.build`, `easyretrieval index`) and search
(`Index.open(folder).search`, `easyretrieval search`), with the evaluator's ITM re-rank.

`Index` is imported on first use (PEP 562): importing this package (the app registers its commands from
it) imports no torch.
"""

from easyretrieval.lazy_exports import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {name: "appzoo.blip_retrieval.index.api"
                                               for name in ("Index", "QueryHits", "SearchHit")})
