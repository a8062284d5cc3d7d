"""The blip_retrieval model: config, tokenizer, encoders, the retrieval model, checkpoints, HF conversion.

The names below are imported on first use (PEP 562): `model.config` and `model.tokenizer` (plain data and
text) stay importable without torch, so parameter checks before any work are fast.
"""
from easyretrieval.lazy_exports import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "BlipRetrieval": "appzoo.blip_retrieval.model.blip_retrieval",
    "RetrievalLosses": "appzoo.blip_retrieval.model.blip_retrieval",
    "create_model": "appzoo.blip_retrieval.model.blip_retrieval",
    "BlipRetrievalConfig": "appzoo.blip_retrieval.model.config",
    "TextConfig": "appzoo.blip_retrieval.model.config",
    "VisionConfig": "appzoo.blip_retrieval.model.config",
    "config_from_params": "appzoo.blip_retrieval.model.config",
    "create_config": "appzoo.blip_retrieval.model.config",
    "build_wordpiece_vocab": "appzoo.blip_retrieval.model.tokenizer",
    "create_tokenizer": "appzoo.blip_retrieval.model.tokenizer",
    "pre_caption": "appzoo.blip_retrieval.model.tokenizer",
})
