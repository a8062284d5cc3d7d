"""The blip_retrieval app: BLIP image-text retrieval (ITC + ITM), official-exact, on DeepSpeed.

    from appzoo.blip_retrieval import BlipRetrieval, Index
    model = BlipRetrieval.from_pretrained("output/demo/best")
    index = Index.build(model, "photos/", "photos.index")  # later: Index.open("photos.index")
    index.search(model, ["a dog on a beach"], top_k=10, rerank=16)

`BlipRetrieval` and `Index` are imported on first use (PEP 562), so loading the app for `--help-params`
or `--list-apps` does not import torch.
"""
from appzoo.blip_retrieval import catalog as _catalog  # noqa: F401 - registers BLIP's weights in the modelzoo
from appzoo.blip_retrieval import commands as _commands  # noqa: F401 - registers `convert`
from appzoo.blip_retrieval.app import BlipRetrievalApp
from appzoo.blip_retrieval.index import commands as _index_commands  # noqa: F401 - registers `index`, `search`

__all__ = ["BlipRetrieval", "BlipRetrievalApp", "Index"]


def __getattr__(name):
    if name == "BlipRetrieval":
        from appzoo.blip_retrieval.model.blip_retrieval import BlipRetrieval

        return BlipRetrieval
    if name == "Index":
        from appzoo.blip_retrieval.index.api import Index

        return Index
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
