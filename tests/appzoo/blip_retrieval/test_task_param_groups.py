"""The optimizer groups of blip_retrieval: one group as official, or `temp` apart with temp_lr_scale."""
import torch

from appzoo.blip_retrieval.model.blip_retrieval import BlipRetrieval
from appzoo.blip_retrieval.model.config import create_config
from appzoo.blip_retrieval.task import blip_param_groups


def test_temp_gets_its_own_group_only_when_scaled():
    model = BlipRetrieval(create_config("tiny", 32, vocab_size=50, queue_size=8))
    trainable = [p for p in model.parameters() if p.requires_grad]
    (official,) = blip_param_groups(model, 1.0)
    assert official["params"] == trainable and "lr_scale" not in official
    rest, temp = blip_param_groups(model, 0.0)
    assert temp == {"params": [model.temp], "lr_scale": 0.0}
    assert len(rest["params"]) == len(trainable) - 1 and all(p is not model.temp for p in rest["params"])
    # AdamW at lr_scale 0 leaves temp where it is, weight decay included
    optimizer = torch.optim.AdamW([dict(rest, lr=1e-2), dict(temp, lr=0.0)], weight_decay=0.05)
    before = model.temp.item()
    model.temp.grad = torch.ones_like(model.temp)
    optimizer.step()
    assert model.temp.item() == before
