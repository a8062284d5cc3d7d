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


def _write_vocab(tokenizer, path):
    from appzoo.blip_retrieval.model.pretrained_folder import base_vocab

    path.write_text("\n".join(base_vocab(tokenizer)) + "\n", encoding="utf-8")
    return str(path)


def test_convert_command_round_trip(tokenizer, tmp_path):
    model = tiny_model(tokenizer, seed=4)
    model.ptr_queue[0] = 3
    save_official(model, str(tmp_path / "blip.pth"))
    vocab = _write_vocab(tokenizer, tmp_path / "vocab_for_convert.txt")
    assert COMMANDS.get("convert")(["--to", "hf", "--input", str(tmp_path / "blip.pth"), "--tokenizer", vocab,
                                    "--output", str(tmp_path / "hf"), "--vit", "tiny"]) == 0
    assert COMMANDS.get("convert")(["--to", "blip", "--input", str(tmp_path / "hf"),
                                    "--output", str(tmp_path / "back.pth")]) == 0
    original, back = read_state_dict(str(tmp_path / "blip.pth")), read_state_dict(str(tmp_path / "back.pth"))
    assert original.keys() == back.keys()
    for key in original:
        assert torch.equal(original[key], back[key]), key


def test_convert_to_hf_writes_what_transformers_loads_without_warnings(tokenizer, tmp_path, caplog):
    """Config (special ids inside the vocab), tokenizer ([DEC] bos, [ENC]) and image processor load in
    transformers with no warning, and give our ITM logits."""
    import logging
    import warnings

    from transformers import AutoProcessor, AutoTokenizer, BlipForImageTextRetrieval

    model = tiny_model(tokenizer, seed=5).eval()
    save_official(model, str(tmp_path / "blip.pth"))
    _write_vocab(tokenizer, tmp_path / "vocab.txt")  # beside the checkpoint: found without --tokenizer
    assert COMMANDS.get("convert")(["--to", "hf", "--input", str(tmp_path / "blip.pth"),
                                    "--output", str(tmp_path / "hf")]) == 0
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        hf = BlipForImageTextRetrieval.from_pretrained(str(tmp_path / "hf")).eval()
        hf_tokenizer = AutoTokenizer.from_pretrained(str(tmp_path / "hf"))
        processor = AutoProcessor.from_pretrained(str(tmp_path / "hf"))
    problems = [str(w.message) for w in caught if not issubclass(w.category, ResourceWarning)]
    problems += [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert problems == []
    text = hf.config.text_config
    assert text.bos_token_id == tokenizer.bos_token_id == hf_tokenizer.bos_token_id < text.vocab_size
    assert text.pad_token_id == tokenizer.pad_token_id and text.sep_token_id == tokenizer.sep_token_id
    assert hf_tokenizer.convert_tokens_to_ids("[ENC]") == tokenizer.enc_token_id and len(hf_tokenizer) == len(tokenizer)
    from PIL import Image

    images = [Image.new("RGB", (50, 40), (220, 30, 30)), Image.new("RGB", (40, 40), (30, 30, 220))]
    inputs = processor(images=images, text=["a dog runs on the grass", "a boat sails"], return_tensors="pt",
                       padding=True)
    pixels = torch.stack([model.image_transform(im) for im in images])
    torch.testing.assert_close(inputs.pixel_values, pixels, atol=1e-5, rtol=0)
    ids = inputs.input_ids.clone()
    ids[:, 0] = tokenizer.enc_token_id
    with torch.no_grad():
        expected = hf(input_ids=ids, pixel_values=pixels, attention_mask=inputs.attention_mask).itm_score
        ours = model.itm_logits(model.encode_image(pixels), inputs.input_ids, inputs.attention_mask)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)
