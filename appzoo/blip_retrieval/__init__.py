"""The blip_retrieval app: BLIP image-text retrieval (ITC + ITM), official-exact, on DeepSpeed.

    from appzoo.blip_retrieval import BlipRetrieval
    model = BlipRetrieval.from_pretrained("output/demo/best")

`BlipRetrieval` is imported on first use (PEP 562), so loading the app for `--help-params` or
`--list-apps` does not import torch.
"""
from appzoo.blip_retrieval.app import BlipRetrievalApp
from appzoo.blip_retrieval import commands as _commands  # noqa: F401 - registers `convert`

__all__ = ["BlipRetrieval", "BlipRetrievalApp"]


def __getattr__(name):
    if name == "BlipRetrieval":
        from appzoo.blip_retrieval.model.blip_retrieval import BlipRetrieval

        return BlipRetrieval
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
