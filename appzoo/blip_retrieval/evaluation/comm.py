"""The evaluator's collectives: row gathers of unequal sizes, a sum, on a group with its own timeout.

Only small things travel: ITC feature vectors, top-k indices and scores. In one process (or without
torch.distributed) every operation is the identity. The group is created once per evaluator (all ranks
must create it together) with `timeout_s`, so a hung rank fails loudly instead of hanging for hours.
"""
import datetime

import torch
import torch.distributed as dist

from easyretrieval.distributed import multi_rank


class EvalComm:
    def __init__(self, timeout_s: float = 1800.0):
        self.active = multi_rank()
        self.group = None
        self.rank, self.world_size = 0, 1
        self.device = torch.device("cpu")
        if self.active:
            self.group = dist.new_group(ranks=list(range(dist.get_world_size())),
                                        timeout=datetime.timedelta(seconds=float(timeout_s)))
            self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
            if dist.get_backend(self.group) == "nccl":
                self.device = torch.device("cuda", torch.cuda.current_device())

    def gather_rows(self, tensor: torch.Tensor) -> torch.Tensor:
        """Every rank's rows concatenated in rank order (row counts may differ between ranks)."""
        if not self.active:
            return tensor
        out_device = tensor.device
        local = tensor.to(self.device).contiguous()
        count = torch.tensor([local.shape[0]], device=self.device, dtype=torch.long)
        counts = [torch.zeros_like(count) for _ in range(self.world_size)]
        dist.all_gather(counts, count, group=self.group)
        counts = [int(c) for c in counts]
        if max(counts) == 0 or 0 in local.shape[1:]:
            return local.new_zeros((sum(counts),) + tuple(local.shape[1:])).to(out_device)  # nothing to send
        padded = local.new_zeros((max(counts),) + tuple(local.shape[1:]))
        padded[: local.shape[0]] = local
        parts = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(parts, padded, group=self.group)
        return torch.cat([p[:c] for p, c in zip(parts, counts)], dim=0).to(out_device)

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """In-place sum over ranks (each entry is owned by one rank, zeros elsewhere)."""
        if not self.active:
            return tensor
        buffer = tensor.to(self.device)
        dist.all_reduce(buffer, group=self.group)
        if buffer is not tensor:
            tensor.copy_(buffer)
        return tensor

