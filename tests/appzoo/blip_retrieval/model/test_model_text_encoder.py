"""Our MED text encoder (SDPA, cached cross K/V) equals transformers' BlipTextModel (12 heads, dropout 0.1)."""
import pytest
import torch

from appzoo.blip_retrieval.model.config import TextConfig
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
    torch.testing.assert_close(ours(ids, mask, image_embeds=image), expected, atol=1e-6, rtol=0)


@torch.no_grad()
def test_cached_cross_kv_equals_recomputed(pair):
    _, ours = pair
    ids, mask, image = _inputs()
    cache = ours.cross_kv(image[:2])
    assert cache.num_images == 2 and len(cache.keys) == 2 and cache.keys[0].shape == (2, 12, 11, 8)
    index = torch.tensor([1, 0, 1])
    torch.testing.assert_close(ours(ids, mask, cross_kv=cache, image_index=index),
                               ours(ids, mask, image_embeds=image[index]), atol=1e-6, rtol=0)


def test_text_grad_ckpt_same_grads(pair):
    _, ours = pair
    ids, mask, image = _inputs()
    ours.train()
    grads = []
    for ckpt in (False, True):
        ours.grad_ckpt = ckpt
        ours.zero_grad()
        torch.manual_seed(3)  # same dropout masks; checkpointing replays the RNG state
        out = ours(ids, mask, image_embeds=image)
        out.square().sum().backward()
        grads.append({n: p.grad.clone() for n, p in ours.named_parameters() if p.grad is not None})
    ours.grad_ckpt = False
    ours.eval()
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], atol=1e-6, rtol=1e-5)


@torch.no_grad()
@pytest.mark.parametrize("cached", [False, True])
def test_first_token_only_and_prefix_equal_the_full_pass(pair, cached):
    """The ITM fast path (last layer on token 0 only, cached image-free prefix) gives the same token 0."""
    _, ours = pair
    ids, mask, image = _inputs()
    index = torch.tensor([1, 0, 1])
    kwargs = {"cross_kv": ours.cross_kv(image[:2]), "image_index": index} if cached else {"image_embeds": image[index]}
    full = ours(ids, mask, **kwargs)
    first = ours(ids, mask, first_token_only=True, **kwargs)
    assert first.shape == (3, 1, 96)
    torch.testing.assert_close(first[:, 0], full[:, 0], atol=1e-6, rtol=0)
    prefixed = ours(None, mask, first_token_only=True, prefix=ours.text_prefix(ids, mask), **kwargs)
    torch.testing.assert_close(prefixed[:, 0], full[:, 0], atol=1e-6, rtol=0)
    # Dropping trailing padding (row 0 has none; rows 1 and 2 are padded past 5 tokens) changes nothing.
    short = ours(ids[1:, :5], mask[1:, :5], first_token_only=True,
                 **({"cross_kv": kwargs["cross_kv"], "image_index": index[1:]} if cached else {"image_embeds": image[index[1:]]}))
    torch.testing.assert_close(short[:, 0], full[1:, 0], atol=1e-6, rtol=0)
