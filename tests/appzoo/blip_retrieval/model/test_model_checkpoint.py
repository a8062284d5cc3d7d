import torch
import torch.nn.functional as F
import pytest

from easyretrieval.errors import UserError

from appzoo.blip_retrieval.model.checkpoint import load_pretrained, read_state_dict, save_official
from appzoo.blip_retrieval.model.vision_encoder import interpolate_pos_embed

from blip_model_helpers import tiny_model


def _official_interpolate(pos_embed, new_size):
    """Restatement of official BLIP models/vit.py interpolate_pos_embed."""
    extra, tokens = pos_embed[:, :1], pos_embed[:, 1:]
    old = int(tokens.shape[1] ** 0.5)
    tokens = tokens.reshape(-1, old, old, pos_embed.shape[-1]).permute(0, 3, 1, 2)
    tokens = F.interpolate(tokens, size=(new_size, new_size), mode="bicubic", align_corners=False)
    return torch.cat((extra, tokens.permute(0, 2, 3, 1).flatten(1, 2)), dim=1)


def test_interpolation_equals_official():
    pos = torch.randn(1, 1 + 24 * 24, 16)
    torch.testing.assert_close(interpolate_pos_embed(pos, 16 * 16), _official_interpolate(pos, 16), atol=0, rtol=0)
    assert interpolate_pos_embed(pos, 24 * 24) is pos


def test_save_load_round_trip(tokenizer, tmp_path):
    model = tiny_model(tokenizer, seed=1)
    model.ptr_queue[0] = 5
    path = save_official(model, str(tmp_path / "ckpt.pth"))
    loaded = torch.load(path, weights_only=True)
    assert list(loaded) == ["model"] and list(loaded["model"]) == list(model.state_dict())
    other = tiny_model(tokenizer, seed=2)
    report = load_pretrained(other, path)
    assert report.missing == [] and report.unexpected == [] and report.interpolated == []
    for key, value in model.state_dict().items():
        assert torch.equal(other.state_dict()[key], value), key


def test_other_image_size_is_interpolated(tokenizer, tmp_path):
    model = tiny_model(tokenizer)
    path = save_official(model, str(tmp_path / "ckpt.pth"))
    from appzoo.blip_retrieval.model.blip_retrieval import BlipRetrieval
    from appzoo.blip_retrieval.model.config import create_config
    bigger = BlipRetrieval(create_config("tiny", 64, vocab_size=len(tokenizer), queue_size=12), tokenizer)
    report = load_pretrained(bigger, path)
    assert len(report.interpolated) == 2  # visual_encoder and visual_encoder_m
    expected = _official_interpolate(model.visual_encoder.pos_embed.detach(), 4)
    torch.testing.assert_close(bigger.visual_encoder.pos_embed.detach(), expected, atol=0, rtol=0)
    torch.testing.assert_close(bigger.visual_encoder_m.pos_embed.detach(), expected, atol=0, rtol=0)


def test_pretraining_checkpoint_initialises_as_official(tokenizer, tmp_path):
    model = tiny_model(tokenizer, seed=1)
    state = dict(model.state_dict())
    del state["idx_queue"], state["ptr_queue"]
    state["queue_ptr"] = torch.zeros(1, dtype=torch.long)
    state["text_decoder.bert.embeddings.word_embeddings.weight"] = torch.zeros(3, 3)
    state["image_queue"] = torch.randn(64, 99)  # another queue length: dropped, keeps its init (official)
    for key in [k for k in state if k.startswith("text_encoder_m.")]:
        del state[key]  # momentum encoder absent: copied from the online encoder
    torch.save({"model": state}, tmp_path / "pre.pth")
    other = tiny_model(tokenizer, seed=2)
    report = load_pretrained(other, str(tmp_path / "pre.pth"))
    assert "idx_queue" in report.missing and "ptr_queue" in report.missing
    assert report.unexpected == ["queue_ptr", "text_decoder.bert.embeddings.word_embeddings.weight"]
    assert any(s.startswith("image_queue") for s in report.initialised)
    assert other.idx_queue.eq(-100).all() and other.ptr_queue.item() == 0
    for (name, p), (_, p_m) in zip(other.text_encoder.named_parameters(), other.text_encoder_m.named_parameters()):
        assert torch.equal(p, p_m), name
    assert torch.equal(other.text_encoder.embeddings.word_embeddings.weight,
                       model.text_encoder.embeddings.word_embeddings.weight)


def test_bad_files_are_user_errors(tokenizer, tmp_path):
    model = tiny_model(tokenizer)
    with pytest.raises(UserError, match="not found"):
        load_pretrained(model, str(tmp_path / "missing.pth"))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="junk.pth is not a model checkpoint"):
        read_state_dict(str(tmp_path / "junk.pth"))
    state = dict(model.state_dict())
    state["text_encoder.encoder.layer.0.intermediate.dense.weight"] = torch.zeros(7, 7)
    torch.save({"model": state}, tmp_path / "wrong.pth")
    with pytest.raises(UserError, match="wrong.pth does not fit"):
        load_pretrained(model, str(tmp_path / "wrong.pth"))
    del state["itm_head.weight"]
    state["text_encoder.encoder.layer.0.intermediate.dense.weight"] = model.state_dict()[
        "text_encoder.encoder.layer.0.intermediate.dense.weight"]
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(UserError, match="lacks 1 keys"):
        load_pretrained(model, str(tmp_path / "partial.pth"))
