"""The evaluator equals the official loop (official_reference) on a tiny random model."""
import json
import os

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from appzoo.blip_retrieval.evaluation import RetrievalEvaluator, itm_eval, official_evaluation
from appzoo.blip_retrieval.evaluation.metrics import dense_from_topk
from eval_fixtures import make_model


def reference(model, dataset, k_test, k_test_t2i=None):
    loader = DataLoader(dataset, batch_size=5, shuffle=False)
    return official_evaluation(model, loader, dataset.text, k_test, k_test_t2i=k_test_t2i)


@pytest.mark.parametrize("k_test", [1, 4, 16])
def test_scores_equal_official_loop(tokenizer, gallery, k_test):
    model = make_model(tokenizer, seed=k_test)
    ref = reference(model, gallery, k_test)
    ev = RetrievalEvaluator(k_test=k_test, batch_size=4, progress=False, itm_batch_size=7, images_per_group=3)
    result = ev.evaluate(model, gallery)
    torch.testing.assert_close(result.scores_i2t, ref.scores_i2t, rtol=0, atol=1e-5)
    torch.testing.assert_close(result.scores_t2i, ref.scores_t2i, rtol=0, atol=1e-5)
    assert result.metrics == itm_eval(ref.scores_i2t, ref.scores_t2i, gallery.txt2img, gallery.img2txt)
    # Each distinct pair scored once: never more than the official count of ITM rows.
    assert result.stats["itm_pairs_this_rank"] <= result.stats["itm_pairs_official"]


def test_without_prefix_cache_and_with_left_padding_same_scores(tokenizer, gallery, monkeypatch):
    """The fallbacks of the fast path (prefixes past the memory budget; padding not on the right) agree."""
    from appzoo.blip_retrieval.evaluation import evaluator as evaluator_module

    model = make_model(tokenizer, seed=5)
    fast = RetrievalEvaluator(k_test=4, batch_size=4, progress=False, itm_batch_size=7).evaluate(model, gallery)
    monkeypatch.setattr(evaluator_module, "_PREFIX_CACHE_BYTES", 0)
    plain = RetrievalEvaluator(k_test=4, batch_size=4, progress=False, itm_batch_size=7).evaluate(model, gallery)
    np.testing.assert_allclose(plain.i2t.score, fast.i2t.score, rtol=0, atol=1e-5)
    np.testing.assert_allclose(plain.t2i.score, fast.t2i.score, rtol=0, atol=1e-5)
    lengths = evaluator_module._token_lengths(torch.tensor([[1, 1, 0], [1, 0, 0]]))
    assert lengths.tolist() == [2, 1]
    assert evaluator_module._token_lengths(torch.tensor([[0, 1, 1], [1, 1, 1]])).tolist() == [3, 3]  # left padded


def test_k_test_larger_than_gallery(tokenizer, gallery):
    model = make_model(tokenizer, seed=3)
    num_texts, num_images = len(gallery.text), len(gallery)
    big = RetrievalEvaluator(k_test=1000, batch_size=8, progress=False).evaluate(model, gallery)
    assert big.i2t.index.shape == (num_images, num_texts) and big.t2i.index.shape == (num_texts, num_images)
    ref = reference(model, gallery, num_texts, num_images)  # the official loop needs k <= gallery
    torch.testing.assert_close(big.scores_i2t, ref.scores_i2t, rtol=0, atol=1e-5)
    torch.testing.assert_close(big.scores_t2i, ref.scores_t2i, rtol=0, atol=1e-5)
    assert (big.scores_i2t > -100).all()  # every pair re-ranked
    with pytest.raises(RuntimeError):
        reference(model, gallery, num_images + 1)


def test_rankings_sorted_and_saved(tokenizer, gallery, tmp_path):
    model = make_model(tokenizer, seed=5)
    ev = RetrievalEvaluator(k_test=6, batch_size=8, progress=False)
    result = ev.evaluate(model, gallery)
    assert np.all(np.diff(result.i2t.score, axis=1) <= 0) and np.all(np.diff(result.t2i.score, axis=1) <= 0)
    paths = ev.save(result, str(tmp_path), "test")
    with open(paths["metrics.json"], encoding="utf-8") as handle:
        saved = json.load(handle)
    assert saved["split"] == "test" and saved["r_mean"] == pytest.approx(result.metrics["r_mean"])
    ranks = np.load(paths["rankings.npz"])
    np.testing.assert_array_equal(ranks["t2i_index"], result.t2i.index)
    dense = dense_from_topk(ranks["i2t_index"], ranks["i2t_score"], len(gallery.text))
    torch.testing.assert_close(dense, result.scores_i2t)
    with open(paths["timings.json"], encoding="utf-8") as handle:
        timings = json.load(handle)
    assert timings["stats"]["k_i2t"] == 6 and timings["timings"]["total_s"] > 0
    assert not [f for f in os.listdir(tmp_path) if ".tmp" in f]


def test_restores_train_mode_and_rejects_half_on_cpu(tokenizer, gallery):
    from easyretrieval.errors import UserError

    model = make_model(tokenizer).train()
    RetrievalEvaluator(k_test=2, batch_size=8, progress=False).evaluate(model, gallery)
    assert model.training and model.text_encoder.training
    with pytest.raises(UserError, match="GPU"):
        RetrievalEvaluator(k_test=2, batch_size=8, precision="bf16", progress=False).evaluate(model, gallery)


def test_inference_runs_attention_without_cudnn_and_restores_it(tokenizer):
    """cuDNN attention builds a plan per new shape (slow for the re-rank's many shapes): off inside, restored after."""
    model = make_model(tokenizer, seed=1)
    before = torch.backends.cuda.cudnn_sdp_enabled()
    ev = RetrievalEvaluator(k_test=2, batch_size=4, progress=False)
    with ev.inference(model, torch.device("cpu")):
        assert not torch.backends.cuda.cudnn_sdp_enabled()
        assert torch.backends.cuda.flash_sdp_enabled() and torch.backends.cuda.math_sdp_enabled()
    assert torch.backends.cuda.cudnn_sdp_enabled() == before


def test_rerank_batching_defaults_per_device_and_given_values_win():
    ev = RetrievalEvaluator(k_test=2, batch_size=4, progress=False)
    assert ev.rerank_batching(torch.device("cpu")) == (256, 16)
    assert ev.rerank_batching(torch.device("cuda", 0)) == (4096, 64)
    given = RetrievalEvaluator(k_test=2, batch_size=4, progress=False, itm_batch_size=7, images_per_group=3)
    assert given.rerank_batching(torch.device("cuda", 0)) == (7, 3)
