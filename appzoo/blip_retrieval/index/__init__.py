"""A persistent gallery index of a BLIP model: build (`Index.build`, `easyretrieval index`) and search
(`Index.open(folder).search`, `easyretrieval search`), with the evaluator's ITM re-rank.

`Index` is imported on first use (PEP 562): importing this package (the app registers its commands from
it) imports no torch.
"""

__all__ = ["Index", "QueryHits", "SearchHit"]


def __getattr__(name):
    if name in __all__:
        from appzoo.blip_retrieval.index import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
