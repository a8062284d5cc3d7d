"""The official state-dict layouts (reference JSON) equal ours and load strictly, base and large."""
import json
import os

import pytest
import torch

from easyretrieval.errors import UserError

from appzoo.blip_retrieval.model.blip_retrieval import BlipRetrieval
from appzoo.blip_retrieval.model.checkpoint import plan_load
from appzoo.blip_retrieval.model.config import create_config

REFERENCE = os.path.join(os.path.dirname(__file__), *[".."] * 4, "..", "shared", "reference")


def _reference(vit):
    for root in (REFERENCE, "/work/shared/reference"):
        path = os.path.join(root, f"blip_retrieval_state_dict_{vit}.json")
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as handle:
                return json.load(handle)["keys"]
    pytest.skip("reference layouts (shared/reference) are not present")


def _meta_model(vit, image_size=384):
    with torch.device("meta"):  # base/large without allocating their weights
        return BlipRetrieval(create_config(vit, image_size, queue_size=57600))


def _meta_state(reference):
    return {k: torch.empty(shape, device="meta", dtype=torch.long if k in ("idx_queue", "ptr_queue")
                           or k.endswith("position_ids") else torch.float32) for k, shape in reference.items()}


@pytest.mark.parametrize("vit", ["base", "large"])
def test_reference_layout_loads_strictly(vit):
    reference = _reference(vit)
    model = _meta_model(vit)
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert list(ours) == list(reference)  # same keys, same order
    assert ours == reference
    state, report, momentum = plan_load({k: v.shape for k, v in model.state_dict().items()},
                                        _meta_state(reference), model.config.vision.num_patches)
    assert (report.missing, report.unexpected, report.initialised, momentum) == ([], [], [], [])
    result = model.load_state_dict(state, strict=True, assign=True)
    assert not result.missing_keys and not result.unexpected_keys


def test_large_checkpoint_into_base_is_an_error():
    model = _meta_model("base")
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    with pytest.raises(UserError, match="does not fit this model size"):
        plan_load(shapes, _meta_state(_reference("large")), model.config.vision.num_patches, "checkpoint x.pth")


def test_pretraining_checkpoint_layout():
    """model_base.pth (pre-training): has text_decoder.* and queue_ptr, lacks idx_queue and ptr_queue."""
    reference = dict(_reference("base"))
    del reference["idx_queue"], reference["ptr_queue"]
    reference["queue_ptr"] = [1]
    reference["text_decoder.cls.predictions.bias"] = [30524]
    model = _meta_model("base")
    state, report, momentum = plan_load({k: v.shape for k, v in model.state_dict().items()},
                                        _meta_state(reference), model.config.vision.num_patches)
    assert report.missing == ["idx_queue", "ptr_queue"] and momentum == []
    assert report.unexpected == ["queue_ptr", "text_decoder.cls.predictions.bias"]
    assert "queue_ptr" not in state
