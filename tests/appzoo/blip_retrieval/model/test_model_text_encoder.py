"""Our MED text encoder (SDPA, cached cross K/V) equals transformers' BlipTextModel (12 heads, dropout 0.1)."""
import pytest
import torch

from appzoo.blip_retrieval.model.config import TextConfig
from appzoo.blip_retrieval.model.cross_groups import plan_cross_groups
from appzoo.blip_retrieval.model.text_encoder import TextEncoder


@pytest.fixture(scope="module")
def pair():
    from transformers import BlipTextConfig
    from transformers.models.blip.modeling_blip_text import BlipTextModel

    torch.manual_seed(0)
    ours_config = TextConfig(vocab_size=90, hidden_size=96, num_layers=2, num_heads=12, intermediate_size=192,
                             encoder_width=40)
    hf_config = BlipTextConfig(vocab_size=90, hidden_size=96, num_hidden_layers=2, num_attention_heads=12,
                               intermediate_size=192, encoder_hidden_size=40, hidden_dropout_prob=0.1,
                               attention_probs_dropout_prob=0.1, layer_norm_eps=1e-12, bos_token_id=None,
                               sep_token_id=None)
    hf = BlipTextModel(hf_config, add_pooling_layer=False).eval()
    ours = TextEncoder(ours_config).eval()
    state = hf.state_dict()
    state["embeddings.position_ids"] = torch.arange(512).unsqueeze(0)  # persistent in official checkpoints
    ours.load_state_dict(state, strict=True)
    return hf, ours


def _inputs():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 90, (3, 9), generator=g)
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[1, 5:] = 0
    mask[2, 2:] = 0
    return ids, mask, torch.randn(3, 11, 40, generator=g)


@torch.no_grad()
def test_text_only_mode_equals_blip_text_model(pair):
    hf, ours = pair
    ids, mask, _ = _inputs()
    expected = hf(input_ids=ids, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(ours(ids, mask), expected, atol=1e-6, rtol=0)


@torch.no_grad()
def test_cross_mode_equals_blip_text_model(pair):
    hf, ours = pair
    ids, mask, image = _inputs()
    expected = hf(input_ids=ids, attention_mask=mask, encoder_hidden_states=image,
                  encoder_attention_mask=torch.ones(image.shape[:2], dtype=torch.long)).last_hidden_state
    torch.testing.assert_close(ours.forward_cross(ids, mask, image), expected, atol=1e-6, rtol=0)


@torch.no_grad()
def test_cached_cross_kv_equals_recomputed(pair):
    _, ours = pair
    ids, mask, image = _inputs()
    cache = ours.cross_kv(image[:2])
    assert cache.num_images == 2 and len(cache.keys) == 2 and cache.keys[0].shape == (2, 12, 11, 8)
    index = torch.tensor([1, 0, 1])
    got = ours.first_token_cached(ours.text_prefix(ids, mask), mask, cache, plan_cross_groups(index, 2))
    torch.testing.assert_close(got, ours.forward_cross(ids, mask, image[index])[:, 0], atol=1e-6, rtol=0)


def test_text_grad_ckpt_same_grads(pair):
    _, ours = pair
    ids, mask, image = _inputs()
    ours.train()
    grads = []
    for ckpt in (False, True):
        ours.grad_ckpt = ckpt
        ours.zero_grad()
        torch.manual_seed(3)  # same dropout masks; checkpointing replays the RNG state
        out = ours.forward_cross(ids, mask, image)
        out.square().sum().backward()
        grads.append({n: p.grad.clone() for n, p in ours.named_parameters() if p.grad is not None})
    ours.grad_ckpt = False
    ours.eval()
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], atol=1e-6, rtol=1e-5)


@torch.no_grad()
def test_first_token_modes_equal_the_full_pass(pair):
    """The token-0 paths (last layer on token 0 only; cached image keys/values and image-free prefix) give
    the full pass's token 0, also with trailing padding dropped."""
    _, ours = pair
    ids, mask, image = _inputs()
    index = torch.tensor([1, 0, 1])
    full_text, full_cross = ours(ids, mask), ours.forward_cross(ids, mask, image[index])
    assert full_text.shape == full_cross.shape == (3, 9, 96)
    first = ours.first_token(ids, mask)
    assert first.shape == (3, 96)
    torch.testing.assert_close(first, full_text[:, 0], atol=1e-6, rtol=0)
    torch.testing.assert_close(ours.first_token_cross(ids, mask, image[index]), full_cross[:, 0], atol=1e-6, rtol=0)
    cache = ours.cross_kv(image[:2])
    cached = ours.first_token_cached(ours.text_prefix(ids, mask), mask, cache, plan_cross_groups(index, 2))
    torch.testing.assert_close(cached, full_cross[:, 0], atol=1e-6, rtol=0)
    # Dropping trailing padding (row 0 has none; rows 1 and 2 are padded past 5 tokens) changes nothing.
    short_ids, short_mask = ids[1:, :5], mask[1:, :5]
    torch.testing.assert_close(ours.first_token(short_ids, short_mask), full_text[1:, 0], atol=1e-6, rtol=0)
    torch.testing.assert_close(ours.first_token_cross(short_ids, short_mask, image[index[1:]]), full_cross[1:, 0],
                               atol=1e-6, rtol=0)
    short = ours.first_token_cached(ours.text_prefix(short_ids, short_mask), short_mask, cache,
                                    plan_cross_groups(index[1:], 2))
    torch.testing.assert_close(short, full_cross[1:, 0], atol=1e-6, rtol=0)


@torch.no_grad()
def test_one_layer_encoder_token_paths():
    """With one layer the prefix's layer is also the last: token 0 of the prefix goes on alone."""
    one = TextEncoder(TextConfig(vocab_size=90, hidden_size=96, num_layers=1, num_heads=12, intermediate_size=192,
                                 encoder_width=40)).eval()
    ids, mask, image = _inputs()
    index = torch.tensor([0, 1, 0])
    full = one.forward_cross(ids, mask, image[index])
    cached = one.first_token_cached(one.text_prefix(ids, mask), mask, one.cross_kv(image[:2]),
                                    plan_cross_groups(index, 2))
    torch.testing.assert_close(cached, full[:, 0], atol=1e-6, rtol=0)
    torch.testing.assert_close(one.first_token(ids, mask), one(ids, mask)[:, 0], atol=1e-6, rtol=0)
