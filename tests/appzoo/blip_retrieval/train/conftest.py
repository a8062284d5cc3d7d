"""Fixtures of the train tests: one synthetic dataset and one WordPiece vocab for the whole session."""
import os

import pytest


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory):
    """(synthetic_dir, vocab path): the dataset generated once; a vocab built once (runs compare weights,
    so they must share token ids)."""
    from appzoo.blip_retrieval.data import make_synthetic_dataset
    from appzoo.blip_retrieval.data.builders import synthetic_dir
    from appzoo.blip_retrieval.model import build_wordpiece_vocab
    from appzoo.blip_retrieval.params import SCHEMA

    base = str(tmp_path_factory.mktemp("synthetic"))
    config = SCHEMA.resolve({"dataset": "synthetic", "synthetic_dir": base})
    root = synthetic_dir(config)
    make_synthetic_dataset(root, seed=config.synthetic_seed)
    import json

    with open(os.path.join(root, "annotations", "synthetic_train.json")) as f:
        captions = [ann["caption"] for ann in json.load(f)]
    captions = [c for group in captions for c in (group if isinstance(group, list) else [group])]
    vocab = build_wordpiece_vocab(captions, os.path.join(base, "vocab.txt"))
    return base, vocab
