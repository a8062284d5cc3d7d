"""`easyretrieval models`: the catalog with what is cached, and `models fetch`; blip_retrieval's entries,
registered when the app is imported, stand for an app's."""
import json

import pytest

import appzoo.blip_retrieval  # noqa: F401 - registers BLIP's catalog entries
from easyretrieval.errors import UserError
from easyretrieval.modelzoo import CATALOG
from easyretrieval.modelzoo.commands import models_command

SEED_NAMES = ("blip_base", "blip_large", "blip_base_retrieval_flickr", "blip_large_retrieval_flickr")


def test_catalog_records_what_each_name_is():
    for name in SEED_NAMES:
        assert CATALOG[name].url == ("http://atp-modelzoo-sh.oss-cn-shanghai.aliyuncs.com/release/easynlp_modelzoo/"
                                     f"alibaba-pai/blip/pretrained/model_{name[5:]}.pth")
    for vit in ("base", "large"):
        for data in ("coco", "flickr"):
            entry = CATALOG[f"salesforce_blip_{vit}_retrieval_{data}"]
            assert entry.url.endswith(f"/BLIP/models/model_{vit}_retrieval_{data}.pth") and entry.detail("vit") == vit
    assert all(e.approx_size and e.description for e in CATALOG.values())


def test_models_lists_catalog_and_cache(http_server, cache_dir, monkeypatch, capsys):
    monkeypatch.setenv("EASYRETRIEVAL_MODELZOO_URL", http_server.base_url + "/")
    http_server.add("/alibaba-pai/blip/pretrained/model_base.pth", b"weights")
    assert models_command([]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in CATALOG) and cache_dir in listing
    assert models_command(["fetch", "blip_base"]) == 0
    fetched = capsys.readouterr().out.split("\t")[1].strip()
    assert models_command(["--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["blip_base"]["cached"] == fetched and rows["blip_large"]["cached"] is None
    assert rows["blip_large_retrieval_flickr"]["vit"] == "large"
    assert rows["blip_large_retrieval_flickr"]["finetuned_on"] == "flickr30k"


def test_models_bad_usage_is_a_user_error():
    with pytest.raises(UserError, match="invalid choice"):
        models_command(["frob"])
    with pytest.raises(UserError, match="at least one"):
        models_command(["fetch"])
