"""REFERENCE BASELINE: a faithful re-implementation of official BLIP's evaluation loop (single process), for
benchmarks/eval_speed.py and the tests that compare the evaluator with it (not part of the package).

salesforce/BLIP train_retrieval.py `evaluation()`: text features in batches of 256 (padding to
max_length 35), [ENC] at position 0 of the ITM input ids, image features kept on the CPU in fp32, then
one query at a time: ITC top-k_test, the image embeddings repeated k_test times, one cross-encoder pass,
score = ITM positive logit + ITC similarity, -100 elsewhere. It is the yardstick of the tests and of
benchmarks/eval_speed.py; do not optimise it. Like the official code it fails when k_test is larger than
the gallery (torch.topk). It calls only the model's modules (visual_encoder, vision_proj, text_encoder,
text_proj, itm_head, tokenizer), never the evaluator's fast path.
"""
import time
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence

import torch
import torch.nn.functional as F

OFFICIAL_TEXT_BATCH = 256
OFFICIAL_MAX_LENGTH = 35


@dataclass
class ReferenceScores:
    scores_i2t: torch.Tensor  # [N_img, N_txt] float32, -100 where not re-ranked
    scores_t2i: torch.Tensor  # [N_txt, N_img]
    timings: Dict[str, float] = field(default_factory=dict)  # seconds: features, itm_i2t, itm_t2i


def _clock(device) -> float:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


@torch.no_grad()
def official_evaluation(model, image_loader, texts, k_test, device="cpu", k_test_t2i=None,
                        i2t_queries: Optional[Sequence[int]] = None, t2i_queries: Optional[Sequence[int]] = None):
    """The official two-stage scores. `image_loader` yields (images, image indices) of ALL images in order.

    Two additions, neither changing a computed score: `k_test_t2i` (default k_test), a separate k for text
    queries, so that tests can re-rank every candidate of both directions when the gallery is smaller than
    the caption set; `i2t_queries` / `t2i_queries` (default all), the image / text query rows to re-rank,
    so that a benchmark can time the official loop on a fixed sample of queries (other rows stay -100).
    `timings` holds the seconds of the feature stage and of each direction's re-rank loop.
    """
    t_start = _clock(device)
    k_t2i = k_test if k_test_t2i is None else k_test_t2i
    model.eval()
    tokenizer = model.tokenizer
    num_text = len(texts)
    text_ids, text_embeds, text_atts = [], [], []
    for i in range(0, num_text, OFFICIAL_TEXT_BATCH):
        text = texts[i: min(num_text, i + OFFICIAL_TEXT_BATCH)]
        text_input = tokenizer(text, padding="max_length", truncation=True, max_length=OFFICIAL_MAX_LENGTH,
                               return_tensors="pt").to(device)
        text_output = model.text_encoder(text_input.input_ids, text_input.attention_mask)  # mode='text'
        text_embed = F.normalize(model.text_proj(text_output[:, 0, :]))
        text_embeds.append(text_embed)
        text_ids.append(text_input.input_ids)
        text_atts.append(text_input.attention_mask)
    text_embeds = torch.cat(text_embeds, dim=0)
    text_ids = torch.cat(text_ids, dim=0)
    text_atts = torch.cat(text_atts, dim=0)
    text_ids[:, 0] = tokenizer.enc_token_id

    image_feats, image_embeds = [], []
    for image, _img_id in image_loader:
        image = image.to(device)
        image_feat = model.visual_encoder(image)
        image_embed = model.vision_proj(image_feat[:, 0, :])
        image_embed = F.normalize(image_embed, dim=-1)
        image_feats.append(image_feat.cpu())
        image_embeds.append(image_embed)
    image_feats = torch.cat(image_feats, dim=0)
    image_embeds = torch.cat(image_embeds, dim=0)

    sims_matrix = image_embeds @ text_embeds.t()
    t_features = _clock(device)
    score_matrix_i2t = torch.full((image_feats.shape[0], num_text), -100.0).to(device)
    for i in (range(len(sims_matrix)) if i2t_queries is None else i2t_queries):
        sims = sims_matrix[i]
        topk_sim, topk_idx = sims.topk(k=k_test, dim=0)
        encoder_output = image_feats[i].repeat(k_test, 1, 1).to(device)
        output = model.text_encoder.forward_cross(text_ids[topk_idx], text_atts[topk_idx], encoder_output)
        score = model.itm_head(output[:, 0, :])[:, 1]
        score_matrix_i2t[i, topk_idx] = score + topk_sim

    t_i2t = _clock(device)
    sims_matrix = sims_matrix.t()
    score_matrix_t2i = torch.full((num_text, image_feats.shape[0]), -100.0).to(device)
    for i in (range(len(sims_matrix)) if t2i_queries is None else t2i_queries):
        sims = sims_matrix[i]
        topk_sim, topk_idx = sims.topk(k=k_t2i, dim=0)
        encoder_output = image_feats[topk_idx.cpu()].to(device)
        output = model.text_encoder.forward_cross(text_ids[i].repeat(k_t2i, 1), text_atts[i].repeat(k_t2i, 1),
                                                  encoder_output)
        score = model.itm_head(output[:, 0, :])[:, 1]
        score_matrix_t2i[i, topk_idx] = score + topk_sim
    t_end = _clock(device)
    timings = {"features": t_features - t_start, "itm_i2t": t_i2t - t_features, "itm_t2i": t_end - t_i2t}
    return ReferenceScores(score_matrix_i2t.cpu(), score_matrix_t2i.cpu(), timings)
