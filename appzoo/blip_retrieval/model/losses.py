"""BLIP retrieval losses as pure functions (no state, no collectives): ITC with momentum distillation,
ITM hard-negative sampling and the ITM loss, and the ring-buffer write of the feature queues."""
import torch
import torch.nn.functional as F


def itc_targets(idx, idx_queue):
    """Official ITC targets over [batch | queue] columns, [B, B+Q] float32 (models/blip_retrieval.py at
    056a169: `sim_targets = pos_idx / pos_idx.sum(1)`).

    Every column whose image idx equals the row's is a positive: the row's own pair, other captions of the
    same image in the batch, and queue entries written from that image; each row sums to 1. idx: [B] or
    [B, 1] int64; idx_queue: [1, Q] int64 (-100 marks an empty slot, which never matches a real idx).
    """
    idx = idx.view(-1, 1)
    idx_all = torch.cat([idx.t(), idx_queue.view(1, -1).to(idx.dtype)], dim=1)
    pos = torch.eq(idx, idx_all).float()
    return pos / pos.sum(1, keepdim=True)


def distilled_itc_loss(image_feat, text_feat, image_feat_m, text_feat_m, image_queue, text_queue,
                       targets, alpha, temp):
    """Official momentum-distilled image-text contrastive loss (mean of i2t and t2i).

    Features are [B, D] and L2-normalised; queues are [D, Q]; `targets` [B, B+Q]; temp a scalar tensor.
    """
    with torch.no_grad():
        image_feat_m_all = torch.cat([image_feat_m.t(), image_queue], dim=1)
        text_feat_m_all = torch.cat([text_feat_m.t(), text_queue], dim=1)
        sim_i2t_m = image_feat_m @ text_feat_m_all / temp
        sim_t2i_m = text_feat_m @ image_feat_m_all / temp
        i2t_targets = alpha * F.softmax(sim_i2t_m, dim=1) + (1 - alpha) * targets
        t2i_targets = alpha * F.softmax(sim_t2i_m, dim=1) + (1 - alpha) * targets
    sim_i2t = image_feat @ text_feat_m_all / temp
    sim_t2i = text_feat @ image_feat_m_all / temp
    loss_i2t = -torch.sum(F.log_softmax(sim_i2t, dim=1) * i2t_targets, dim=1).mean()
    loss_t2i = -torch.sum(F.log_softmax(sim_t2i, dim=1) * t2i_targets, dim=1).mean()
    return (loss_i2t + loss_t2i) / 2


@torch.no_grad()
def negative_weights(sim, same_idx):
    """Official hard-negative weights: softmax over candidates, pairs with the same idx zeroed.

    A row with no candidate left (every candidate shares its idx; the official code crashes there) gets
    uniform weights over all candidates so that training goes on.
    """
    weights = F.softmax(sim.float(), dim=1).masked_fill(same_idx, 0)
    empty = weights.sum(1) <= 0
    if bool(empty.any()):
        weights[empty] = 1.0
    return weights


@torch.no_grad()
def sample_negatives(weights, generator=None):
    """One candidate index per row, drawn with probability proportional to `weights` (vectorised)."""
    return torch.multinomial(weights, 1, generator=generator).squeeze(1)


def itm_loss(logits, batch):
    """Cross-entropy of ITM logits ordered [B positives, 2B negatives] (official labels 1 then 0)."""
    labels = torch.cat([
        torch.ones(batch, dtype=torch.long, device=logits.device),
        torch.zeros(logits.shape[0] - batch, dtype=torch.long, device=logits.device),
    ])
    return F.cross_entropy(logits.float(), labels)


@torch.no_grad()
def ring_write(queue, ptr, values):
    """Write the columns of `values` [D, n] into `queue` [D, Q] from column `ptr` on, wrapping around.

    Any n is accepted (n > Q keeps the last Q columns). Returns the new pointer (ptr + n) % Q. When Q is a
    multiple of n this is exactly the official `_dequeue_and_enqueue`.
    """
    size = queue.shape[1]
    count = values.shape[1]
    if count > size:
        values = values[:, count - size:]
        start = (ptr + count - size) % size
    else:
        start = ptr
    positions = (start + torch.arange(values.shape[1], device=queue.device)) % size
    queue[:, positions] = values.to(queue.dtype)
    return (ptr + count) % size
