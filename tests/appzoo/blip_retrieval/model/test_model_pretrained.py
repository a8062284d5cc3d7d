"""BlipRetrieval.from_pretrained / save_pretrained / embed_images / embed_texts / match.

Every source kind holding the same weights (official .pth, save_pretrained folder, HF folder, its bare
model.safetensors, HF hub id through a local endpoint and then offline from the HF cache, modelzoo name and
URL over loopback HTTP) gives the same embeddings and match probabilities, and those equal the model's own
official-math outputs."""
import json
import os
import sys

import pytest
import torch
from PIL import Image

from appzoo.blip_retrieval import BlipRetrieval
from appzoo.blip_retrieval.commands import convert
from appzoo.blip_retrieval.model.checkpoint import save_official
from appzoo.blip_retrieval.model.pretrained_folder import base_vocab
from appzoo.blip_retrieval.model.tokenizer import pre_caption
from easyretrieval.errors import UserError

from blip_model_helpers import tiny_model

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "easyretrieval",
                                "modelzoo"))
from local_servers import FaultyHttpServer, HubServer  # noqa: E402

TEXTS = ["a dog runs on the grass", "A man rides a RED bicycle!", "kids jump into a swimming pool"]
TOL = dict(atol=1e-5, rtol=0)


def _images(folder):
    paths = []
    for i, rgb in enumerate([(210, 40, 40), (40, 180, 60), (40, 60, 210), (225, 215, 30)]):
        image = Image.new("RGB", (48, 40), (250, 250, 250))
        image.paste(rgb, (8 + 3 * i, 6, 40, 34))
        paths.append(os.path.join(folder, f"{i}.jpg"))
        image.save(paths[-1], quality=90)
    return paths


@pytest.fixture(scope="module")
def saved(tmp_path_factory, tokenizer):
    """One tiny model written in every layout, its expected outputs, and the images."""
    root = tmp_path_factory.mktemp("pretrained")
    model = tiny_model(tokenizer, seed=11).eval()
    with torch.no_grad():  # a trained-looking temp and queue pointer (travel in every layout)
        model.temp.fill_(0.05)
        model.ptr_queue[0] = 4
    (root / "vocab.txt").write_text("\n".join(base_vocab(tokenizer)) + "\n", encoding="utf-8")
    save_official(model, str(root / "model.pth"))  # vocab.txt beside it
    model.save_pretrained(str(root / "folder"))
    convert("hf", str(root / "model.pth"), str(root / "hf"))
    paths = _images(str(root))
    images = [Image.open(p).convert("RGB") for p in paths]
    return {"root": root, "model": model, "paths": paths, "images": images,
            "emb_i": model.embed_images(images), "emb_t": model.embed_texts(TEXTS),
            "match": model.match(images, TEXTS)}


def _same_outputs(other, saved):
    torch.testing.assert_close(other.embed_images(saved["images"]), saved["emb_i"], **TOL)
    torch.testing.assert_close(other.embed_texts(TEXTS), saved["emb_t"], **TOL)
    torch.testing.assert_close(other.match(saved["images"], TEXTS), saved["match"], **TOL)


@pytest.fixture
def hf_env(monkeypatch, tmp_path):
    """A private HF cache and easyretrieval cache; no offline flag."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("EASYRETRIEVAL_CACHE", str(tmp_path / "er-cache"))
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "EASYRETRIEVAL_OFFLINE", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("kind", ["model.pth", "folder", "hf", "hf/model.safetensors"])
def test_local_sources_give_the_same_embeddings_and_match(saved, kind):
    other = BlipRetrieval.from_pretrained(str(saved["root"] / kind))
    assert not other.training and next(other.parameters()).device.type == "cpu"
    assert other.load_report.unexpected == []
    _same_outputs(other, saved)
    for key, value in saved["model"].state_dict().items():  # every tensor, momentum encoders and queues too
        assert torch.equal(other.state_dict()[key], value), key


def test_hub_id_through_a_local_endpoint_then_offline_from_the_cache(saved, hf_env, monkeypatch):
    with HubServer() as hub:
        hub.add_folder("Salesforce/blip-itm-tiny-test", str(saved["root"] / "hf"))
        hub.add_repo("google-bert/bert-base-uncased", {"config.json": b'{"model_type": "bert"}'})
        monkeypatch.setenv("HF_ENDPOINT", hub.base_url)
        with pytest.raises(UserError, match="google-bert/bert-base-uncased is not a BLIP model"):
            BlipRetrieval.from_pretrained("google-bert/bert-base-uncased")
        _same_outputs(BlipRetrieval.from_pretrained("Salesforce/blip-itm-tiny-test"), saved)
        fetched = {p.rsplit("/", 1)[-1] for m, p, _ in hub.requests if m == "GET"}
        assert {"config.json", "model.safetensors", "vocab.txt", "blip_extras.safetensors"} <= fetched
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the server is gone: the HF cache answers
    _same_outputs(BlipRetrieval.from_pretrained("hf://Salesforce/blip-itm-tiny-test"), saved)
    with pytest.raises(UserError, match="not in the HF cache .* downloads are off"):
        BlipRetrieval.from_pretrained("Salesforce/never-fetched")


def test_modelzoo_name_and_url_over_http(saved, hf_env, monkeypatch):
    with FaultyHttpServer(checksums=("md5",)) as server:
        with open(saved["root"] / "model.pth", "rb") as handle:
            data = handle.read()
        server.add("/alibaba-pai/blip/pretrained/model_base_retrieval_flickr.pth", data)
        url = server.add("/weights/tiny.pth", data)
        monkeypatch.setenv("EASYRETRIEVAL_MODELZOO_URL", server.base_url + "/")
        vocab = str(saved["root"] / "vocab.txt")
        for spec in ("blip_base_retrieval_flickr", url):
            _same_outputs(BlipRetrieval.from_pretrained(spec, tokenizer=vocab), saved)


def test_save_pretrained_folder_describes_the_model(saved):
    folder = saved["root"] / "folder"
    assert sorted(os.listdir(folder)) == ["config.json", "model.safetensors", "vocab.txt"]
    config = json.loads((folder / "config.json").read_text())
    model = saved["model"]
    assert config["format"] == "easyretrieval/blip_retrieval" and config["format_version"] == 1
    assert config["model"] == model.config.to_dict()
    assert config["model"]["vit"] == "tiny" and config["model"]["vision"]["image_size"] == 32
    tok = config["tokenizer"]
    assert (tok["vocab_size"], tok["bos_token_id"], tok["enc_token_id"], tok["pad_token_id"]) == (
        len(model.tokenizer), model.tokenizer.bos_token_id, model.tokenizer.enc_token_id, 0)
    assert config["image_processor"]["image_size"] == 32


def test_outputs_follow_the_official_math(saved):
    model = saved["model"]
    emb_i, emb_t, match = saved["emb_i"], saved["emb_t"], saved["match"]
    assert emb_i.shape == (4, model.config.embed_dim) and emb_i.dtype == torch.float32
    assert emb_t.shape == (3, model.config.embed_dim) and emb_t.dtype == torch.float32
    torch.testing.assert_close(emb_i.norm(dim=1), torch.ones(4), **TOL)
    torch.testing.assert_close(emb_t.norm(dim=1), torch.ones(3), **TOL)
    assert match.shape == (4, 3) and bool(((match >= 0) & (match <= 1)).all())
    pixels = torch.stack([model.image_transform(im) for im in saved["images"]])
    captions = [pre_caption(t) for t in TEXTS]
    tokens = model.tokenizer(captions, padding="max_length", truncation=True, max_length=35, return_tensors="pt")
    with torch.no_grad():
        embeds = model.encode_image(pixels)
        torch.testing.assert_close(model.image_feat(embeds), emb_i, **TOL)
        torch.testing.assert_close(model.text_feat(model.encode_text(tokens.input_ids, tokens.attention_mask)),
                                   emb_t, **TOL)
        for i in range(4):
            logits = model.itm_logits(embeds[i:i + 1].expand(3, -1, -1), tokens.input_ids, tokens.attention_mask)
            torch.testing.assert_close(logits.softmax(dim=1)[:, 1], match[i], **TOL)
    # paths, a transformed tensor and PIL images are the same input; captions are normalised as in training
    torch.testing.assert_close(model.embed_images(saved["paths"]), emb_i, **TOL)
    torch.testing.assert_close(model.embed_images(pixels), emb_i, **TOL)
    torch.testing.assert_close(model.embed_texts(["a dog RUNS on the grass!!"])[0], emb_t[0], **TOL)
    torch.testing.assert_close(model.match(saved["images"][1:2], TEXTS, batch_size=2, images_per_group=1),
                               match[1:2], **TOL)


def test_bad_inputs_and_sources_are_clear_errors(saved, tmp_path):
    model = saved["model"]
    with pytest.raises(TypeError, match="wrap a single image in a list"):
        model.embed_images(saved["paths"][0])
    with pytest.raises(TypeError, match="wrap a single text in a list"):
        model.embed_texts("a dog")
    with pytest.raises(ValueError, match=r"\[N, 3, 32, 32\]"):
        model.embed_images(torch.zeros(2, 3, 16, 16))
    assert model.match([], TEXTS).shape == (0, 3) and model.embed_texts([]).shape == (0, 64)
    with pytest.raises(UserError, match="photo.pth is not a model checkpoint \\(a JPEG image\\)"):
        os.link(saved["paths"][0], tmp_path / "photo.pth")
        BlipRetrieval.from_pretrained(str(tmp_path / "photo.pth"))
    with pytest.raises(UserError, match="does not exist"):
        BlipRetrieval.from_pretrained(str(tmp_path / "missing.pth"))
    step = tmp_path / "checkpoints" / "step_00000004"
    step.mkdir(parents=True)
    (step / "COMPLETE").write_text("{}")
    with pytest.raises(UserError, match="resumable training checkpoint .* resume=.*easyretrieval export"):
        BlipRetrieval.from_pretrained(str(step))
    with pytest.raises(UserError, match="folder without a model"):
        BlipRetrieval.from_pretrained(str(tmp_path / "checkpoints" / ".."))
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nx\n")
    with pytest.raises(UserError, match="the tokenizer has 8 tokens, the model's text encoder"):
        BlipRetrieval.from_pretrained(str(saved["root"] / "model.pth"), tokenizer=str(tmp_path / "vocab.txt"))


def test_save_pretrained_replaces_a_folder_whole(saved, tmp_path):
    folder = tmp_path / "m"
    saved["model"].save_pretrained(str(folder))
    other = tiny_model(saved["model"].tokenizer, seed=99)
    other.save_pretrained(str(folder))
    assert sorted(os.listdir(tmp_path)) == ["m"]  # no temporary or old folder left
    loaded = BlipRetrieval.from_pretrained(str(folder))
    assert torch.equal(loaded.itm_head.weight, other.itm_head.weight)
