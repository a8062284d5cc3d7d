"""Retrieval recall of official BLIP `itm_eval`, vectorised, with a deterministic tie rule.

Definitions (official train_retrieval.py `itm_eval`): for each image (text retrieval, "txt") the rank of
its best-ranked ground-truth caption, for each caption (image retrieval, "img") the rank of its image;
R@K = 100 * fraction of queries with rank < K; txt_r_mean = mean(R@1, R@5, R@10), img_r_mean likewise,
r_mean = (txt_r_mean + img_r_mean) / 2.

Tie rule (deterministic): candidates are ordered by score descending and, among equal scores, by LOWER
candidate index first (a stable descending sort). So the rank of candidate j in a row is
    #{c : s[c] > s[j]} + #{c < j : s[c] == s[j]}.
On tie-free rows this equals the official numbers; on ties the official function depends on numpy's
unstable argsort and has no single answer. A query without a ground truth (an image with no caption, or
one marked missing with -1) counts as a miss. NaN scores are rejected.

Two entry points with one semantics: `itm_eval` takes the dense score matrices (official layout,
non-candidates at -100); `itm_eval_topk` takes only each query's re-ranked candidates (indices and
scores) and treats every other candidate as scored `fill` (-100), so the full matrices are never built.
No loop over queries: both work on blocks of rows.
"""
from typing import Dict, Mapping, Sequence, Union

import numpy as np
import torch

FILL_SCORE = -100.0  # official score of a candidate that was not re-ranked
RECALL_AT = (1, 5, 10)
_BLOCK_ELEMENTS = 1 << 24  # rows are processed in blocks of about this many compared elements
_MISS = np.iinfo(np.int64).max


def _as_tensor(x, dtype=None):
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    t = t.detach().cpu()
    return t if dtype is None else t.to(dtype)


def _gt_matrix(gts: Sequence[Sequence[int]]) -> torch.Tensor:
    """Ragged ground-truth lists -> [Q, G] int64 padded with -1 (G >= 1)."""
    width = max([len(g) for g in gts] + [1])
    out = torch.full((len(gts), width), -1, dtype=torch.long)
    for q, g in enumerate(gts):  # builds the index table only; ranking below is vectorised
        if len(g):
            out[q, : len(g)] = torch.as_tensor(list(g), dtype=torch.long)
    return out


def _check_scores(scores: torch.Tensor, name: str):
    if torch.isnan(scores).any():
        raise ValueError(f"{name} holds NaN scores; ranks would be undefined")


def topk_ranks(cand_index, cand_score, gt, num_candidates: int, fill: float = FILL_SCORE) -> torch.Tensor:
    """Rank (0-based, tie rule above) of the best ground truth of each query, from its re-ranked candidates.

    cand_index [Q, k] int (distinct per row; -1 = empty slot), cand_score [Q, k] float, gt [Q, G] int
    (-1 = padding). Every candidate outside the row's `cand_index` has score `fill`.
    Returns int64 [Q]; a query without ground truth gets a huge rank (a miss).
    """
    cand_index = _as_tensor(cand_index, torch.long)
    cand_score = _as_tensor(cand_score, torch.float64)
    gt = _as_tensor(gt, torch.long)
    _check_scores(cand_score, "cand_score")
    num_q, k = cand_index.shape
    if gt.shape[0] != num_q or cand_score.shape != cand_index.shape:
        raise ValueError(f"shapes disagree: cand_index {tuple(cand_index.shape)}, cand_score "
                         f"{tuple(cand_score.shape)}, gt {tuple(gt.shape)}")
    ranks = torch.empty(num_q, dtype=torch.long)
    rows = max(1, _BLOCK_ELEMENTS // max(1, k * gt.shape[1]))
    for start in range(0, num_q, rows):
        idx, score, g = cand_index[start:start + rows], cand_score[start:start + rows], gt[start:start + rows]
        valid = idx >= 0                                                   # [q, k]
        n_cand = valid.sum(1, keepdim=True)                                # [q, 1]
        match = (idx[:, None, :] == g[:, :, None]) & valid[:, None, :]     # [q, G, k]
        is_cand = match.any(-1)                                            # [q, G]
        s_gt = torch.where(is_cand, (score[:, None, :] * match).sum(-1), torch.full_like(is_cand, fill, dtype=score.dtype))
        s_c, i_c = score[:, None, :], idx[:, None, :]
        ahead = valid[:, None, :] & ((s_c > s_gt[..., None]) | ((s_c == s_gt[..., None]) & (i_c < g[..., None])))
        rank = ahead.sum(-1)                                               # candidates ranked before the gt
        # Non-candidates all score `fill`: all are ahead if fill > s_gt, those with a lower index if equal.
        n_non = num_candidates - n_cand
        lower_cands = (valid[:, None, :] & (i_c < g[..., None])).sum(-1)
        lower_non = g - lower_cands  # non-candidates with a lower index than the gt (gt itself excluded)
        fill_t = torch.tensor(fill, dtype=score.dtype)
        rank = rank + torch.where(fill_t > s_gt, n_non.expand_as(rank), torch.zeros_like(rank))
        rank = rank + torch.where(fill_t == s_gt, lower_non, torch.zeros_like(rank))
        rank = torch.where(g >= 0, rank, torch.full_like(rank, _MISS))
        ranks[start:start + rows] = rank.min(1).values
    return ranks


def dense_ranks(scores, gt) -> torch.Tensor:
    """Rank (0-based, tie rule above) of the best ground truth of each row of a dense score matrix [Q, M]."""
    scores = _as_tensor(scores, torch.float64)
    gt = _as_tensor(gt, torch.long)
    _check_scores(scores, "scores")
    num_q, m = scores.shape
    ranks = torch.empty(num_q, dtype=torch.long)
    cols = torch.arange(m)
    rows = max(1, _BLOCK_ELEMENTS // max(1, m * gt.shape[1]))
    for start in range(0, num_q, rows):
        s, g = scores[start:start + rows], gt[start:start + rows]
        s_gt = s.gather(1, g.clamp(min=0))                                 # [q, G]
        ahead = (s[:, None, :] > s_gt[..., None]) | ((s[:, None, :] == s_gt[..., None]) & (cols < g[..., None]))
        rank = ahead.sum(-1)
        rank = torch.where(g >= 0, rank, torch.full_like(rank, _MISS))
        ranks[start:start + rows] = rank.min(1).values
    return ranks


def recall_metrics(txt_ranks, img_ranks) -> Dict[str, float]:
    """The official result dict from per-query ranks (image queries for txt_*, text queries for img_*)."""
    out = {}
    for prefix, ranks in (("txt", txt_ranks), ("img", img_ranks)):
        ranks = _as_tensor(ranks, torch.long)
        if ranks.numel() == 0:
            raise ValueError(f"no {prefix} queries to evaluate")
        for k in RECALL_AT:
            out[f"{prefix}_r{k}"] = 100.0 * float((ranks < k).sum()) / ranks.numel()
        out[f"{prefix}_r_mean"] = sum(out[f"{prefix}_r{k}"] for k in RECALL_AT) / len(RECALL_AT)
    out["r_mean"] = (out["txt_r_mean"] + out["img_r_mean"]) / 2
    order = ["txt_r1", "txt_r5", "txt_r10", "txt_r_mean", "img_r1", "img_r5", "img_r10", "img_r_mean", "r_mean"]
    return {key: out[key] for key in order}


def _ground_truths(txt2img: Union[Mapping[int, int], Sequence[int]], img2txt, num_images: int, num_texts: int):
    img_gt = _gt_matrix([list(img2txt[i]) if i in img2txt else [] for i in range(num_images)]
                        if isinstance(img2txt, Mapping) else [list(g) for g in img2txt])
    txt_gt = torch.as_tensor([int(txt2img[t]) for t in range(num_texts)], dtype=torch.long).view(-1, 1)
    return img_gt, txt_gt


def itm_eval(scores_i2t, scores_t2i, txt2img, img2txt) -> Dict[str, float]:
    """Official `itm_eval` on dense score matrices [N_img, N_txt] and [N_txt, N_img] (tie rule above)."""
    num_images, num_texts = scores_i2t.shape
    if tuple(scores_t2i.shape) != (num_texts, num_images):
        raise ValueError(f"scores_t2i has shape {tuple(scores_t2i.shape)}, expected {(num_texts, num_images)}")
    img_gt, txt_gt = _ground_truths(txt2img, img2txt, num_images, num_texts)
    return recall_metrics(dense_ranks(scores_i2t, img_gt), dense_ranks(scores_t2i, txt_gt))


def itm_eval_topk(i2t_index, i2t_score, t2i_index, t2i_score, txt2img, img2txt, fill: float = FILL_SCORE):
    """`itm_eval` of the dense matrices that hold these candidates' scores and `fill` elsewhere.

    i2t_index/i2t_score [N_img, k1] (candidate texts of each image), t2i_index/t2i_score [N_txt, k2].
    """
    num_images, num_texts = len(i2t_index), len(t2i_index)
    img_gt, txt_gt = _ground_truths(txt2img, img2txt, num_images, num_texts)
    txt_ranks = topk_ranks(i2t_index, i2t_score, img_gt, num_texts, fill)
    img_ranks = topk_ranks(t2i_index, t2i_score, txt_gt, num_images, fill)
    return recall_metrics(txt_ranks, img_ranks)


def dense_from_topk(index, score, num_candidates: int, fill: float = FILL_SCORE) -> torch.Tensor:
    """The dense [Q, num_candidates] float32 matrix of top-k results (`fill` where not re-ranked)."""
    index, score = _as_tensor(index, torch.long), _as_tensor(score, torch.float32)
    out = torch.full((index.shape[0], num_candidates), fill, dtype=torch.float32)
    valid = index >= 0
    rows = torch.arange(index.shape[0])[:, None].expand_as(index)
    out[rows[valid], index[valid]] = score[valid]
    return out
