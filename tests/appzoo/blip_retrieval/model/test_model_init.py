"""Scratch initialisation follows the official distributions (models/vit.py, models/med.py at 056a169)."""
import torch
from torch import nn

from appzoo.blip_retrieval.model.blip_retrieval import BlipRetrieval
from appzoo.blip_retrieval.model.config import create_config


def _std_near(tensor, std, tol=0.25):
    return abs(float(tensor.detach().float().std()) - std) < tol * std


def test_scratch_init_matches_official_distributions():
    torch.manual_seed(0)
    config = create_config("tiny", 32, vocab_size=200, vision={"width": 256, "heads": 4}, queue_size=8)
    model = BlipRetrieval(config)
    vit = model.visual_encoder
    # ViT: class token and position embedding trunc_normal(0.02); Linear trunc_normal(0.02), zero bias
    assert _std_near(vit.cls_token, 0.02) and _std_near(vit.pos_embed, 0.02)
    fc = vit.blocks[0].mlp.fc1
    assert _std_near(fc.weight, 0.02) and torch.count_nonzero(fc.bias) == 0
    assert float(fc.weight.detach().abs().max()) <= 2.0
    # MED text encoder: normal(0.02) for Linear and Embedding weights, zero biases, unit LayerNorm
    text = model.text_encoder
    assert _std_near(text.embeddings.word_embeddings.weight, 0.02)
    query = text.encoder.layer[0].crossattention.self.query
    assert _std_near(query.weight, 0.02) and torch.count_nonzero(query.bias) == 0
    norm = text.encoder.layer[0].output.LayerNorm
    assert torch.equal(norm.weight, torch.ones_like(norm.weight)) and torch.count_nonzero(norm.bias) == 0
    # Momentum encoders start as copies; queues are normalised columns, idx_queue -100, ptr 0
    for name, online, _, momentum in model.momentum_pairs():
        assert torch.equal(online, momentum) and not momentum.requires_grad, name
    torch.testing.assert_close(model.image_queue.norm(dim=0), torch.ones(8))
    assert model.idx_queue.eq(-100).all() and int(model.ptr_queue) == 0
    assert model.temp.item() == torch.tensor(0.07).item()
    assert isinstance(model.itm_head, nn.Linear) and model.itm_head.out_features == 2
