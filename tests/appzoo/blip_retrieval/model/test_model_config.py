import pytest

from easyretrieval.errors import UserError
from easyretrieval.parameters import Config

from appzoo.blip_retrieval.model.config import BlipRetrievalConfig, config_from_params, create_config


@pytest.mark.parametrize("vit,width,depth,heads,drop_path", [
    ("base", 768, 12, 12, 0.0), ("large", 1024, 24, 16, 0.1)])
def test_official_sizes(vit, width, depth, heads, drop_path):
    config = create_config(vit, 384)
    assert (config.vision.width, config.vision.depth, config.vision.heads) == (width, depth, heads)
    assert config.vision.drop_path_rate == drop_path
    assert config.text.encoder_width == width  # cross-attention width follows the vision width
    assert (config.text.vocab_size, config.text.hidden_size, config.text.num_heads) == (30524, 768, 12)
    assert (config.embed_dim, config.momentum, config.max_length, config.temp_init) == (256, 0.995, 35, 0.07)


def test_image_size_must_be_multiple_of_16():
    with pytest.raises(UserError, match="multiple"):
        create_config("base", 380)


def test_round_trip_dict():
    config = create_config("tiny", 64, queue_size=33)
    assert BlipRetrievalConfig.from_dict(config.to_dict()) == config
    with pytest.raises(UserError, match="unknown model config keys"):
        BlipRetrievalConfig.from_dict({**config.to_dict(), "nope": 1})


def test_from_params():
    params = Config(dict(vit="base", image_size=224, vit_grad_ckpt=True, vit_ckpt_layer=4, text_grad_ckpt=True,
                         queue_size=64, momentum=0.9, negative_all_rank=True))
    config = config_from_params(params, vocab_size=30524)
    assert config.vision.image_size == 224 and config.vision.num_patches == 196
    assert config.vision.grad_ckpt and config.vision.ckpt_layer == 4 and config.text.grad_ckpt
    assert (config.queue_size, config.momentum, config.negative_all_rank) == (64, 0.9, True)
    with pytest.raises(UserError, match="vit_ckpt_layer"):
        config_from_params(Config({**params, "vit_ckpt_layer": 13}), vocab_size=30524)


def test_patch_size_sets_the_token_grid_and_round_trips():
    import torch

    from appzoo.blip_retrieval.model.vision_encoder import VisionEncoder

    params = Config(dict(vit="tiny", image_size=32, patch_size=8, vit_grad_ckpt=False, vit_ckpt_layer=0,
                         queue_size=8, momentum=0.9, negative_all_rank=False))
    config = config_from_params(params, vocab_size=100)
    assert (config.vision.patch_size, config.vision.num_patches) == (8, 16)
    assert BlipRetrievalConfig.from_dict(config.to_dict()).vision.patch_size == 8
    encoder = VisionEncoder(config.vision)
    assert encoder.patch_embed.proj.weight.shape == (config.vision.width, 3, 8, 8)
    assert encoder(torch.randn(2, 3, 32, 32)).shape == (2, 1 + 16, config.vision.width)
    with pytest.raises(UserError, match="not a multiple of the patch size 8"):
        config_from_params(Config({**params, "image_size": 36}), vocab_size=100)
    # without the parameter (configs written before it existed): the official 16
    assert config_from_params(Config({k: v for k, v in params.items() if k != "patch_size"}),
                              vocab_size=100).vision.patch_size == 16


def test_text_init_std_sets_the_text_encoders_init():
    import torch

    from appzoo.blip_retrieval.model.blip_retrieval import BlipRetrieval

    base = dict(vit="tiny", image_size=32, vit_grad_ckpt=False, vit_ckpt_layer=0, queue_size=8, momentum=0.9,
                negative_all_rank=False)
    stds = {}
    for std in (0.02, 0.2):
        config = config_from_params(Config({**base, "text_init_std": std}), vocab_size=500)
        assert config.text.init_std == std
        torch.manual_seed(0)
        model = BlipRetrieval(config)
        stds[std] = model.text_encoder.embeddings.word_embeddings.weight.std().item()
        # the momentum copy starts equal to it (official copy_params)
        assert torch.equal(model.text_encoder_m.embeddings.word_embeddings.weight,
                           model.text_encoder.embeddings.word_embeddings.weight)
    assert abs(stds[0.02] - 0.02) < 0.002 and abs(stds[0.2] - 0.2) < 0.02
    assert config_from_params(Config(base), vocab_size=500).text.init_std == 0.02  # official default
