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

from easyretrieval.lazy_exports import lazy_exports

__getattr__, _lazy = lazy_exports(__name__, {"BlipRetrieval": "appzoo.blip_retrieval.model.blip_retrieval",
                                             "Index": "appzoo.blip_retrieval.index.api"})
__all__ = ["BlipRetrievalApp", *_lazy]
