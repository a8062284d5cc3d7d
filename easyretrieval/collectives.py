"""Gathers across ranks that are the identity in a single process (no torch.distributed, or world size 1)."""
import torch
import torch.distributed as dist

from easyretrieval.distributed import multi_rank as _active


def world_size():
    return dist.get_world_size() if _active() else 1


def rank():
    return dist.get_rank() if _active() else 0


@torch.no_grad()
def concat_all_gather(tensor):
    """Every rank's `tensor` concatenated along dim 0, in rank order; no gradient (as official)."""
    if not _active():
        return tensor
    tensor = tensor.contiguous()
    gathered = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, tensor)
    return torch.cat(gathered, dim=0)


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sums every rank's gradient of the gathered tensor and returns this rank's
    slice (official BLIP GatherLayer)."""

    @staticmethod
    def forward(ctx, tensor):
        gathered = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, tensor.contiguous())
        return tuple(gathered)

    @staticmethod
    def backward(ctx, *grads):
        stacked = torch.stack(grads).contiguous()
        dist.all_reduce(stacked)
        return stacked[dist.get_rank()]


def all_gather_with_grad(tensor):
    """Every rank's `tensor` concatenated along dim 0; gradients flow back to each rank's own slice."""
    if not _active():
        return tensor
    return torch.cat(_GatherWithGrad.apply(tensor), dim=0)
