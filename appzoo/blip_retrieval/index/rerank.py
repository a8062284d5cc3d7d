"""ITM re-ranking of a text query's ITC candidates, scored exactly as the evaluator scores them.

score(text, image) = ITM positive logit + ITC similarity (official salesforce/BLIP
models/blip_retrieval.py evaluation; our evaluator's `two_stage`): the caption is normalised with official
`pre_caption`, its ITM pass starts with [ENC], the image side of the cross-attention (keys/values of every
text layer) is computed once per candidate image, and each caption's image-free prefix once per query.
"""
from typing import Callable

import numpy as np
import torch


def rerank_text_queries(model, texts, rows: np.ndarray, itc: np.ndarray,
                        image_embeds: Callable[[np.ndarray], torch.Tensor], images_per_chunk: int = 1024) -> np.ndarray:
    """ITM + ITC scores of each query's candidates.

    texts: Q query strings; rows: [Q, K] int64 candidate rows of the gallery (-1 = none); itc: [Q, K]
    float32 ITC similarities of those pairs; image_embeds(unique_rows) -> [U, 1+P, Wv] ViT embeddings of
    those rows on the model's device. Queries go in chunks whose distinct candidates number at most about
    `images_per_chunk` (bounds the ViT embeddings held at once). Returns [Q, K] float32 (-inf where rows
    is -1). Call under eval mode and no autograd.
    """
    ids, mask = model._tokens(list(texts))
    lengths = mask.sum(dim=1).tolist()
    scores = np.full(rows.shape, -np.inf, dtype=np.float32)
    per_chunk = max(1, images_per_chunk // max(1, rows.shape[1]))
    for q0 in range(0, rows.shape[0], per_chunk):
        chunk = rows[q0:q0 + per_chunk]
        unique = np.unique(chunk[chunk >= 0])
        if unique.size == 0:
            continue
        embeds = image_embeds(unique)
        slot = {int(r): i for i, r in enumerate(unique)}
        for q in range(q0, q0 + chunk.shape[0]):
            valid = np.flatnonzero(rows[q] >= 0)
            if valid.size == 0:
                continue
            kv = model.cross_kv(embeds[[slot[int(r)] for r in rows[q, valid]]])
            length, count = int(lengths[q]), valid.size
            q_ids, q_mask = ids[q:q + 1, :length], mask[q:q + 1, :length]
            prefix = model.itm_text_prefix(q_ids, q_mask)  # the image-free start of the ITM pass, once
            logits = model.itm_logits_cached(kv, torch.arange(count), q_ids.repeat(count, 1), q_mask.repeat(count, 1),
                                             prefix.repeat(count, 1, 1))
            scores[q, valid] = logits[:, 1].float().cpu().numpy() + itc[q, valid]
    return scores


def order_by_score(rows: np.ndarray, scores: np.ndarray):
    """Rows and scores of one query best first; equal scores by lower row first (the evaluator's tie rule);
    rows of -1 dropped."""
    keep = rows >= 0
    rows, scores = rows[keep], scores[keep]
    order = np.lexsort((rows, -scores.astype(np.float64)))
    return rows[order], scores[order]
