"""resolve() over plain HTTP against a local server with injected faults."""
import hashlib
import io
import json
import os
import tarfile

import pytest

from easyretrieval.errors import UserError
from easyretrieval.modelzoo import resolve
from easyretrieval.modelzoo._cache import cache_path, read_sha256_record
from local_servers import FaultyHttpServer, files_under

PATH = "/release/model.pth"


def _cached_files(cache_dir):
    return sorted(os.path.relpath(p, cache_dir) for p in files_under(cache_dir) if not p.endswith(".lock"))


def test_download_is_verified_recorded_and_cached(http_server, cache_dir, make_payload):
    data = make_payload(300_000)
    url = http_server.add(PATH, data)
    path = resolve(url, cache_dir=cache_dir, progress=False)
    assert open(path, "rb").read() == data
    assert read_sha256_record(path) == hashlib.sha256(data).hexdigest()
    assert path.startswith(os.path.realpath(cache_dir) + os.sep)
    assert resolve(url, cache_dir=cache_dir, progress=False) == path
    assert http_server.gets(PATH) == 1  # the second call is answered from the cache
    assert not [f for f in _cached_files(cache_dir) if ".part" in f]


@pytest.mark.parametrize("fault", ["drop", "short"])
def test_dropped_or_short_body_resumes_with_range(http_server, cache_dir, make_payload, fault):
    data = make_payload(2_000_000)
    url = http_server.add(PATH, data)
    http_server.inject(PATH, fault)
    path = resolve(url, cache_dir=cache_dir, progress=False)
    assert open(path, "rb").read() == data
    ranges = [r for m, p, r in http_server.requests if p == PATH]
    assert ranges[0] is None and ranges[1].startswith("bytes=") and int(ranges[1][6:-1]) > 0
    assert http_server.full_gets(PATH) == 1  # resumed, not restarted


def test_server_error_then_success_is_retried(http_server, cache_dir, make_payload):
    data = make_payload(10_000)
    url = http_server.add(PATH, data)
    http_server.inject(PATH, "500", "503")
    assert open(resolve(url, cache_dir=cache_dir, progress=False), "rb").read() == data
    assert http_server.gets(PATH) == 3


@pytest.mark.parametrize("checksums", [("md5",), ("crc64",)])
def test_wrong_checksum_is_refetched(cache_dir, make_payload, checksums):
    data = make_payload(500_000)
    with FaultyHttpServer(checksums=checksums) as server:
        url = server.add(PATH, data)
        server.inject(PATH, "corrupt")
        path = resolve(url, cache_dir=cache_dir, progress=False)
        assert open(path, "rb").read() == data
        assert server.full_gets(PATH) == 2


def test_corrupt_file_never_enters_cache(http_server, cache_dir, make_payload):
    url = http_server.add(PATH, make_payload(50_000))
    http_server.inject(PATH, *["corrupt"] * 10)
    with pytest.raises(UserError, match="corrupt download.*md5"):
        resolve(url, cache_dir=cache_dir, progress=False)
    assert _cached_files(cache_dir) == []  # no final file, no partial, no sha256 record
    assert not os.path.exists(cache_path(url, cache_dir))


def test_server_that_keeps_failing_gives_up_with_user_error(http_server, cache_dir, monkeypatch):
    monkeypatch.setenv("EASYRETRIEVAL_DOWNLOAD_RETRIES", "2")
    url = http_server.add(PATH, b"x" * 100)
    http_server.inject(PATH, *["500"] * 10)
    with pytest.raises(UserError, match=r"HTTP 500.*gave up after 3 attempts"):
        resolve(url, cache_dir=cache_dir, progress=False)
    assert http_server.gets(PATH) == 3


def test_missing_file_is_a_user_error_without_retries(http_server, cache_dir):
    url = http_server.base_url + "/nope/model.pth"
    with pytest.raises(UserError, match=r"cannot download '.*nope/model.pth'.*HTTP 404.*check the name/URL"):
        resolve(url, cache_dir=cache_dir, progress=False)
    assert http_server.gets("/nope/model.pth") == 1


def test_stale_partial_from_killed_process_is_resumed(http_server, cache_dir, make_payload):
    data = make_payload(1_000_000)
    url = http_server.add(PATH, data)
    resolve(url, cache_dir=cache_dir, progress=False)  # learn the validators the way a real run would
    dest = cache_path(url, cache_dir)
    os.remove(dest)
    with open(dest + ".part", "wb") as f:  # what a process killed after 400 kB leaves behind
        f.write(data[:400_000])
    etag = '"' + hashlib.md5(data).hexdigest().upper() + '"'
    with open(dest + ".part.json", "w") as f:
        json.dump({"size": len(data), "etag": etag, "crc64": None, "md5_b64": None}, f)
    http_server.requests.clear()
    assert open(resolve(url, cache_dir=cache_dir, progress=False), "rb").read() == data
    assert http_server.requests == [("GET", PATH, "bytes=400000-")]


def test_partial_of_a_changed_object_restarts_from_zero(http_server, cache_dir, make_payload):
    data = make_payload(200_000, seed=1)
    url = http_server.add(PATH, data)
    dest = cache_path(url, cache_dir)
    os.makedirs(os.path.dirname(dest))
    with open(dest + ".part", "wb") as f:
        f.write(make_payload(100_000, seed=2))  # bytes of an older version of the object
    with open(dest + ".part.json", "w") as f:
        f.write('{"size": 200000, "etag": "\\"OLDETAG\\"", "crc64": null, "md5_b64": null}')
    assert open(resolve(url, cache_dir=cache_dir, progress=False), "rb").read() == data
    assert http_server.requests[0][2] == "bytes=100000-"  # asked to resume, If-Range made the server send all


def test_catalog_names_and_relative_paths_use_the_modelzoo_base(http_server, cache_dir, monkeypatch, make_payload):
    monkeypatch.setenv("EASYRETRIEVAL_MODELZOO_URL", http_server.base_url + "/mirror/")
    ckpt = make_payload(20_000)
    http_server.add("/mirror/alibaba-pai/blip/pretrained/model_base_retrieval_flickr.pth", ckpt)
    http_server.add("/mirror/alibaba-pai/blip/flickr30k/annotation/flickr30k_train.json", b'[{"caption": "a"}]')
    assert open(resolve("blip_base_retrieval_flickr", cache_dir=cache_dir, progress=False), "rb").read() == ckpt
    ann = resolve("alibaba-pai/blip/flickr30k/annotation/flickr30k_train.json", cache_dir=cache_dir, progress=False)
    assert open(ann, "rb").read() == b'[{"caption": "a"}]'


def test_unknown_name_suggests_the_closest(cache_dir):
    with pytest.raises(UserError, match=r"unknown model 'blip_base_retreival_flickr' \(did you mean "
                                        r"'blip_base_retrieval_flickr'\?\)"):
        resolve("blip_base_retreival_flickr", cache_dir=cache_dir)


def _tgz(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def test_tokenizer_archive_is_unpacked_to_a_folder(http_server, cache_dir, monkeypatch):
    monkeypatch.setenv("EASYRETRIEVAL_MODELZOO_URL", http_server.base_url + "/")
    url = http_server.add("/public/bert-base-uncased.tgz", _tgz({"bert-base-uncased/vocab.txt": b"[PAD]\n[UNK]\n",
                                                            "bert-base-uncased/config.json": b"{}"}))
    stale = cache_path(url, cache_dir)[: -len(".tgz")] + ".tmp99999"  # a process killed mid-unpack
    os.makedirs(os.path.join(stale, "junk"))
    folder = resolve("easynlp_bert-base-uncased", cache_dir=cache_dir, progress=False)
    assert os.path.isdir(folder) and sorted(os.listdir(folder)) == ["config.json", "vocab.txt"]
    assert resolve("easynlp_bert-base-uncased", cache_dir=cache_dir, local_files_only=True) == folder
    assert not [f for f in _cached_files(cache_dir) if ".tmp" in f] and not os.path.exists(stale)


def test_archive_with_path_traversal_is_refused(http_server, cache_dir, tmp_path):
    url = http_server.add("/evil.tgz", _tgz({"../../escaped.txt": b"gotcha"}))
    with pytest.raises(UserError, match="cannot unpack"):
        resolve(url, cache_dir=cache_dir, progress=False)
    assert not list(tmp_path.rglob("escaped.txt"))


def test_offline_mode_names_what_is_missing_and_where(http_server, cache_dir, monkeypatch, make_payload):
    data = make_payload(1000)
    url = http_server.add(PATH, data)
    monkeypatch.setenv("EASYRETRIEVAL_OFFLINE", "1")
    dest = cache_path(url, cache_dir)
    with pytest.raises(UserError) as info:
        resolve(url, cache_dir=cache_dir)
    assert url in str(info.value) and dest in str(info.value) and "EASYRETRIEVAL_OFFLINE" in str(info.value)
    assert http_server.requests == []
    os.makedirs(os.path.dirname(dest))
    with open(dest, "wb") as f:  # the user copies the file where the message said
        f.write(data)
    assert resolve(url, cache_dir=cache_dir) == dest
    monkeypatch.delenv("EASYRETRIEVAL_OFFLINE")
    with pytest.raises(UserError, match="not in the cache"):
        resolve(url + "?v=2", cache_dir=cache_dir, local_files_only=True)
    assert http_server.requests == []


def test_local_paths_pass_through(tmp_path):
    f = tmp_path / "ckpt.pth"
    f.write_bytes(b"x")
    assert resolve(str(f)) == str(f)
    assert resolve(str(tmp_path)) == str(tmp_path)
    assert resolve("file://" + str(f)) == str(f)
    with pytest.raises(UserError, match="does not exist"):
        resolve(str(tmp_path / "missing.pth"))


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:1/../../../../etc/passwd",
    "http://127.0.0.1:1/a/%2e%2e%2f%2e%2e%2fescape",
    "http://127.0.0.1:1/..",
    "http://..%2f..%2f/x",
    "oss://bucket/../../../../tmp/x",
])
def test_cache_paths_cannot_escape_the_cache(tmp_path, url):
    root = os.path.realpath(tmp_path / "cache")
    path = cache_path(url, root)
    assert path.startswith(root + os.sep) and ".." not in path[len(root):].split(os.sep)
