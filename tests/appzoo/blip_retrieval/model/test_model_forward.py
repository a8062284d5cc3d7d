"""forward() equals a float64 restatement of official BLIP_Retrieval.forward (given the sampled negatives);
negative sampling, queue writes, precision guards and the ITM fast path."""
import copy

import pytest
import torch
import torch.nn.functional as F

from appzoo.blip_retrieval.model import losses

from blip_model_helpers import tiny_model

CAPTIONS = ["a dog runs on the grass", "two children play", "a man rides a red bicycle", "the cat sleeps"]


@torch.no_grad()
def _official_reference(model, image, caption, alpha, idx, neg_image, neg_text):
    """Official forward, float64, eval mode (no dropout), with the hard negatives fixed."""
    m = copy.deepcopy(model).double()
    tok = m.tokenizer(caption, padding="max_length", truncation=True, max_length=35, return_tensors="pt")
    temp = m.temp.clamp(0.001, 0.5)
    image = image.double()
    image_embeds = m.visual_encoder(image)
    image_feat = F.normalize(m.vision_proj(image_embeds[:, 0, :]), dim=-1)
    text_feat = F.normalize(m.text_proj(m.text_encoder(tok.input_ids, tok.attention_mask)[:, 0, :]), dim=-1)
    idx = idx.view(-1, 1)
    idx_all = torch.cat([idx.t(), m.idx_queue], dim=1)
    pos_idx = torch.eq(idx, idx_all).double()
    sim_targets = pos_idx / pos_idx.sum(1, keepdim=True)
    for (_, p, _, p_m) in m.momentum_pairs():
        p_m.data = p_m.data * m.config.momentum + p.data * (1.0 - m.config.momentum)
    image_feat_m = F.normalize(m.vision_proj_m(m.visual_encoder_m(image)[:, 0, :]), dim=-1)
    text_feat_m = F.normalize(m.text_proj_m(m.text_encoder_m(tok.input_ids, tok.attention_mask)[:, 0, :]), dim=-1)
    image_feat_m_all = torch.cat([image_feat_m.t(), m.image_queue.double()], dim=1)
    text_feat_m_all = torch.cat([text_feat_m.t(), m.text_queue.double()], dim=1)
    sim_i2t_targets = alpha * F.softmax(image_feat_m @ text_feat_m_all / temp, 1) + (1 - alpha) * sim_targets
    sim_t2i_targets = alpha * F.softmax(text_feat_m @ image_feat_m_all / temp, 1) + (1 - alpha) * sim_targets
    loss_i2t = -torch.sum(F.log_softmax(image_feat @ text_feat_m_all / temp, 1) * sim_i2t_targets, 1).mean()
    loss_t2i = -torch.sum(F.log_softmax(text_feat @ image_feat_m_all / temp, 1) * sim_t2i_targets, 1).mean()
    loss_ita = (loss_i2t + loss_t2i) / 2
    enc = tok.input_ids.clone()
    enc[:, 0] = m.tokenizer.enc_token_id
    atts = tok.attention_mask
    pos = m.text_encoder(enc, atts, image_embeds=image_embeds)
    neg = m.text_encoder(torch.cat([enc, enc[neg_text]]), torch.cat([atts, atts[neg_text]]),
                         image_embeds=torch.cat([image_embeds[neg_image], image_embeds]))
    logits = m.itm_head(torch.cat([pos[:, 0, :], neg[:, 0, :]]))
    bs = len(idx)
    labels = torch.cat([torch.ones(bs, dtype=torch.long), torch.zeros(2 * bs, dtype=torch.long)])
    return loss_ita, F.cross_entropy(logits, labels), image_feat_m, text_feat_m


def test_forward_equals_official_restatement(tokenizer):
    model = tiny_model(tokenizer, seed=0, queue_size=6).eval()
    image = torch.randn(4, 3, 32, 32)
    idx = torch.tensor([7, 3, 7, 5])
    for step in range(2):  # the second step sees a filled, wrapped queue and moved momentum encoders
        before = copy.deepcopy(model)
        out = model(image + step, CAPTIONS, alpha=0.4, idx=idx)
        loss_ita, loss_itm = out
        ref_ita, ref_itm, feat_m, text_m = _official_reference(
            before, image + step, CAPTIONS, 0.4, idx, out.neg_image_index, out.neg_text_index)
        torch.testing.assert_close(loss_ita.double(), ref_ita, atol=2e-6, rtol=1e-6)
        torch.testing.assert_close(loss_itm.double(), ref_itm, atol=2e-6, rtol=1e-6)
        same = idx.view(-1, 1) == idx.view(1, -1)
        assert not same[torch.arange(4), out.neg_image_index].any()  # never a same-idx "negative"
        assert not same[torch.arange(4), out.neg_text_index].any()
        cols = (torch.arange(4) + 4 * step) % 6
        torch.testing.assert_close(model.image_queue[:, cols].double(), feat_m.t(), atol=1e-6, rtol=0)
        torch.testing.assert_close(model.text_queue[:, cols].double(), text_m.t(), atol=1e-6, rtol=0)
        assert model.idx_queue[0, cols].tolist() == idx.tolist()
    assert model.ptr_queue.item() == 8 % 6
    (loss_ita + loss_itm).backward()
    assert model.temp.grad is not None and model.visual_encoder.cls_token.grad is not None


def test_itc_targets_are_idx_aware_over_batch_and_queue():
    """Official 056a169: every batch or queue column with the row's idx is a positive, rows sum to 1."""
    idx = torch.tensor([7, 3, 7])
    idx_queue = torch.tensor([[-100, 3, 7, 5]])
    targets = losses.itc_targets(idx, idx_queue)
    expected = torch.tensor([
        [1 / 3, 0, 1 / 3, 0, 0, 1 / 3, 0],  # idx 7: itself, batch row 2, queue slot 2
        [0, 1 / 2, 0, 0, 1 / 2, 0, 0],      # idx 3: itself, queue slot 1
        [1 / 3, 0, 1 / 3, 0, 0, 1 / 3, 0],
    ])
    assert targets.dtype == torch.float32
    torch.testing.assert_close(targets, expected)
    alone = losses.itc_targets(torch.tensor([1, 2]), torch.full((1, 3), -100))
    torch.testing.assert_close(alone, torch.eye(2, 5))  # no shared idx: the identity on the batch block


def test_sampling_follows_softmax_weights():
    sim = torch.tensor([[0.0, 1.0, 2.0, 0.5]] * 20000)
    mask = torch.tensor([[True, False, False, False]] * 20000)
    weights = losses.negative_weights(sim, mask)
    picks = losses.sample_negatives(weights, torch.Generator().manual_seed(0))
    freq = torch.bincount(picks, minlength=4).double() / len(picks)
    expected = F.softmax(sim[0].double(), 0).masked_fill(mask[0], 0)
    torch.testing.assert_close(freq, expected / expected.sum(), atol=0.015, rtol=0)
    lonely = losses.negative_weights(torch.zeros(2, 2), torch.ones(2, 2, dtype=torch.bool))
    assert torch.equal(lonely, torch.ones(2, 2))  # every candidate shares the idx: uniform, not a crash


@pytest.mark.parametrize("size,batch", [(10, 3), (10, 4), (5, 7), (6, 6), (7, 1)])
def test_queue_wraps_for_awkward_batches(size, batch):
    queue = torch.zeros(1, size)
    ptr, written, model_q = 0, [], [0.0] * size
    for step in range(5):
        values = torch.arange(step * batch, (step + 1) * batch, dtype=torch.float32).view(1, -1) + 1
        new_ptr = losses.ring_write(queue, ptr, values)
        for j, v in enumerate(values[0].tolist()):  # reference: one column at a time
            model_q[(ptr + j) % size] = v
        ptr = new_ptr
        written.append(values)
        assert queue[0].tolist() == model_q
        assert ptr == (step + 1) * batch % size


def test_queues_stay_float32_when_cast(tokenizer):
    model = tiny_model(tokenizer).bfloat16()
    assert model.image_queue.dtype == torch.float32 and model.text_queue.dtype == torch.float32
    assert model.idx_queue.dtype == torch.int64 and model.ptr_queue.dtype == torch.int64
    assert model.vision_proj.weight.dtype == torch.bfloat16
    model.half()
    assert model.image_queue.dtype == torch.float32
    loss_ita, loss_itm = model(torch.randn(2, 3, 32, 32), CAPTIONS[:2], alpha=0.4, idx=torch.tensor([0, 1]))
    assert torch.isfinite(loss_ita) and torch.isfinite(loss_itm) and model.image_queue.dtype == torch.float32


@torch.no_grad()
def test_itm_fast_path_equals_itm_logits(tokenizer):
    model = tiny_model(tokenizer).eval()
    text = tokenizer(CAPTIONS, padding="max_length", truncation=True, max_length=35, return_tensors="pt")
    embeds = model.encode_image(torch.randn(3, 3, 32, 32))
    index = torch.tensor([2, 0, 1, 2])
    expected = model.itm_logits(embeds[index], text.input_ids, text.attention_mask)
    got = model.itm_logits_cached(model.cross_kv(embeds), index, text.input_ids, text.attention_mask)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert expected.shape == (4, 2)


@torch.no_grad()
def test_itm_fast_path_uneven_groups_equals_itm_logits(tokenizer):
    """1 text for one image, 7 for another, images with none; sorted, unsorted and as a plan."""
    from appzoo.blip_retrieval.model.text_encoder import plan_cross_groups

    model = tiny_model(tokenizer).eval()
    captions = [CAPTIONS[i % len(CAPTIONS)] + " " + "dog" * (i % 3) for i in range(8)]
    text = tokenizer(captions, padding="max_length", truncation=True, max_length=35, return_tensors="pt")
    embeds = model.encode_image(torch.randn(5, 3, 32, 32))
    cache = model.cross_kv(embeds)
    for index in (torch.tensor([1] + [3] * 7), torch.tensor([3, 3, 1, 3, 3, 3, 3, 3])):
        expected = model.itm_logits(embeds[index], text.input_ids, text.attention_mask)
        got = model.itm_logits_cached(cache, index, text.input_ids, text.attention_mask)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
        planned = model.itm_logits_cached(cache, plan_cross_groups(index, 5), text.input_ids, text.attention_mask)
        torch.testing.assert_close(planned, expected, atol=1e-5, rtol=0)


def test_all_rank_negatives_are_drawn_from_image_text_similarities(tokenizer):
    """negative_all_rank (official): images against every rank's texts and texts against every rank's images;
    in one process that is the same as the local draw, negatives and losses included."""
    all_rank = tiny_model(tokenizer, seed=0, negative_all_rank=True).eval()
    local = tiny_model(tokenizer, seed=0).eval()
    image_feat = F.normalize(torch.randn(3, 8), dim=-1)
    text_feat = F.normalize(torch.randn(3, 8), dim=-1)
    idx = torch.tensor([[1], [2], [1]])
    temp = torch.tensor(0.07)
    sim_i2t, sim_t2i, same = all_rank.negative_similarities(image_feat, text_feat, idx, idx, temp)
    torch.testing.assert_close(sim_i2t, image_feat @ text_feat.t() / temp, atol=0, rtol=0)
    torch.testing.assert_close(sim_t2i, text_feat @ image_feat.t() / temp, atol=0, rtol=0)
    assert same.tolist() == [[True, False, True], [False, True, False], [True, False, True]]
    for got, want in zip(local.negative_similarities(image_feat, text_feat, idx, idx, temp), (sim_i2t, sim_t2i, same)):
        assert torch.equal(got, want)
    image, idx = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 0])
    torch.manual_seed(5)
    a = all_rank(image, CAPTIONS, alpha=0.4, idx=idx)
    torch.manual_seed(5)
    b = local(image, CAPTIONS, alpha=0.4, idx=idx)
    assert torch.equal(a.neg_image_index, b.neg_image_index) and torch.equal(a.neg_text_index, b.neg_text_index)
    assert torch.equal(a.loss_ita, b.loss_ita) and torch.equal(a.loss_itm, b.loss_itm)
