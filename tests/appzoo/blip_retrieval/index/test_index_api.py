"""The Python Index API: search equals embedding everything and ranking by brute force; --rerank scores are
the evaluator's; append equals one build; another model is refused; stored ViT embeddings re-rank the same;
an oss:// prefix (a local OSS-compatible endpoint) gives the index of the same images in a folder."""
import os
import sys

import numpy as np
import pytest
from index_fixtures import NUM_IMAGES, check_html, gallery_paths, make_setup

from appzoo.blip_retrieval import Index
from appzoo.blip_retrieval.data.datasets import RetrievalEvalDataset
from appzoo.blip_retrieval.data.transforms import create_transform
from appzoo.blip_retrieval.evaluation import RetrievalEvaluator
from appzoo.blip_retrieval.reports import write_search_report
from easyretrieval.errors import UserError

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "easyretrieval",
                                "modelzoo"))
from local_servers import oss_test_endpoint  # noqa: E402

K = 6


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("index_api"))
    model, other, gallery, ann, _, _ = make_setup(root)
    index = Index.build(model, gallery, os.path.join(root, "whole"), batch_size=4, commit_every=5, progress=False)
    dataset = RetrievalEvalDataset(ann, os.path.join(root, "images"), create_transform(32, train=False))
    return root, model, other, gallery, index, dataset


def test_search_equals_brute_force_over_all_embeddings(setup):
    _, model, _, gallery, index, dataset = setup
    paths = gallery_paths(gallery)
    assert len(index) == NUM_IMAGES and [f["name"] for f in index.build_report.failed] == ["broken.jpg"]
    image_emb = model.embed_images(paths).numpy()
    text_emb = model.embed_texts(dataset.text).numpy()
    sims = text_emb @ image_emb.T
    results = index.search(model, dataset.text, top_k=5)
    for t, result in enumerate(results):
        order = np.argsort(-sims[t], kind="stable")[:5]
        assert [h.path for h in result.hits] == [paths[i] for i in order]
        np.testing.assert_allclose([h.score for h in result.hits], sims[t][order], atol=1e-5)
        assert [h.rank for h in result.hits] == [1, 2, 3, 4, 5] and result.scored_by == "itc"
    found = index.search_images(model, [paths[3]], top_k=3)[0]
    assert found.hits[0].path == paths[3] and abs(found.hits[0].score - 1) < 1e-5
    assert found.hits[0].id == os.path.relpath(paths[3], gallery)  # "sub/img_0000.jpg": relative to the gallery


def _evaluator_scores(model, dataset):
    result = RetrievalEvaluator(k_test=K, batch_size=4, progress=False, num_workers=0).evaluate(model, dataset)
    return {(t, dataset.image[int(i)]): float(s) for t in range(len(dataset.text))
            for i, s in zip(result.t2i.index[t], result.t2i.score[t])}


def test_rerank_scores_are_the_evaluators_for_the_same_pairs(setup):
    _, model, _, _, index, dataset = setup
    expected = _evaluator_scores(model, dataset)
    results = index.search(model, dataset.text, top_k=K, rerank=K)
    compared = 0
    for t, result in enumerate(results):
        assert result.scored_by == "itm+itc" and len(result.hits) == K
        scores = [h.score for h in result.hits]
        assert scores == sorted(scores, reverse=True)
        for hit in result.hits:
            assert abs(hit.score - expected[(t, os.path.basename(hit.path))]) < 1e-5
            compared += 1
    assert compared == len(dataset.text) * K
    with pytest.raises(UserError, match="rerank=3 re-scores fewer candidates than top_k=5"):
        index.search(model, ["a dog"], top_k=5, rerank=3)


def test_stored_vit_embeddings_rerank_as_the_files_do(setup, tmp_path):
    """float16 ViT embeddings in the index: the same ranking, scores within fp16 rounding of the exact ones."""
    _, model, _, gallery, index, dataset = setup
    stored = Index.build(model, gallery, str(tmp_path / "vit"), store_vit=True, progress=False)
    assert stored.stores_vit and stored.build_report.vit_bytes_per_image == 5 * 64 * 2  # (1 + 2x2 patches) x 64
    texts = dataset.text[:6]
    exact, approx = index.search(model, texts, top_k=K, rerank=K), stored.search(model, texts, top_k=K, rerank=K)
    for a, b in zip(exact, approx):
        assert [h.path for h in a.hits] == [h.path for h in b.hits]
        np.testing.assert_allclose([h.score for h in a.hits], [h.score for h in b.hits], atol=2e-3)


def test_append_gives_the_index_of_one_build(setup, tmp_path):
    _, model, _, gallery, whole, _ = setup
    paths = gallery_paths(gallery) + [os.path.join(gallery, "broken.jpg")]
    folder = str(tmp_path / "parts")
    Index.build(model, paths[:5], folder, progress=False)
    with pytest.raises(UserError, match="holds a finished index; add --append"):
        Index.build(model, paths, folder, progress=False)
    parts = Index.build(model, paths, folder, append=True, commit_every=3, progress=False)
    report = parts.build_report
    assert (report.total, report.embedded, report.already, len(report.failed)) == (NUM_IMAGES, NUM_IMAGES - 5, 5, 1)
    assert [e["id"] for e in parts.gallery.entries] == [e["id"] for e in whole.gallery.entries]
    np.testing.assert_allclose(parts.gallery.features, whole.gallery.features, atol=1e-6)
    queries = np.random.default_rng(0).standard_normal((4, 64)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    assert np.array_equal(parts.gallery.search(queries, 8).row, whole.gallery.search(queries, 8).row)


def test_another_models_index_is_refused(setup):
    root, _, other, gallery, index, _ = setup
    with pytest.raises(UserError, match=r"was built with another model \(weights_sha256: "):
        index.search(other, ["a red dog"], top_k=3)
    with pytest.raises(UserError, match="another model"):
        Index.build(other, gallery, os.path.join(root, "whole"), append=True, progress=False)
    other.load_state_dict(setup[1].state_dict())  # the same weights now: accepted (the cache follows the tensors)
    assert len(index.search(other, ["a red dog"], top_k=3)[0].hits) == 3


def test_search_report_parses_and_shows_every_hit(setup, tmp_path):
    _, model, _, _, index, dataset = setup
    results = index.search(model, dataset.text[:3], top_k=4, rerank=4)
    count, text = check_html(write_search_report(str(tmp_path / "search.html"), results, index))
    assert count == 3 * 4 and dataset.text[0] in text and "ITM positive logit + ITC similarity" in text
    assert all(os.path.basename(h.path) in text for r in results for h in r.hits)


def test_an_oss_prefix_gives_the_index_of_the_same_folder(setup, monkeypatch, tmp_path):
    """Every object under the prefix, recursively (sub/ included), read through oss2; the unreadable one
    is reported, not dropped; ids are relative to the prefix as they are to a folder."""
    _, model, _, gallery, whole, _ = setup
    with oss_test_endpoint(monkeypatch, tmp_path, "LTAI5tIndexKey01", "index-secret-value-7") as server:
        for folder, _, names in os.walk(gallery):
            for name in names:
                with open(os.path.join(folder, name), "rb") as handle:
                    server.add("photos", "trip/" + os.path.relpath(os.path.join(folder, name), gallery), handle.read())
        server.add("photos", "trip/notes.txt", b"not an image")
        remote = Index.build(model, "oss://photos/trip", str(tmp_path / "remote"), batch_size=5, progress=False)
    assert [e["name"] for e in remote.gallery.entries] == [e["name"] for e in whole.gallery.entries]
    assert all(e["path"] == "oss://photos/trip/" + e["name"] for e in remote.gallery.entries)
    np.testing.assert_allclose(remote.gallery.features, whole.gallery.features, atol=1e-6)
    assert [(f["name"], f["path"]) for f in remote.build_report.failed] == [("broken.jpg", "oss://photos/trip/broken.jpg")]
