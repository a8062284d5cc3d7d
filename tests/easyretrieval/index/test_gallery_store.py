"""The gallery store: committed shards, resume and append equal one build, FAISS search equals brute force."""
import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from easyretrieval.errors import UserError
from easyretrieval.index import GalleryIndex, GalleryStore

IDENTITY = {"source": "test", "weights_sha256": "abc"}


def unit_rows(n, dim=16, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def entries(ids):
    return [{"id": f"img{i:04d}", "path": f"/data/img{i:04d}.jpg"} for i in ids]


def brute_force(gallery, queries, k):
    scores = queries @ gallery.T
    rows = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, rows, 1), rows


def build(folder, feats, chunks, rank=0, kind="flat"):
    store = GalleryStore.create_or_open(str(folder), IDENTITY, feats.shape[1], kind)
    for ids in chunks:
        store.commit_shard(rank, feats[ids], entries(ids))
    return GalleryIndex.finalize(store)


def test_search_equals_brute_force_over_shards(tmp_path):
    feats, queries = unit_rows(300), unit_rows(7, seed=1)
    index = build(tmp_path / "idx", feats, [range(0, 120), range(120, 300)])
    hits = index.search(queries, 10)
    score, rows = brute_force(feats, queries, 10)
    assert [[index.entries[r]["id"] for r in row] for row in hits.row] == \
        [[f"img{r:04d}" for r in row] for row in rows]
    np.testing.assert_allclose(hits.score, score, atol=1e-5)
    reopened = GalleryIndex.open(str(tmp_path / "idx"))
    assert np.array_equal(reopened.search(queries, 10).row, hits.row)


def test_append_and_resume_give_the_index_of_one_build(tmp_path):
    feats, queries = unit_rows(200), unit_rows(5, seed=2)
    whole = build(tmp_path / "whole", feats, [range(200)])
    # Rank 1 and rank 0 commit in another order and layout; a later "append" adds the rest.
    store = GalleryStore.create_or_open(str(tmp_path / "parts"), IDENTITY, 16)
    store.commit_shard(1, feats[150:], entries(range(150, 200)))
    store.commit_shard(0, feats[:50], entries(range(50)))
    again = GalleryStore.create_or_open(str(tmp_path / "parts"), IDENTITY, 16)  # resume / --append
    todo = [i for i in range(200) if f"img{i:04d}" not in again.committed_ids()]
    assert todo == list(range(50, 150))
    again.commit_shard(0, feats[todo], entries(todo))
    parts = GalleryIndex.finalize(again)
    assert [e["id"] for e in parts.entries] == [e["id"] for e in whole.entries]
    assert np.array_equal(parts.features, whole.features)
    assert np.array_equal(parts.search(queries, 20).row, whole.search(queries, 20).row)


def test_a_shard_without_its_commit_mark_is_not_part_of_the_index(tmp_path):
    feats = unit_rows(40)
    store = GalleryStore.create_or_open(str(tmp_path / "idx"), IDENTITY, 16)
    store.commit_shard(0, feats[:20], entries(range(20)))
    # A build killed after writing features but before the entries: the half shard is ignored, its name
    # is not reused, and the next commit of the same items lands in a new shard.
    np.save(os.path.join(str(tmp_path / "idx"), "shards", "r000-00001.npy"), feats[20:])
    with open(os.path.join(str(tmp_path / "idx"), "shards", "r000-00002.json.tmp123"), "w") as f:
        f.write('{"entries": [')
    assert store.committed_ids() == {f"img{i:04d}" for i in range(20)}
    assert store.commit_shard(0, feats[20:], entries(range(20, 40))) == "r000-00003"
    assert len(GalleryIndex.finalize(store)) == 40


def test_another_models_index_is_refused_naming_the_field(tmp_path):
    build(tmp_path / "idx", unit_rows(10), [range(10)])
    with pytest.raises(UserError, match=r"another model \(weights_sha256: 'abc' in the index, 'xyz' now\)"):
        GalleryStore.create_or_open(str(tmp_path / "idx"), dict(IDENTITY, weights_sha256="xyz"), 16)
    with pytest.raises(UserError, match="is of kind 'flat', not 'hnsw'"):
        GalleryStore.create_or_open(str(tmp_path / "idx"), IDENTITY, 16, "hnsw")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("x")
    with pytest.raises(UserError, match="not empty and holds no index.json"):
        GalleryStore.create_or_open(str(tmp_path / "other"), IDENTITY, 16)
    with pytest.raises(UserError, match="not a gallery index"):
        GalleryIndex.open(str(tmp_path / "other"))


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_kinds_record_their_recall_against_exact(tmp_path, kind):
    feats = unit_rows(2000, dim=32)
    index = build(tmp_path / kind, feats, [range(2000)], kind=kind)
    with open(tmp_path / kind / "faiss.json") as f:
        recall = json.load(f)["recall_at_10_vs_exact"]
    assert 0.5 < recall <= 1.0
    hits = index.search(feats[:20], 1)
    assert (hits.row[:, 0] == np.arange(20)).mean() >= 0.9  # each vector finds itself


def test_failures_are_reported_until_a_later_shard_holds_them(tmp_path):
    store = GalleryStore.create_or_open(str(tmp_path / "idx"), IDENTITY, 16)
    store.record_failures(0, [{"id": "img0001", "path": "/data/img0001.jpg", "error": "truncated"},
                              {"id": "img0002", "path": "/data/img0002.jpg", "error": "not an image"}])
    store.commit_shard(0, unit_rows(1), entries([1]))
    assert [f["id"] for f in store.failures()] == ["img0002"]


def test_extras_come_back_in_row_order(tmp_path):
    feats = unit_rows(30)
    store = GalleryStore.create_or_open(str(tmp_path / "idx"), IDENTITY, 16)
    for ids in ([20, 5, 11], list(range(20, 30))[1:] + [0, 1], [2, 3, 4, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16, 17, 18, 19]):
        vit = np.stack([np.full((3, 4), i, np.float16) for i in ids])
        store.commit_shard(0, feats[ids], entries(ids), {"vit": vit})
    index = GalleryIndex.open(str(tmp_path / "idx"), with_extras=["vit"])
    rows = [0, 7, 29, 15]
    assert index.extras["vit"][rows][:, 0, 0].tolist() == [int(index.entries[r]["id"][3:]) for r in rows]


def test_sigkill_during_a_build_leaves_an_index_that_opens_and_resumes(tmp_path):
    folder = str(tmp_path / "idx")
    script = textwrap.dedent(f"""
        import sys, numpy as np
        sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})
        from test_gallery_store import IDENTITY, entries, unit_rows
        from easyretrieval.index import GalleryStore
        feats = unit_rows(4000, dim=256)
        store = GalleryStore.create_or_open({folder!r}, IDENTITY, 256)
        for start in range(0, 4000, 10):
            store.commit_shard(0, feats[start:start + 10], entries(range(start, start + 10)))
            if start == 100:
                print("committing", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "committing"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = GalleryStore.create_or_open(folder, IDENTITY, 256)
    done = sorted(int(i[3:]) for i in store.committed_ids())
    assert done == list(range(len(done))) and 110 <= len(done) < 4000
    feats = unit_rows(4000, dim=256)
    rest = [i for i in range(4000) if i not in set(done)]
    store.commit_shard(0, feats[rest], entries(rest))
    index = GalleryIndex.finalize(store)
    assert [e["id"] for e in index.entries] == [f"img{i:04d}" for i in range(4000)]
    assert np.array_equal(index.features, feats)
