"""The from-scratch options of the ViT: vit_stem=conv (convolutional stem) and vit_init_std; defaults stay official."""
import pytest
import torch
from torch import nn

from easyretrieval.errors import UserError

from appzoo.blip_retrieval import checks
from appzoo.blip_retrieval.model.blip_retrieval import BlipRetrieval
from appzoo.blip_retrieval.model.checkpoint import load_pretrained, save_official
from appzoo.blip_retrieval.model.config import BlipRetrievalConfig, create_config
from appzoo.blip_retrieval.model.vision_encoder import VisionEncoder
from appzoo.blip_retrieval.params import SCHEMA

from blip_model_helpers import tiny_model


def _vision(**fields):
    return create_config("tiny", 32, vision=dict({"patch_size": 8}, **fields)).vision


def test_conv_stem_gives_the_patch_grid_and_learns_through_every_layer():
    torch.manual_seed(0)
    encoder = VisionEncoder(_vision(stem="conv"))
    convs = [m for m in encoder.patch_embed.proj if isinstance(m, nn.Conv2d)]
    # log2(8) = 3 stride-2 3x3 convolutions (channels doubling up to width/2, at least 16), then a 1x1 to width
    assert [(c.kernel_size, c.stride, c.out_channels) for c in convs] == [
        ((3, 3), (2, 2), 16), ((3, 3), (2, 2), 16), ((3, 3), (2, 2), 32), ((1, 1), (1, 1), 64)]
    out = encoder(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 1 + 16, 64)
    out.sum().backward()
    assert all(c.weight.grad is not None and c.weight.grad.abs().sum() > 0 for c in convs)
    # no running statistics (GroupNorm, not BatchNorm): train and eval mode compute the same function, so the
    # momentum encoder's EMA copy and evaluation see what training saw
    assert not [b for b in encoder.patch_embed.proj.buffers()]
    image = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(encoder.train()(image), encoder.eval()(image))


def test_conv_stem_is_refused_for_a_patch_size_it_cannot_make():
    with pytest.raises(UserError, match="vit_stem=conv needs a patch_size that is a power of two"):
        create_config("tiny", 36, vision={"patch_size": 12, "stem": "conv"})
    with pytest.raises(UserError, match="vit_stem 'nope' is not one of patch, conv"):
        _vision(stem="nope")
    # the same rule in the checks that run before any data or model
    with pytest.raises(UserError, match="parameter 'vit_stem': conv needs a patch_size that is a power of two.*not 12"):
        checks.check_vit_stem(SCHEMA.resolve({"vit": "tiny", "vit_stem": "conv", "patch_size": "12",
                                              "image_size": "48"}))
    checks.check_vit_stem(SCHEMA.resolve({"vit": "tiny", "vit_stem": "conv", "patch_size": "8", "image_size": "64"}))
    checks.check_vit_stem(SCHEMA.resolve({"vit": "tiny", "patch_size": "12", "image_size": "48"}))  # patch: any


def test_vit_init_std_redraws_the_block_weights_and_the_default_is_timms():
    torch.manual_seed(0)
    default = VisionEncoder(_vision())
    torch.manual_seed(0)
    official = VisionEncoder(_vision(init_std=0.02))
    for (name, a), b in zip(default.state_dict().items(), official.state_dict().values()):
        assert torch.equal(a, b), name  # 0.02 is the default: nothing re-drawn
    torch.manual_seed(0)
    wide = VisionEncoder(_vision(init_std=0.125))
    qkv = wide.blocks[0].attn.qkv.weight
    assert abs(qkv.std().item() - 0.125) < 0.01 and abs(default.blocks[0].attn.qkv.weight.std().item() - 0.02) < 0.002
    assert torch.equal(wide.pos_embed, default.pos_embed)  # only the blocks' Linear weights


def test_model_config_round_trips_the_options():
    config = create_config("tiny", 32, vision={"patch_size": 8, "stem": "conv", "init_std": 0.125})
    again = BlipRetrievalConfig.from_dict(config.to_dict())
    assert (again.vision.stem, again.vision.init_std) == ("conv", 0.125)


def test_loading_across_stems_names_the_parameter_to_set(tokenizer, tmp_path):
    conv = tiny_model(tokenizer, seed=1, vision={"patch_size": 8, "stem": "conv"})
    patch = tiny_model(tokenizer, seed=1, vision={"patch_size": 8})
    save_official(conv, str(tmp_path / "conv.pth"))
    save_official(patch, str(tmp_path / "patch.pth"))
    with pytest.raises(UserError, match="conv.pth has .* keys this model does not have.*vit_stem=conv: set vit_stem=conv"):
        load_pretrained(patch, str(tmp_path / "conv.pth"))
    with pytest.raises(UserError, match="patch.pth has 4 keys .*vit_stem=patch: set vit_stem=patch"):
        load_pretrained(conv, str(tmp_path / "patch.pth"))
    other = tiny_model(tokenizer, seed=2, vision={"patch_size": 8, "stem": "conv"})
    report = load_pretrained(other, str(tmp_path / "conv.pth"))
    assert report.missing == [] and report.unexpected == []
    for key, value in conv.state_dict().items():
        assert torch.equal(other.state_dict()[key], value), key


def test_a_conv_stem_model_round_trips_save_pretrained_and_refuses_hf_export(tokenizer, tmp_path):
    from appzoo.blip_retrieval.model.hf_convert import to_hf

    model = tiny_model(tokenizer, seed=3, vision={"patch_size": 8, "stem": "conv"}).eval()
    model.save_pretrained(str(tmp_path / "best"))
    again = BlipRetrieval.from_pretrained(str(tmp_path / "best"))
    assert again.config.vision.stem == "conv"
    image = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(again.embed_images(image), model.embed_images(image))
    with pytest.raises(UserError, match="vit_stem=conv model has no transformers BLIP counterpart"):
        to_hf(model.state_dict(), model.config)


def test_pretrained_folder_sets_its_stem_and_a_contradiction_is_an_error(tokenizer, tmp_path):
    from appzoo.blip_retrieval.app import BlipRetrievalApp

    tiny_model(tokenizer, seed=4, vision={"patch_size": 8, "stem": "conv"}).save_pretrained(str(tmp_path / "best"))
    config = BlipRetrievalApp.complete_config(SCHEMA.resolve({"pretrained": str(tmp_path / "best")}))
    assert (config.vit_stem, config.patch_size, config.image_size) == ("conv", 8, 32)
    with pytest.raises(UserError, match="vit_stem=patch contradicts pretrained=.*vit_stem=conv: drop vit_stem="):
        BlipRetrievalApp.complete_config(SCHEMA.resolve({"pretrained": str(tmp_path / "best"), "vit_stem": "patch"}))


def test_text_dropout_sets_both_dropouts_of_the_text_encoder_and_defaults_to_med():
    from appzoo.blip_retrieval.model.config import config_from_params

    params = SCHEMA.resolve({"vit": "tiny", "image_size": "32", "patch_size": "8", "vit_stem": "conv",
                             "vit_init_std": "0.125", "text_dropout": "0"})
    config = config_from_params(params, vocab_size=100)
    assert (config.text.hidden_dropout, config.text.attention_dropout) == (0.0, 0.0)
    assert (config.vision.stem, config.vision.init_std) == ("conv", 0.125)
    model = BlipRetrieval(config).train()
    assert all(m.p == 0.0 for m in model.text_encoder.modules() if isinstance(m, nn.Dropout))
    official = config_from_params(SCHEMA.resolve({"vit": "tiny", "image_size": "32"}), vocab_size=100)
    assert (official.text.hidden_dropout, official.text.attention_dropout) == (0.1, 0.1)  # MED's
    assert (official.vision.stem, official.vision.init_std) == ("patch", 0.02)
