"""Which (image, text) pairs a rank scores with ITM, grouped by image (pure index arithmetic, no model).

Stage 1 gives each image its top-k texts (i2t) and each text its top-k images (t2i). A pair's ITM logit
is the same number whichever direction asked for it, so the rank that holds an image's features scores
every distinct pair of that image exactly once: its own i2t rows plus the t2i entries that point to one
of its images. Pairs come out sorted by (image, text), so the cross-attention keys/values of an image are
computed once and reused by all of its texts.
"""
from dataclasses import dataclass
from typing import Iterator, Tuple

import torch


@dataclass
class RerankPlan:
    image_pos: torch.Tensor   # [U] local position of each distinct pair's image (sorted ascending)
    text: torch.Tensor        # [U] text index of each distinct pair
    i2t_pair: torch.Tensor    # [n_local, k_i] distinct-pair index of each i2t candidate of the local images
    t2i_rows: torch.Tensor    # [E] text (row) of each t2i entry whose image is local
    t2i_cols: torch.Tensor    # [E] candidate slot (column) of that entry
    t2i_pair: torch.Tensor    # [E] distinct-pair index of that entry

    @property
    def num_pairs(self):
        return int(self.text.numel())


def plan_rerank(i2t_text: torch.Tensor, t2i_image: torch.Tensor, local_pos: torch.Tensor, num_texts: int) -> RerankPlan:
    """i2t_text [n_local, k_i]: candidate texts of the local images (row p = local image p);
    t2i_image [T, k_t]: candidate images (global index, -1 = none) of every text;
    local_pos [N]: local position of each global image on this rank, -1 where another rank holds it."""
    i2t_text, t2i_image, local_pos = i2t_text.long().cpu(), t2i_image.long().cpu(), local_pos.long().cpu()
    n_local, k_i = i2t_text.shape
    i2t_keys = (torch.arange(n_local)[:, None] * num_texts + i2t_text).reshape(-1)
    pos = torch.where(t2i_image >= 0, local_pos[t2i_image.clamp(min=0)], torch.full_like(t2i_image, -1))
    t2i_rows, t2i_cols = torch.nonzero(pos >= 0, as_tuple=True)
    t2i_keys = pos[t2i_rows, t2i_cols] * num_texts + t2i_rows
    keys, inverse = torch.unique(torch.cat([i2t_keys, t2i_keys]), sorted=True, return_inverse=True)
    return RerankPlan(
        image_pos=keys // num_texts,
        text=keys % num_texts,
        i2t_pair=inverse[: i2t_keys.numel()].view(n_local, k_i),
        t2i_rows=t2i_rows,
        t2i_cols=t2i_cols,
        t2i_pair=inverse[i2t_keys.numel():],
    )


def image_groups(image_pos: torch.Tensor, num_images: int, images_per_group: int) -> Iterator[Tuple[int, int, int, int]]:
    """(first image, end image, first pair, end pair) of consecutive groups of local images with pairs."""
    bounds = torch.searchsorted(image_pos, torch.arange(0, num_images + images_per_group, images_per_group))
    for g, start in enumerate(range(0, num_images, images_per_group)):
        p0, p1 = int(bounds[g]), int(bounds[g + 1])
        if p1 > p0:
            yield start, min(start + images_per_group, num_images), p0, p1
