"""The blip_retrieval app: BLIP image-text retrieval (ITC + ITM), official-exact, on DeepSpeed."""
from appzoo.blip_retrieval.app import BlipRetrievalApp
from appzoo.blip_retrieval.model import commands as _model_commands  # noqa: F401 - registers `convert`

__all__ = ["BlipRetrievalApp"]
