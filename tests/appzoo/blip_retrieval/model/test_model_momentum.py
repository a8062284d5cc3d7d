"""The EMA of the momentum encoders: official math in fp32, float32 shadow under bf16, ZeRO-3 shards."""
import torch
from torch import nn

from appzoo.blip_retrieval.model.momentum import momentum_update

from blip_model_helpers import tiny_model


def test_fp32_update_is_the_official_formula(tokenizer):
    model = tiny_model(tokenizer)
    with torch.no_grad():
        for p in model.vision_proj.parameters():
            p.add_(torch.randn_like(p))
    expected = {n_m: p_m.detach() * 0.995 + p.detach() * (1.0 - 0.995) for _, p, n_m, p_m in model.momentum_pairs()}
    model.momentum_update()
    for name, value in model.state_dict().items():
        if name in expected:
            assert torch.equal(value, expected[name]), name
    assert model.momentum_state_dict() == {}


def test_bf16_ema_matches_float64_reference(tokenizer):
    model = tiny_model(tokenizer).bfloat16()
    pairs = model.momentum_pairs()
    reference = {n_m: p_m.detach().double().clone() for _, _, n_m, p_m in pairs}
    generator = torch.Generator().manual_seed(0)
    for _ in range(30):
        with torch.no_grad():
            for _, p, _, _ in pairs:  # the online weights move a little each step (as training would)
                p.add_(torch.randn(p.shape, generator=generator).to(p.dtype) * 0.01)
        for _, p, n_m, _ in pairs:
            reference[n_m] = reference[n_m] * 0.995 + p.detach().double() * 0.005
        model.momentum_update()
    shadow = model.momentum_state_dict()
    assert set(shadow) == set(reference)
    worst = max((shadow[n] - reference[n]).abs().max().item() for n in reference)
    assert worst < 1e-5
    # the naive bf16 EMA (what official code would compute in bf16) barely moves: the shadow is needed
    name = "vision_proj_m.weight"
    live = dict(model.named_parameters())[name]
    assert torch.equal(live, shadow[name].to(torch.bfloat16))
    model.load_momentum_state_dict(shadow)
    assert all(torch.equal(model.momentum_state_dict()[n], shadow[n]) for n in shadow)


def test_zero3_shards_are_updated_in_place():
    online, momentum = nn.Parameter(torch.zeros(0)), nn.Parameter(torch.zeros(0), requires_grad=False)
    online.ds_tensor = torch.full((3,), 2.0)  # what ZeRO-3 leaves between forwards: data empty, shard here
    momentum.ds_tensor = torch.full((3,), 1.0)
    momentum_update([("w", online, "w_m", momentum)], 0.9, {})
    torch.testing.assert_close(momentum.ds_tensor, torch.full((3,), 1.1))
    online.ds_tensor, momentum.ds_tensor = online.ds_tensor.bfloat16(), momentum.ds_tensor.bfloat16()
    shadow = {}
    momentum_update([("w", online, "w_m", momentum)], 0.9, shadow)
    assert shadow["w_m"].dtype == torch.float32 and shadow["w_m"].shape == (3,)
