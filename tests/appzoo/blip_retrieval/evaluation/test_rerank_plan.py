"""plan_rerank / image_groups on hand-made candidate lists."""
import torch

from appzoo.blip_retrieval.evaluation.rerank_plan import image_groups, plan_rerank


def test_distinct_pairs_grouped_by_image_and_mapped_back():
    # This rank holds global images 1 and 3 (local positions 0 and 1); 4 texts.
    local_pos = torch.tensor([-1, 0, -1, 1])
    i2t_text = torch.tensor([[2, 0], [1, 2]])                  # image 1 -> texts 2, 0; image 3 -> texts 1, 2
    t2i_image = torch.tensor([[1, 0], [3, 2], [1, 3], [-1, 0]])  # text 3 has one empty slot
    plan = plan_rerank(i2t_text, t2i_image, local_pos, num_texts=4)
    pairs = list(zip(plan.image_pos.tolist(), plan.text.tolist()))
    # (1,2) is asked by i2t and t2i, (3,1) and (3,2) too: each scored once; sorted by (image, text).
    assert pairs == [(0, 0), (0, 2), (1, 1), (1, 2)]
    assert [pairs[u] for u in plan.i2t_pair.view(-1).tolist()] == [(0, 2), (0, 0), (1, 1), (1, 2)]
    entries = list(zip(plan.t2i_rows.tolist(), plan.t2i_cols.tolist()))
    assert entries == [(0, 0), (1, 0), (2, 0), (2, 1)]          # only entries whose image is local
    assert [pairs[u] for u in plan.t2i_pair.tolist()] == [(0, 0), (1, 1), (0, 2), (1, 2)]


def test_no_local_images_and_empty_directions():
    plan = plan_rerank(torch.zeros(0, 3, dtype=torch.long), torch.tensor([[0, 1]]), torch.tensor([-1, -1]), 1)
    assert plan.num_pairs == 0 and plan.t2i_rows.numel() == 0
    plan = plan_rerank(torch.zeros(2, 0, dtype=torch.long), torch.tensor([[1], [0]]), torch.tensor([0, 1]), 2)
    assert list(zip(plan.image_pos.tolist(), plan.text.tolist())) == [(0, 1), (1, 0)]


def test_image_groups_skip_images_without_pairs():
    image_pos = torch.tensor([0, 0, 1, 4, 4, 4, 5])
    groups = list(image_groups(image_pos, num_images=7, images_per_group=2))
    assert groups == [(0, 2, 0, 3), (4, 6, 3, 7)]  # images 2-3 and 6 have no pairs
