"""resolve() for oss:// through oss2 against a local OSS-compatible endpoint that checks signatures."""
import os

import pytest

from local_servers import TEST_SECRET
from easyretrieval.errors import UserError
from easyretrieval.modelzoo import resolve
from easyretrieval.modelzoo._oss import parse_oss_http_url, parse_oss_url
from easyretrieval.modelzoo._cache import read_sha256_record


def test_signed_get_downloads_and_verifies_crc64(oss_server, oss_credentials, cache_dir, make_payload):
    data = make_payload(700_000)
    url = oss_server.add("private-bucket", "models/blip/model_base.pth", data)
    path = resolve(url, cache_dir=cache_dir, progress=False)
    assert open(path, "rb").read() == data
    assert oss_server.auth_failures == 0 and oss_server.gets("/private-bucket/models/blip/model_base.pth") == 1
    assert read_sha256_record(path) is not None


def test_dropped_connection_resumes_with_a_signed_range_get(oss_server, oss_credentials, cache_dir, make_payload):
    data = make_payload(3_000_000)
    url = oss_server.add("private-bucket", "big.pth", data)
    oss_server.inject("/private-bucket/big.pth", "drop", "500")
    assert open(resolve(url, cache_dir=cache_dir, progress=False), "rb").read() == data
    ranges = [r for _, p, r in oss_server.requests if p == "/private-bucket/big.pth"]
    assert ranges[0] is None and any(r and r.startswith("bytes=") for r in ranges[1:])
    assert oss_server.full_gets("/private-bucket/big.pth") == 1 and oss_server.auth_failures == 0


def test_corrupt_body_is_caught_by_crc64(oss_server, oss_credentials, cache_dir, make_payload):
    data = make_payload(100_000)
    url = oss_server.add("private-bucket", "c.pth", data)
    oss_server.inject("/private-bucket/c.pth", "corrupt")
    assert open(resolve(url, cache_dir=cache_dir, progress=False), "rb").read() == data
    assert oss_server.full_gets("/private-bucket/c.pth") == 2


def test_wrong_secret_is_refused_and_never_shown(oss_server, cache_dir, monkeypatch, capsys):
    monkeypatch.setenv("OSS_ACCESS_KEY_ID", "LTAI5tTestKeyId0001")
    monkeypatch.setenv("OSS_ACCESS_KEY_SECRET", "wrong-" + TEST_SECRET)
    url = oss_server.add("private-bucket", "x.pth", b"abc")
    with pytest.raises(UserError, match="403 SignatureDoesNotMatch") as info:
        resolve(url, cache_dir=cache_dir, progress=False)
    assert oss_server.auth_failures == 1  # not retried: a bad key stays bad
    captured = capsys.readouterr()
    for text in (str(info.value), captured.out, captured.err):
        assert TEST_SECRET not in text and "LTAI5tTestKeyId0001" not in text
    assert not os.path.exists(cache_dir) or not any(f for _, _, fs in os.walk(cache_dir) for f in fs
                                                    if not f.endswith(".lock"))


def test_public_bucket_is_read_anonymously(oss_server, cache_dir):
    url = oss_server.add("public-bucket", "a/ann.json", b"[]")
    assert open(resolve(url, cache_dir=cache_dir, progress=False), "rb").read() == b"[]"
    private = oss_server.add("private-bucket", "a/ann.json", b"[]")
    with pytest.raises(UserError, match="403 AccessDenied"):
        resolve(private, cache_dir=cache_dir, progress=False)


def test_ossutil_config_supplies_credentials(oss_server, cache_dir, tmp_path, monkeypatch):
    config = tmp_path / "ossutilconfig"
    config.write_text(f"[Credentials]\nlanguage=EN\nendpoint={oss_server.base_url}\n"
                      f"accessKeyID=LTAI5tTestKeyId0001\naccessKeySecret={TEST_SECRET}\n")
    monkeypatch.setenv("OSSUTIL_CONFIG_FILE", str(config))
    monkeypatch.delenv("OSS_ENDPOINT")
    url = oss_server.add("private-bucket", "k.bin", b"via ossutil config")
    assert open(resolve(url, cache_dir=cache_dir, progress=False), "rb").read() == b"via ossutil config"


def test_missing_object_is_a_user_error(oss_server, oss_credentials, cache_dir):
    with pytest.raises(UserError, match=r"'oss://private-bucket/none.pth'.*404 NoSuchKey"):
        resolve("oss://private-bucket/none.pth", cache_dir=cache_dir, progress=False)


def test_oss_url_parsing():
    assert parse_oss_url("oss://bkt/a/b.pth") == ("bkt", "a/b.pth", None)
    assert parse_oss_url("oss://bkt.oss-cn-beijing.aliyuncs.com/a") == ("bkt", "a",
                                                                        "https://oss-cn-beijing.aliyuncs.com")
    assert parse_oss_http_url("https://atp-modelzoo-sh.oss-cn-shanghai.aliyuncs.com/release/x.pth") == (
        "atp-modelzoo-sh", "release/x.pth", "https://oss-cn-shanghai.aliyuncs.com")
    assert parse_oss_http_url("https://storage.googleapis.com/b/x.pth") is None
    with pytest.raises(UserError, match="no object key"):
        parse_oss_url("oss://bkt/")


def test_private_oss_https_urls_go_through_oss2_when_credentials_exist(oss_credentials):
    from easyretrieval.modelzoo._sources import HttpSource, OssSource
    from easyretrieval.modelzoo.resolver import _remote_for

    url = "https://my-bucket.oss-cn-hangzhou.aliyuncs.com/ckpt/model.pth"
    _, source, _ = _remote_for(url)
    assert isinstance(source, OssSource)
    assert (source.bucket_name, source.key, source.endpoint) == ("my-bucket", "ckpt/model.pth",
                                                                 "https://oss-cn-hangzhou.aliyuncs.com")
    assert isinstance(_remote_for("https://example.org/model.pth")[1], HttpSource)


def test_public_oss_https_urls_are_plain_http_without_credentials():
    from easyretrieval.modelzoo._sources import HttpSource
    from easyretrieval.modelzoo.resolver import _remote_for

    assert isinstance(_remote_for("http://atp-modelzoo-sh.oss-cn-shanghai.aliyuncs.com/release/x.pth")[1], HttpSource)
