"""The blip_retrieval model: config, tokenizer, encoders, the retrieval model, checkpoints, HF conversion."""
from appzoo.blip_retrieval.model.blip_retrieval import BlipRetrieval, RetrievalLosses, create_model
from appzoo.blip_retrieval.model.config import (
    BlipRetrievalConfig,
    TextConfig,
    VisionConfig,
    config_from_params,
    create_config,
)
from appzoo.blip_retrieval.model.tokenizer import build_wordpiece_vocab, create_tokenizer, pre_caption

__all__ = [
    "BlipRetrieval",
    "BlipRetrievalConfig",
    "RetrievalLosses",
    "TextConfig",
    "VisionConfig",
    "build_wordpiece_vocab",
    "config_from_params",
    "create_config",
    "create_model",
    "create_tokenizer",
    "pre_caption",
]
