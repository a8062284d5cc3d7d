"""Our training forward against values computed by the unmodified official code (salesforce/BLIP 056a169,
`BLIP_Retrieval.forward`): ../shared/reference/official_forward_small.pt, described in its README.md.

The small official model's state is loaded through our checkpoint path (strict: nothing missing, unexpected
or re-initialised); two training-mode forwards are run as the official ones were (no optimizer step in
between) and both losses, every momentum parameter, the queues, ptr and temp are compared after each.
"""
import os

import pytest
import torch

from appzoo.blip_retrieval.model.blip_retrieval import BlipRetrieval
from appzoo.blip_retrieval.model.checkpoint import load_pretrained
from appzoo.blip_retrieval.model.config import create_config
from appzoo.blip_retrieval.model.tokenizer import create_tokenizer, pre_caption

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 4))
REFERENCE = os.path.join(os.path.dirname(REPO_ROOT), "shared", "reference", "official_forward_small.pt")

# The bert-base-uncased tokens of the reference captions, at their bert-base-uncased ids. A vocab holding
# just these (and filler) at the same ids tokenizes the captions exactly as the full one: WordPiece takes
# the longest piece present, and every longer candidate is absent from both.
BERT_TOKENS = {
    0: "[PAD]", 100: "[UNK]", 101: "[CLS]", 102: "[SEP]", 103: "[MASK]", 1010: ",", 1011: "-", 1037: "a",
    1997: "of", 2006: "on", 2015: "##s", 2019: "an", 2037: "their", 2046: "into", 2048: "two", 2096: "while",
    2099: "##r", 2158: "man", 2214: "old", 2315: "named", 2327: "top", 2336: "children", 2379: "near",
    2402: "young", 2417: "red", 3138: "takes", 3566: "mom", 3585: "golden", 4098: "max", 4147: "wearing",
    4400: "wave", 4408: "bright", 4542: "rain", 4799: "wooden", 5559: "riding", 6277: "##board",
    8638: "fence", 8660: "jumping", 12197: "watches", 12850: "retrieve", 14175: "surf", 15405: "muddy",
    16484: "curiously", 16531: "##coat", 25081: "puddle",
}
BERT_VOCAB_SIZE = 30522  # [DEC] and [ENC] follow at 30522 and 30523, as official init_tokenizer


@pytest.fixture(scope="module")
def reference():
    if not os.path.isfile(REFERENCE):
        pytest.skip(f"official reference vectors not present: {REFERENCE} (CI has ../shared next to the repo)")
    return torch.load(REFERENCE, map_location="cpu", weights_only=True)


def _tokenizer(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(BERT_TOKENS.get(i, f"[unused{i}]") for i in range(BERT_VOCAB_SIZE)) + "\n")
    return create_tokenizer(path)


def _config(ref):
    """Our config of the reference's small official model (every dimension read from the file)."""
    vision, med = ref["config"]["vision"], ref["config"]["text_med_config"]
    assert vision["qkv_bias"] and vision["norm_layer"] == "LayerNorm(eps=1e-6)" and med["hidden_act"] == "gelu"
    return create_config(
        "base", vision["img_size"], vocab_size=med["vocab_size"],
        vision=dict(width=vision["embed_dim"], depth=vision["depth"], heads=vision["num_heads"],
                    patch_size=vision["patch_size"], mlp_ratio=vision["mlp_ratio"],
                    drop_path_rate=vision["drop_path_rate"], layer_norm_eps=1e-6),
        text=dict(hidden_size=med["hidden_size"], num_layers=med["num_hidden_layers"],
                  num_heads=med["num_attention_heads"], intermediate_size=med["intermediate_size"],
                  max_position_embeddings=med["max_position_embeddings"], layer_norm_eps=med["layer_norm_eps"],
                  hidden_dropout=med["hidden_dropout_prob"], attention_dropout=med["attention_probs_dropout_prob"],
                  pad_token_id=med["pad_token_id"]),
        embed_dim=ref["config"]["embed_dim"], queue_size=ref["config"]["queue_size"],
        momentum=ref["config"]["momentum"], negative_all_rank=ref["config"]["negative_all_rank"],
        temp_init=ref["config"]["temp_init"],
    )


def _compare_state(model, expected, step):
    state = model.state_dict()
    for key, want in expected.items():
        got = state[key]
        assert got.shape == want.shape and got.dtype == want.dtype, f"{step} {key}"
        if key in ("idx_queue", "ptr_queue"):
            assert torch.equal(got, want), f"{step} {key}: {got.tolist()} != {want.tolist()}"
        else:
            diff = float((got.double() - want.double()).abs().max())
            assert diff <= 1e-6, f"{step} {key}: max abs difference {diff:.3g} > 1e-6"


def test_training_forward_equals_official_vectors(reference, tmp_path):
    ref, inputs = reference, reference["inputs"]
    tokenizer = _tokenizer(tmp_path)
    assert (len(tokenizer), tokenizer.bos_token_id, tokenizer.enc_token_id) == (30524, 30522, 30523)
    assert [pre_caption(c, ref["config"]["pre_caption_max_words"]) for c in inputs["raw_captions"]] == inputs["captions"]
    tokens = tokenizer(inputs["captions"], padding="max_length", truncation=True, max_length=35, return_tensors="pt")
    assert torch.equal(tokens.input_ids, inputs["input_ids"])
    assert torch.equal(tokens.attention_mask, inputs["attention_mask"])

    model = BlipRetrieval(_config(ref), tokenizer)
    checkpoint = tmp_path / "official_small.pth"
    torch.save({"model": ref["state_dict_before"]}, checkpoint)  # the official {'model': state_dict} file
    report = load_pretrained(model, str(checkpoint))
    assert (report.missing, report.unexpected, report.initialised, report.interpolated) == ([], [], [], [])
    loaded = model.state_dict()
    assert set(loaded) == set(ref["state_dict_before"])
    assert all(torch.equal(loaded[k], v) for k, v in ref["state_dict_before"].items())

    model.train()
    momentum = ref["config"]["momentum"]
    for step in ("step1", "step2"):
        want = ref[step]
        loss_ita, loss_itm = model(inputs["image"], inputs["captions"], alpha=inputs["alpha"], idx=inputs["idx"])
        for name, got in (("loss_ita", loss_ita), ("loss_itm", loss_itm)):
            got = float(got.detach())
            rel = abs(got - want[name]) / abs(want[name])
            assert rel <= 1e-5, f"{step} {name}: ours {got!r}, official {want[name]!r} (relative {rel:.3g})"
        expected = dict(want["state_after"])
        if step == "step2":  # omitted from the file: the official EMA of step 1's value (no optimizer step)
            key = "text_encoder_m.embeddings.word_embeddings.weight"
            main = ref["state_dict_before"]["text_encoder.embeddings.word_embeddings.weight"]
            expected[key] = ref["step1"]["state_after"][key] * momentum + main * (1.0 - momentum)
        momentum_keys = {name_m for _, _, name_m, _ in model.momentum_pairs()}
        assert momentum_keys <= set(expected), sorted(momentum_keys - set(expected))[:3]
        assert {"image_queue", "text_queue", "idx_queue", "ptr_queue", "temp"} <= set(expected)
        _compare_state(model, expected, step)
