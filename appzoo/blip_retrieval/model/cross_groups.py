"""Copy-free cross-attention of many texts to cached image keys/values (the ITM re-rank fast path).

BLIP's cross-attention has no mask over image tokens, and each text token's query attends only to the
image tokens, so the texts paired with the same image can be laid end to end along the query-sequence
axis and attend to that image's keys/values in one call: queries [G, heads, C*L, d] against keys
[G, heads, P, d], where G images each have C texts of L tokens. That is the same math as one row per
pair, without materialising a [pairs, heads, P, d] copy of the keys/values per layer.

`plan_cross_groups` (index arithmetic, once per forward): rows sorted by image with few distinct runs
(the evaluator's batches) attend as views, one call per run of equal groups, nothing copied or padded;
otherwise the images go into buckets of similar text counts, each padded (repeating a real query row) to
its largest count, at most `slack` times its real rows. `grouped_cross_attention` (per layer) runs one scaled_dot_product_attention per bucket.
"""
import math
from dataclasses import dataclass
from typing import List, Optional, Union

import torch
import torch.nn.functional as F

DEFAULT_SLACK = 1.25  # padded query rows per real row a bucket may hold
MAX_VIEW_BUCKETS = 8  # sorted rows: up to this many runs of equal groups attend as views (no padding, no gather)


@dataclass
class Bucket:
    """Groups (one image each) padded to `count` rows, attending together.

    images: the cached images (a slice when consecutive, so keys/values are a view); rows: a slice when
    the bucket's rows are already a contiguous, unpadded, ordered block of the input, else `src` (input
    row of each real query row), `slot` (its row in the padded [G*count] layout) and `fill` (the input
    row copied into each padded slot; padding slots repeat a real row of their group, whose output is
    dropped, so no slot holds uninitialised values).
    """

    images: Union[slice, torch.Tensor]
    count: int
    num_groups: int
    rows: Optional[slice] = None
    src: Optional[torch.Tensor] = None
    slot: Optional[torch.Tensor] = None
    fill: Optional[torch.Tensor] = None  # [G*count] input row of each padded slot (padding: a real row of its group)


@dataclass
class CrossGroups:
    """Which cached image each input row attends to, as buckets of per-image groups."""

    num_rows: int
    buckets: List[Bucket]

    def to(self, device):
        """Index tensors moved to `device` (once per forward, not per layer)."""
        moved = []
        for b in self.buckets:
            images = b.images if isinstance(b.images, slice) else b.images.to(device, non_blocking=True)
            src = None if b.src is None else b.src.to(device, non_blocking=True)
            slot = None if b.slot is None else b.slot.to(device, non_blocking=True)
            fill = None if b.fill is None else b.fill.to(device, non_blocking=True)
            moved.append(Bucket(images, b.count, b.num_groups, b.rows, src, slot, fill))
        return CrossGroups(self.num_rows, moved)

    @property
    def padded_rows(self):
        return sum(b.count * b.num_groups for b in self.buckets)


def _bucket_groups(counts: List[int], slack: float) -> List[List[int]]:
    """Groups by count, largest first; a bucket grows while count_max * groups <= slack * real rows."""
    order = sorted(range(len(counts)), key=lambda g: (-counts[g], g))
    buckets, current, top, total = [], [], 0, 0
    for g in order:
        if current and (len(current) + 1) * top > slack * (total + counts[g]):
            buckets.append(current)
            current = []
        if not current:
            top, total = counts[g], 0
        current.append(g)
        total += counts[g]
    if current:
        buckets.append(current)
    return [sorted(b) for b in buckets]


def _view_buckets(ids: List[int], counts: List[int]) -> List[Bucket]:
    """Rows sorted by image: runs of consecutive images with equal counts, each a view of rows and keys."""
    buckets, row, g = [], 0, 0
    while g < len(ids):
        end = g + 1
        while end < len(ids) and counts[end] == counts[g] and ids[end] == ids[end - 1] + 1:
            end += 1
        size = counts[g] * (end - g)
        buckets.append(Bucket(slice(ids[g], ids[end - 1] + 1), counts[g], end - g, rows=slice(row, row + size)))
        row, g = row + size, end
    return buckets


def plan_cross_groups(image_index: torch.Tensor, num_images: int, slack: float = DEFAULT_SLACK) -> CrossGroups:
    """Plan for rows whose image (in a cached set of `num_images`) is `image_index` [N] (any order).

    Computed on the CPU (pass a CPU index to avoid a device sync); rows already sorted by image, as the
    evaluator passes them, give contiguous row slices.
    """
    if slack < 1.0:
        raise ValueError(f"slack must be >= 1, got {slack}")
    index = image_index.detach().to("cpu", torch.long).reshape(-1)
    n = index.numel()
    if n == 0:
        return CrossGroups(0, [])
    low, high = int(index.min()), int(index.max())
    if low < 0 or high >= num_images:
        raise IndexError(f"image_index holds {low}..{high}, outside the {num_images} cached images")
    order = torch.argsort(index, stable=True)
    ids, counts = torch.unique_consecutive(index[order], return_counts=True)
    starts = torch.cumsum(counts, 0) - counts
    group_of_row = torch.repeat_interleave(torch.arange(ids.numel()), counts)  # in sorted order
    pos_in_group = torch.arange(n) - starts[group_of_row]
    counts_list, ids_list = counts.tolist(), ids.tolist()
    if torch.equal(order, torch.arange(n)):  # rows sorted by image (the evaluator's batches)
        views = _view_buckets(ids_list, counts_list)
        if len(views) <= MAX_VIEW_BUCKETS:
            return CrossGroups(n, views)
    buckets = []
    for groups in _bucket_groups(counts_list, slack):
        count = max(counts_list[g] for g in groups)
        local = torch.full((ids.numel(),), -1, dtype=torch.long)
        local[groups] = torch.arange(len(groups))
        member = local[group_of_row] >= 0
        src = order[member]
        slot = local[group_of_row[member]] * count + pos_in_group[member]
        bucket_ids = [ids_list[g] for g in groups]
        consecutive = bucket_ids == list(range(bucket_ids[0], bucket_ids[0] + len(groups)))
        images = slice(bucket_ids[0], bucket_ids[-1] + 1) if consecutive else torch.tensor(bucket_ids)
        size = src.numel()
        r0 = int(src[0])
        if size == count * len(groups) and torch.equal(src, torch.arange(r0, r0 + size)):
            buckets.append(Bucket(images, count, len(groups), rows=slice(r0, r0 + size)))
        else:
            first = order[starts[groups]]  # a real row of each group
            fill = first.repeat_interleave(count)
            fill[slot] = src
            buckets.append(Bucket(images, count, len(groups), src=src, slot=slot, fill=fill))
    return CrossGroups(n, buckets)


def _select(tensor, images):
    return tensor[images] if isinstance(images, slice) else tensor.index_select(0, images)


def grouped_cross_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, groups: CrossGroups,
                            num_heads: int, dropout_p: float = 0.0) -> torch.Tensor:
    """query [N, L, heads*d] (projected, rows as planned); key/value [num_images, heads, P, d] (cached).

    Returns the attention context [N, L, heads*d], row n computed against its own image only.
    """
    n, length, width = query.shape
    if n != groups.num_rows:
        raise ValueError(f"{n} query rows but the plan has {groups.num_rows}")
    head_dim = width // num_heads
    if key.dtype != query.dtype:
        key, value = key.to(query.dtype), value.to(query.dtype)
    tiled = all(b.rows is not None for b in groups.buckets) and [(b.rows.start, b.rows.stop) for b in groups.buckets] \
        == list(zip([0] + [b.rows.stop for b in groups.buckets[:-1]], [b.rows.stop for b in groups.buckets]))
    out = [] if tiled else query.new_empty(n, length, width)  # tiled: the buckets' rows in order, cat at the end
    for b in groups.buckets:
        if b.rows is not None:
            q = query[b.rows]
        else:
            q = query.index_select(0, b.fill)
        q = q.reshape(b.num_groups, b.count * length, num_heads, head_dim).transpose(1, 2)
        context = F.scaled_dot_product_attention(q, _select(key, b.images), _select(value, b.images),
                                                 dropout_p=dropout_p, scale=1.0 / math.sqrt(head_dim))
        context = context.transpose(1, 2).reshape(b.num_groups * b.count, length, width)
        if tiled:
            out.append(context)
        elif b.rows is not None:
            out[b.rows] = context
        else:
            out.index_copy_(0, b.src, context.index_select(0, b.slot))
    if tiled:
        return out[0] if len(out) == 1 else torch.cat(out)
    return out
