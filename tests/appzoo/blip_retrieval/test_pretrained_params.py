"""pretrained= fills in the sizes it describes (save_pretrained folder, HF folder, modelzoo entry), unless the
user set them; contradictions are errors unless resize_pretrained=True (then the interpolation is logged)."""
import os
import sys

import pytest

from appzoo.blip_retrieval.app import BlipRetrievalApp
from appzoo.blip_retrieval.params import SCHEMA
from easyretrieval.errors import UserError

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "evaluation"))
from eval_fixtures import make_model, make_tokenizer  # noqa: E402


def complete(raw):
    return BlipRetrievalApp.complete_config(SCHEMA.resolve(raw))


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("described")
    model = make_model(make_tokenizer(str(root)), seed=3, image_size=48)
    model.config.max_words = 20
    model.save_pretrained(str(root / "best"))
    from appzoo.blip_retrieval.commands import convert

    convert("hf", str(root / "best"), str(root / "hf"))
    return root


def test_a_folder_sets_its_sizes_and_tokenizer(folders):
    config = complete({"pretrained": str(folders / "best")})
    assert (config.vit, config.image_size, config.queue_size, config.max_words) == ("tiny", 48, 8, 20)
    assert config.tokenizer == str(folders / "best" / "vocab.txt")
    assert config.batch_size_train == 32 and config.init_lr == 1e-4  # the vit=tiny defaults follow
    assert config.user_set == {"pretrained"}
    hf = complete({"pretrained": str(folders / "hf"), "queue_size": "16"})
    assert (hf.vit, hf.image_size, hf.queue_size) == ("tiny", 48, 16)
    assert hf.tokenizer == str(folders / "hf" / "vocab.txt")


def test_a_folder_sets_its_patch_size(tmp_path):
    from appzoo.blip_retrieval.model.blip_retrieval import BlipRetrieval
    from appzoo.blip_retrieval.model.config import create_config

    tokenizer = make_tokenizer(str(tmp_path))
    model = BlipRetrieval(create_config("tiny", 32, vocab_size=len(tokenizer), queue_size=8,
                                        vision={"patch_size": 8}), tokenizer)
    model.save_pretrained(str(tmp_path / "best"))
    config = complete({"pretrained": str(tmp_path / "best")})
    assert (config.image_size, config.patch_size) == (32, 8)


def test_contradictions_are_errors_unless_asked_for(folders, caplog):
    best = str(folders / "best")
    with pytest.raises(UserError, match="vit=base contradicts pretrained=.* a vit=tiny model"):
        complete({"pretrained": best, "vit": "base"})
    with pytest.raises(UserError, match="image_size=64 contradicts .* trained at 48 px.*resize_pretrained=True"):
        complete({"pretrained": best, "image_size": "64"})
    import logging

    with caplog.at_level(logging.INFO, logger="easyretrieval"):
        config = complete({"pretrained": best, "image_size": "64", "resize_pretrained": "true"})
    assert config.image_size == 64 and config.vit == "tiny"
    assert "interpolated 9 -> 16 patches" in caplog.text
    same = complete({"pretrained": best, "vit": "tiny", "image_size": "48", "tokenizer": "build"})
    assert same.tokenizer == "build"  # what the user set stays


def test_modelzoo_entries_describe_what_they_are():
    tuned = complete({"pretrained": "blip_large_retrieval_flickr"})  # no download: the catalog says it
    assert (tuned.vit, tuned.image_size, tuned.batch_size_train, tuned.vit_ckpt_layer) == ("large", 384, 16, 10)
    with pytest.raises(UserError, match="vit=base contradicts"):
        complete({"pretrained": "blip_large_retrieval_flickr", "vit": "base"})
    # pre-trained only (224 px): the official recipe fine-tunes it at 384, so image_size stays the user's
    pre = complete({"pretrained": "blip_large", "image_size": "384"})
    assert (pre.vit, pre.image_size) == ("large", 384)
    assert complete({"pretrained": "https://example.invalid/model.pth"}).vit == "base"  # a URL says nothing
