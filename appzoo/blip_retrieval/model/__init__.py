"""The blip_retrieval model: config, tokenizer, encoders, the retrieval model, checkpoints, HF conversion.

The names below are imported on first use (PEP 562): `model.config` and `model.tokenizer` (plain data and
text) stay importable without torch, so parameter checks before any work are fast.
"""
import importlib

_EXPORTS = {
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
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
