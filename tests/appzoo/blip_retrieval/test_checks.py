"""Parameter checks that need no data, and the training-set size check, with the numbers in the message."""
import pytest

from appzoo.blip_retrieval import checks
from appzoo.blip_retrieval.params import SCHEMA
from easyretrieval.errors import UserError


def config(**params):
    return SCHEMA.resolve(dict({"vit": "tiny"}, **params))


@pytest.mark.parametrize("size,hint", [(100, "96 or 112"), (17, "16 or 32"), (383, "368 or 384")])
def test_image_size_not_a_multiple_of_the_patch(size, hint):
    with pytest.raises(UserError, match=f"parameter 'image_size': {size} is not a multiple .* use e.g. {hint}"):
        checks.check_image_size(config(image_size=size))
    checks.check_image_size(config(image_size=size - size % 16 or 16))


def test_image_size_follows_patch_size():
    checks.check_image_size(config(image_size=40, patch_size=8))
    with pytest.raises(UserError, match=r"'image_size': 44 is not a multiple of the ViT patch size 8 \(patch_size\); "
                                        r"use e.g. 40 or 48"):
        checks.check_image_size(config(image_size=44, patch_size=8))
    with pytest.raises(UserError, match=r"'image_size': 6 .* patch size 8 .* use e.g. 8$"):
        checks.check_image_size(config(image_size=6, patch_size=8))


def test_queue_must_hold_a_global_batch():
    with pytest.raises(UserError, match=r"'queue_size': 2 is smaller than the global batch of 4 "
                                        r"\(batch_size_train 4 x 1 rank\)"):
        checks.check_queue(config(queue_size=2, batch_size_train=4), world_size=1)
    with pytest.raises(UserError, match=r"global batch of 8 \(batch_size_train 4 x 2 ranks\)"):
        checks.check_queue(config(queue_size=6, batch_size_train=4), world_size=2)
    checks.check_queue(config(queue_size=8, batch_size_train=4), world_size=2)
    checks.check_queue(config(queue_size=12, batch_size_train=8), world_size=1)  # not a multiple: a ring


def test_batch_larger_than_the_training_set():
    with pytest.raises(UserError, match="batch_size_train=16 is larger than the 8 training samples: .* <= 8"):
        checks.check_train_batches(8, config(batch_size_train=16), world_size=1)
    with pytest.raises(UserError, match=r"the 8 training samples \(4 per rank on 2 ranks\)"):
        checks.check_train_batches(8, config(batch_size_train=6), world_size=2)
    with pytest.raises(UserError, match="fewer than gradient_accumulation_steps=3"):
        checks.check_train_batches(8, config(batch_size_train=4, gradient_accumulation_steps=3), world_size=1)
    checks.check_train_batches(8, config(batch_size_train=8), world_size=1)


def test_build_vocab_outside_training_needs_the_runs_vocab(tmp_path):
    with pytest.raises(UserError, match="tokenizer=build: no vocab.txt"):
        checks.check_vocab_available(config(tokenizer="build"), [str(tmp_path / "ev"), str(tmp_path)])
    (tmp_path / "vocab.txt").write_text("[PAD]\n")
    checks.check_vocab_available(config(tokenizer="build"), [str(tmp_path / "ev"), str(tmp_path)])
