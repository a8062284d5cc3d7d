"""The blip_retrieval app: wires parameters to the model, data, evaluator and the core engine."""
from easyretrieval.app import App
from easyretrieval.registry import register_app

from appzoo.blip_retrieval.params import SCHEMA


@register_app("blip_retrieval")
class BlipRetrievalApp(App):
    schema = SCHEMA
