"""easyretrieval.fileio on local paths and on oss:// through oss2 against a local OSS-compatible endpoint."""
import multiprocessing
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "modelzoo"))
from local_servers import oss_test_endpoint  # noqa: E402

from easyretrieval import fileio  # noqa: E402
from easyretrieval.modelzoo import _oss  # noqa: E402

KEY_ID, SECRET = "LTAI5tFileioKey01", "fileio-secret-value-42"


@pytest.fixture
def oss(monkeypatch, tmp_path):
    with oss_test_endpoint(monkeypatch, tmp_path, KEY_ID, SECRET) as server:
        server.add("data", "flickr/annotation/train.json", b'[{"image": "a.jpg", "caption": ["x"]}]')
        server.add("data", "flickr/images/a.jpg", b"\xff\xd8jpeg-bytes")
        server.add("data", "flickr/images/b.jpg", b"\xff\xd8other")
        yield server


def test_local_files(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.txt").write_text("héllo", encoding="utf-8")
    root = str(tmp_path)
    path = fileio.join(root, "d/x.txt")
    assert fileio.read_bytes(path) == "héllo".encode() and fileio.read_text(path) == "héllo"
    with fileio.open_text(path) as f:
        assert f.read() == "héllo"
    assert fileio.exists(path) and fileio.exists(fileio.join(root, "d")) and not fileio.exists(root + "/nope")
    assert fileio.listdir(fileio.join(root, "d")) == ["x.txt"]
    assert fileio.join(root, "/abs/p") == "/abs/p" and fileio.join(root, "oss://b/k") == "oss://b/k"
    with pytest.raises(FileNotFoundError):
        fileio.read_bytes(root + "/nope")


def test_oss_read_exists_list(oss):
    root = "oss://data/flickr"
    assert fileio.join(root, "images/a.jpg") == "oss://data/flickr/images/a.jpg"
    assert fileio.read_bytes(fileio.join(root, "images/a.jpg")) == b"\xff\xd8jpeg-bytes"
    assert fileio.read_text(fileio.join(root, "annotation/train.json")).startswith('[{"image"')
    with fileio.open_text(fileio.join(root, "annotation/train.json")) as f:
        assert '"caption"' in f.read()
    assert fileio.exists("oss://data/flickr/images/a.jpg")  # HEAD (signed)
    assert fileio.exists("oss://data/flickr/images") and fileio.exists("oss://data/flickr/images/")  # a prefix
    assert not fileio.exists("oss://data/flickr/images/zz.jpg") and not fileio.exists("oss://data/nothing")
    assert fileio.listdir(root) == ["annotation", "images"]
    assert fileio.listdir("oss://data/flickr/images/") == ["a.jpg", "b.jpg"]
    assert oss.auth_failures == 0


def test_oss_missing_and_denied_map_to_os_errors(oss, monkeypatch):
    with pytest.raises(FileNotFoundError, match="oss://data/flickr/images/zz.jpg"):
        fileio.read_bytes("oss://data/flickr/images/zz.jpg")
    with pytest.raises(FileNotFoundError):
        fileio.listdir("oss://data/empty")
    monkeypatch.setenv("OSS_ACCESS_KEY_SECRET", "wrong-" + SECRET)
    with pytest.raises(PermissionError) as info:
        fileio.read_bytes("oss://data/flickr/images/a.jpg")
    assert SECRET not in str(info.value) and KEY_ID not in str(info.value)


@pytest.mark.parametrize("faults", [("500",), ("503", "drop"), ("corrupt",), ("short", "500")])
def test_oss_transient_errors_are_retried(oss, faults):
    oss.inject("/data/flickr/images/a.jpg", *faults)
    assert fileio.read_bytes("oss://data/flickr/images/a.jpg") == b"\xff\xd8jpeg-bytes"
    assert oss.gets("/data/flickr/images/a.jpg") == len(faults) + 1


def test_oss_gives_up_after_retries(oss):
    oss.inject("/data/flickr/images/a.jpg", *["500"] * (fileio.RETRIES + 1))
    with pytest.raises(OSError, match=r"OSS error 500.*after 5 attempts"):
        fileio.read_bytes("oss://data/flickr/images/a.jpg")


def _bucket_identity(parent_pid, queue):
    inherited = [b for k, b in _oss._BUCKETS.items() if k[0] == parent_pid and k[2] == "data"]
    bucket = _oss.get_bucket("data")
    size = len(fileio.read_bytes("oss://data/flickr/images/b.jpg"))
    queue.put((len(inherited), all(bucket is not b for b in inherited), bucket is _oss.get_bucket("data"), size))


def test_one_bucket_per_process(oss):
    assert _oss.get_bucket("data") is _oss.get_bucket("data")
    assert _oss.get_bucket("data") is not _oss.get_bucket("other")
    ctx = multiprocessing.get_context("fork")  # like DataLoader workers: each must build its own Bucket
    queue = ctx.Queue()
    procs = [ctx.Process(target=_bucket_identity, args=(os.getpid(), queue)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(timeout=10)
    # each child saw the parent's Bucket, built its own, reused it, and read through it
    assert results == [(1, True, True, 7)] * 2


def test_write_dir_replaces_whole_and_recovers_from_a_killed_writer(tmp_path):
    from easyretrieval.fileio import write_dir

    dest = tmp_path / "best"

    def writer(text):
        def write(tmp):
            (tmp_path / "seen").write_text(str(os.path.exists(dest / "a.txt")))  # the old folder is still there
            with open(os.path.join(tmp, "a.txt"), "w") as handle:
                handle.write(text)
        return write

    write_dir(str(dest), writer("one"))
    write_dir(str(dest), writer("two"))
    assert (dest / "a.txt").read_text() == "two" and (tmp_path / "seen").read_text() == "True"
    assert sorted(os.listdir(tmp_path)) == ["best", "seen"]
    # killed between its two renames: the old folder was moved aside and the new one not yet in place
    os.rename(dest, tmp_path / "best.old-4242")
    (tmp_path / "best.tmp-4242").mkdir()

    def failing(tmp):
        assert (dest / "a.txt").read_text() == "two"  # put back before anything else
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_dir(str(dest), failing)
    assert (dest / "a.txt").read_text() == "two" and sorted(os.listdir(tmp_path)) == ["best", "seen"]
