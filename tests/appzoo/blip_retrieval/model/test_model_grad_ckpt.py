"""Gradient checkpointing: exactly the last vit_ckpt_layer blocks recompute; loss and gradients unchanged;
fewer activations are kept."""
import torch

from appzoo.blip_retrieval.model.config import VisionConfig
from appzoo.blip_retrieval.model.vision_encoder import VisionEncoder


def _encoder(ckpt_layer, grad_ckpt=True):
    torch.manual_seed(0)
    config = VisionConfig(width=32, depth=5, heads=2, image_size=32, grad_ckpt=grad_ckpt, ckpt_layer=ckpt_layer)
    return VisionEncoder(config).train()


def _run(encoder, image):
    calls = [0] * len(encoder.blocks)
    hooks = [b.register_forward_pre_hook(lambda *_, i=i: calls.__setitem__(i, calls[i] + 1))
             for i, b in enumerate(encoder.blocks)]
    saved = [0]

    def pack(t):
        saved[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = encoder(image)
    loss = out.square().mean()
    loss.backward()
    for h in hooks:
        h.remove()
    grads = {n: p.grad.clone() for n, p in encoder.named_parameters()}
    return loss.detach(), grads, calls, saved[0]


def test_exactly_last_blocks_recompute_with_equal_grads():
    image = torch.randn(2, 3, 32, 32)
    loss0, grads0, calls0, saved0 = _run(_encoder(0, grad_ckpt=False), image)
    assert calls0 == [1] * 5
    previous = saved0
    for n in (1, 3, 5):
        encoder = _encoder(n)
        assert encoder.checkpointed_blocks() == list(range(5 - n, 5))
        loss, grads, calls, saved = _run(encoder, image)
        assert calls == [1] * (5 - n) + [2] * n  # block i recomputed iff i >= depth - n
        assert torch.equal(loss, loss0)
        for name in grads0:
            torch.testing.assert_close(grads[name], grads0[name], atol=1e-7, rtol=1e-6)
        assert saved < previous  # fewer saved activations the more blocks are checkpointed
        previous = saved
    assert _encoder(4, grad_ckpt=False).checkpointed_blocks() == []


def test_no_recompute_without_grad():
    encoder = _encoder(5)
    calls = [0]
    encoder.blocks[4].register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    with torch.no_grad():
        encoder(torch.randn(1, 3, 32, 32))
    assert calls == [1]


def test_model_forward_with_ckpt_equal_grads(tokenizer):
    from blip_model_helpers import tiny_model

    image, idx = torch.randn(2, 3, 32, 32), torch.tensor([0, 1])
    results = []
    for ckpt in (False, True):
        model = tiny_model(tokenizer, seed=0, vision={"grad_ckpt": ckpt, "ckpt_layer": 2},
                           text={"grad_ckpt": ckpt}).train()
        assert model.visual_encoder_m.checkpointed_blocks() == [] and not model.text_encoder_m.grad_ckpt
        torch.manual_seed(5)
        loss_ita, loss_itm = model(image, ["a dog runs", "the cat sleeps"], alpha=0.4, idx=idx)
        (loss_ita + loss_itm).backward()
        results.append((loss_ita.detach(), loss_itm.detach(),
                        {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])
    assert results[0][2].keys() == results[1][2].keys()
    for name, grad in results[0][2].items():
        torch.testing.assert_close(results[1][2][name], grad, atol=1e-6, rtol=1e-5)
