"""transformers BlipForImageTextRetrieval <-> ours: same ITM logits and ITC similarities; exact round trips."""
import pytest
import torch

import appzoo.blip_retrieval  # noqa: F401 - registers the convert command
from easyretrieval.registry import COMMANDS

from appzoo.blip_retrieval.model.blip_retrieval import BlipRetrieval
from appzoo.blip_retrieval.model.checkpoint import read_state_dict, save_official
from appzoo.blip_retrieval.model.config import create_config
from appzoo.blip_retrieval.model.hf_convert import from_hf, hf_config_dict, to_hf

from blip_model_helpers import tiny_model


@pytest.fixture(scope="module")
def hf_and_ours():
    from transformers import BlipConfig, BlipForImageTextRetrieval

    torch.manual_seed(0)
    config = create_config("tiny", 32, vocab_size=120, queue_size=8)
    hf = BlipForImageTextRetrieval(BlipConfig(**hf_config_dict(config))).eval()
    with torch.no_grad():  # HF initialises some tensors to constants; randomise everything
        for p in hf.parameters():
            p.normal_(0, 0.2)
    ours = BlipRetrieval(config).eval()
    ours.load_state_dict(from_hf(hf.state_dict(), config), strict=True)
    return hf, ours, config


@torch.no_grad()
def test_same_itm_logits_and_itc_similarities(hf_and_ours):
    hf, ours, _ = hf_and_ours
    g = torch.Generator().manual_seed(1)
    image = torch.randn(3, 3, 32, 32, generator=g)
    ids = torch.randint(5, 118, (3, 10), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    hf_ids = ids.clone()
    hf_ids[:, 0] = ours.enc_token_id  # HF callers put [ENC] at position 0 themselves
    expected = hf(input_ids=hf_ids, pixel_values=image, attention_mask=mask, use_itm_head=True).itm_score
    embeds = ours.encode_image(image)
    torch.testing.assert_close(ours.itm_logits(embeds, ids, mask), expected, atol=1e-5, rtol=0)
    itc = hf(input_ids=ids, pixel_values=image, attention_mask=mask, use_itm_head=False).itm_score
    sims = ours.image_feat(embeds) @ ours.text_feat(ours.encode_text(ids, mask)).t()
    torch.testing.assert_close(sims, itc, atol=1e-5, rtol=0)


def test_round_trips_are_exact(hf_and_ours):
    hf, ours, config = hf_and_ours
    hf_state, _, extras = to_hf(ours.state_dict(), config)
    assert hf_state.keys() == hf.state_dict().keys()
    for key, value in hf.state_dict().items():
        assert torch.equal(hf_state[key], value), key
    back = from_hf(hf_state, config, extras)
    assert back.keys() == ours.state_dict().keys()
    for key, value in ours.state_dict().items():
        assert torch.equal(back[key], value), key


def test_convert_command_round_trip(tokenizer, tmp_path):
    model = tiny_model(tokenizer, seed=4)
    model.ptr_queue[0] = 3
    save_official(model, str(tmp_path / "blip.pth"))
    assert COMMANDS.get("convert")(["--to", "hf", "--input", str(tmp_path / "blip.pth"),
                     "--output", str(tmp_path / "hf"), "--vit", "tiny"]) == 0
    assert COMMANDS.get("convert")(["--to", "blip", "--input", str(tmp_path / "hf"),
                     "--output", str(tmp_path / "back.pth"), "--vit", "tiny"]) == 0
    original, back = read_state_dict(str(tmp_path / "blip.pth")), read_state_dict(str(tmp_path / "back.pth"))
    assert original.keys() == back.keys()
    for key in original:
        assert torch.equal(original[key], back[key]), key
