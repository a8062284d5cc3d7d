"""The blip_retrieval app: BLIP image-text retrieval (ITC + ITM), official-exact, on DeepSpeed."""
from appzoo.blip_retrieval.app import BlipRetrievalApp

__all__ = ["BlipRetrievalApp"]
