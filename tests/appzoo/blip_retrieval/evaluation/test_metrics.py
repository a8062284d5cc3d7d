"""metrics.py against a straightforward copy of official itm_eval, and the stated tie rule."""
import numpy as np
import pytest
import torch

from appzoo.blip_retrieval.evaluation.metrics import (
    dense_from_topk,
    dense_ranks,
    itm_eval,
    itm_eval_topk,
    topk_ranks,
)


def official_itm_eval(scores_i2t, scores_t2i, txt2img, img2txt):
    """The official loop (train_retrieval.py itm_eval), written out as the reference."""
    ranks = np.zeros(scores_i2t.shape[0])
    for index, score in enumerate(scores_i2t):
        inds = np.argsort(score)[::-1]
        rank = 1e20
        for i in img2txt[index]:
            tmp = np.where(inds == i)[0][0]
            if tmp < rank:
                rank = tmp
        ranks[index] = rank
    tr1, tr5, tr10 = (100.0 * len(np.where(ranks < k)[0]) / len(ranks) for k in (1, 5, 10))
    ranks = np.zeros(scores_t2i.shape[0])
    for index, score in enumerate(scores_t2i):
        inds = np.argsort(score)[::-1]
        ranks[index] = np.where(inds == txt2img[index])[0][0]
    ir1, ir5, ir10 = (100.0 * len(np.where(ranks < k)[0]) / len(ranks) for k in (1, 5, 10))
    tr_mean, ir_mean = (tr1 + tr5 + tr10) / 3, (ir1 + ir5 + ir10) / 3
    return {"txt_r1": tr1, "txt_r5": tr5, "txt_r10": tr10, "txt_r_mean": tr_mean, "img_r1": ir1, "img_r5": ir5,
            "img_r10": ir10, "img_r_mean": ir_mean, "r_mean": (tr_mean + ir_mean) / 2}


def random_gt(rng, num_images, per_image):
    img2txt, txt2img, t = {}, {}, 0
    for i in range(num_images):
        n = int(rng.integers(1, per_image + 1))
        img2txt[i] = list(range(t, t + n))
        txt2img.update({j: i for j in img2txt[i]})
        t += n
    return img2txt, txt2img, t


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dense_equals_official_on_tie_free(seed):
    rng = np.random.default_rng(seed)
    img2txt, txt2img, num_texts = random_gt(rng, 40, 6)
    # A correlated signal so that recalls are neither 0 nor 100.
    base = rng.normal(size=(40, num_texts))
    for i, ts in img2txt.items():
        base[i, ts] += 2.0
    s_i2t, s_t2i = base, base.T + rng.normal(scale=0.5, size=(num_texts, 40))
    ours = itm_eval(torch.tensor(s_i2t), torch.tensor(s_t2i), txt2img, img2txt)
    ref = official_itm_eval(s_i2t, s_t2i, txt2img, img2txt)
    assert list(ours) == list(ref)
    for key in ref:
        assert ours[key] == pytest.approx(ref[key], abs=1e-9), key
    assert 0 < ours["txt_r1"] < 100 and 0 < ours["img_r5"] < 100


@pytest.mark.parametrize("k", [1, 3, 7, 60])
def test_topk_equals_dense_with_fill_on_random(k):
    """itm_eval_topk must equal itm_eval of the official dense matrices (-100 where not re-ranked)."""
    rng = np.random.default_rng(k)
    img2txt, txt2img, num_texts = random_gt(rng, 30, 5)
    num_images = 30
    k_i, k_t = min(k, num_texts), min(k, num_images)
    i2t_idx = np.stack([rng.permutation(num_texts)[:k_i] for _ in range(num_images)])
    t2i_idx = np.stack([rng.permutation(num_images)[:k_t] for _ in range(num_texts)])
    i2t_s, t2i_s = rng.normal(size=i2t_idx.shape), rng.normal(size=t2i_idx.shape)
    dense_i2t = dense_from_topk(i2t_idx, i2t_s, num_texts)
    dense_t2i = dense_from_topk(t2i_idx, t2i_s, num_images)
    ours = itm_eval_topk(i2t_idx, torch.tensor(i2t_s).float(), t2i_idx, torch.tensor(t2i_s).float(), txt2img, img2txt)
    assert ours == itm_eval(dense_i2t, dense_t2i, txt2img, img2txt)


def test_tie_rule_lower_index_first_dense():
    # Row 0: all equal -> candidate j has rank j. Row 1: gt 2 ties with 0 (ahead) and 3 (behind); 1 is higher.
    scores = torch.tensor([[0.5, 0.5, 0.5, 0.5], [0.2, 0.9, 0.2, 0.2]])
    assert dense_ranks(scores, torch.tensor([[0], [2]])).tolist() == [0, 2]
    assert dense_ranks(scores, torch.tensor([[3], [0]])).tolist() == [3, 1]
    # Best of several ground truths; -1 is padding.
    assert dense_ranks(scores, torch.tensor([[3, 1], [3, -1]])).tolist() == [1, 3]


def test_tie_rule_topk_fill_and_candidate_ties():
    # 6 candidates; re-ranked: 4 (score -100, ties with the fill) and 1 (score 3).
    idx, score = torch.tensor([[4, 1]]), torch.tensor([[-100.0, 3.0]])
    # Order by the rule: 1 (3.0), then all -100 by index: 0, 2, 3, 4, 5.
    expect = {1: 0, 0: 1, 2: 2, 3: 3, 4: 4, 5: 5}
    for gt, rank in expect.items():
        assert topk_ranks(idx, score, torch.tensor([[gt]]), 6).tolist() == [rank], gt
        dense = dense_from_topk(idx, score, 6)
        assert dense_ranks(dense, torch.tensor([[gt]])).tolist() == [rank], gt


def test_candidate_scored_below_fill_is_ranked_after_non_candidates():
    idx, score = torch.tensor([[2, 0]]), torch.tensor([[-150.0, 1.0]])
    assert topk_ranks(idx, score, torch.tensor([[2]]), 4).tolist() == [3]  # 0, then 1 and 3 (fill), then 2


def test_missing_ground_truth_is_a_miss():
    scores = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    out = itm_eval(scores, scores, {0: -1, 1: 1}, {0: [], 1: [1]})
    assert out["txt_r10"] == 50.0 and out["img_r10"] == 50.0


def test_nan_is_rejected():
    with pytest.raises(ValueError, match="NaN"):
        dense_ranks(torch.tensor([[float("nan"), 1.0]]), torch.tensor([[0]]))


def test_no_python_loop_over_queries_large():
    """5,000 x 1,000 dense plus top-k: works in blocks (this is a shape test, not a timing)."""
    rng = np.random.default_rng(0)
    scores = torch.tensor(rng.normal(size=(5000, 1000)))
    gt = torch.tensor(rng.integers(0, 1000, size=(5000, 1)))
    ranks = dense_ranks(scores, gt)
    assert ranks.shape == (5000,) and int(ranks.max()) < 1000
