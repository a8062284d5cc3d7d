"""Grouped cross-attention to cached image keys/values: plans on hand-made indices, math vs per-row gather."""
import pytest
import torch
import torch.nn.functional as F

from appzoo.blip_retrieval.model.cross_groups import grouped_cross_attention, plan_cross_groups

HEADS, DIM, PATCHES, LENGTH = 4, 8, 11, 5


def _per_row_reference(query, key, value, index):
    """The copying path: every row gets its own [heads, P, d] copy of its image's keys/values."""
    q = query.view(query.shape[0], LENGTH, HEADS, DIM).transpose(1, 2)
    return F.scaled_dot_product_attention(q, key[index], value[index]).transpose(1, 2).flatten(2)


def _kv(num_images, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(num_images, HEADS, PATCHES, DIM, generator=g),
            torch.randn(num_images, HEADS, PATCHES, DIM, generator=g))


@pytest.mark.parametrize("index", [
    [1] + [3] * 7,                        # 1 text for one image, 7 for another, images 0, 2, 4 with none
    [3, 1, 3, 3, 0, 3, 3, 3, 3],          # unsorted rows
    [2, 2, 2, 4, 4, 4],                   # equal groups of non-consecutive images
    [0] * 5 + [1] + [2] * 4 + [3] * 14,   # several buckets
    [4],
    list(range(12)),                      # one text per image, more runs than views: buckets
])
def test_grouped_attention_equals_per_row_gather(index):
    key, value = _kv(12)
    index = torch.tensor(index)
    query = torch.randn(index.numel(), LENGTH, HEADS * DIM, generator=torch.Generator().manual_seed(1))
    got = grouped_cross_attention(query, key, value, plan_cross_groups(index, 12), HEADS)
    torch.testing.assert_close(got, _per_row_reference(query, key, value, index), atol=1e-6, rtol=0)


def test_sorted_equal_groups_are_one_view_without_padding():
    plan = plan_cross_groups(torch.tensor([2, 2, 3, 3, 4, 4]), 6)
    assert len(plan.buckets) == 1
    bucket = plan.buckets[0]
    assert (bucket.images, bucket.count, bucket.num_groups, bucket.rows) == (slice(2, 5), 2, 3, slice(0, 6))
    assert bucket.src is None and plan.padded_rows == 6


def test_sorted_uneven_groups_are_views():
    """The evaluator's batches: rows sorted by image, few runs -> one view per run, nothing padded."""
    plan = plan_cross_groups(torch.tensor([1] + [3] * 7 + [4] * 7 + [5] * 2), 6)
    layout = [(b.images, b.count, b.num_groups, b.rows) for b in plan.buckets]
    assert layout == [(slice(1, 2), 1, 1, slice(0, 1)), (slice(3, 5), 7, 2, slice(1, 15)),
                      (slice(5, 6), 2, 1, slice(15, 17))]
    assert plan.padded_rows == 17


def test_unsorted_uneven_groups_bucketed_with_bounded_padding():
    # counts: image 0 -> 5, image 1 -> 1, image 2 -> 4, image 3 -> 14; rows not sorted by image
    index = torch.tensor([0] * 5 + [1] + [2] * 4 + [3] * 14).roll(3)
    plan = plan_cross_groups(index, 4, slack=1.25)
    layout = [(b.images if isinstance(b.images, slice) else b.images.tolist(), b.count, b.num_groups)
              for b in plan.buckets]
    assert layout == [(slice(3, 4), 14, 1), ([0, 2], 5, 2), (slice(1, 2), 1, 1)]
    assert plan.padded_rows == 14 + 10 + 1  # one padded row in the [0, 2] bucket
    padded = plan.buckets[1]
    assert padded.rows is None
    assert padded.src.tolist() == [3, 4, 5, 6, 7, 9, 10, 11, 12]
    assert padded.slot.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8]
    assert padded.fill.tolist() == [3, 4, 5, 6, 7, 9, 10, 11, 12, 9]  # padding repeats a row of its group
    # slack 1: only equal counts share a bucket
    assert [b.count for b in plan_cross_groups(index, 4, slack=1.0).buckets] == [14, 5, 4, 1]


def test_many_sorted_groups_fall_back_to_buckets():
    index = torch.repeat_interleave(torch.arange(20), torch.tensor([1, 2] * 10))
    plan = plan_cross_groups(index, 20)
    assert [(b.count, b.num_groups) for b in plan.buckets] == [(2, 16), (1, 4)]  # 6 padded rows <= 25%
    assert plan.padded_rows == 36
    key, value = _kv(20)
    query = torch.randn(index.numel(), LENGTH, HEADS * DIM)
    torch.testing.assert_close(grouped_cross_attention(query, key, value, plan, HEADS),
                               _per_row_reference(query, key, value, index), atol=1e-6, rtol=0)


def test_plan_rejects_bad_indices():
    with pytest.raises(IndexError, match="outside the 3 cached images"):
        plan_cross_groups(torch.tensor([0, 3]), 3)
    with pytest.raises(IndexError):
        plan_cross_groups(torch.tensor([-1]), 3)
    with pytest.raises(ValueError, match="slack"):
        plan_cross_groups(torch.tensor([0]), 3, slack=0.5)
    key, value = _kv(3)
    with pytest.raises(ValueError, match="query rows"):
        grouped_cross_attention(torch.randn(3, LENGTH, HEADS * DIM), key, value,
                                plan_cross_groups(torch.tensor([0, 1]), 3), HEADS)
