"""Fixtures of the model tests: a WordPiece vocab built from captions and its tokenizer."""
import pytest

from appzoo.blip_retrieval.model.tokenizer import build_wordpiece_vocab, create_tokenizer

from blip_model_helpers import CAPTIONS


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory):
    path = build_wordpiece_vocab(CAPTIONS, tmp_path_factory.mktemp("vocab") / "vocab.txt", vocab_size=200)
    return create_tokenizer(path)
