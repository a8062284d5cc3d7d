"""Gathers across 2 real gloo ranks (torch.multiprocessing), and the identity in one process."""
import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from easyretrieval import collectives


def test_identity_without_distributed():
    t = torch.arange(6.0).view(3, 2).requires_grad_()
    assert collectives.world_size() == 1 and collectives.rank() == 0
    assert collectives.concat_all_gather(t) is t
    assert collectives.all_gather_with_grad(t) is t


def _worker(rank, port, results):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        x = torch.full((2, 3), float(rank + 1), requires_grad=True)
        gathered = collectives.concat_all_gather(x)
        assert not gathered.requires_grad and gathered[:, 0].tolist() == [1.0, 1.0, 2.0, 2.0]
        g = collectives.all_gather_with_grad(x)
        weights = torch.arange(4.0).view(4, 1) * (rank + 1)  # rank-dependent use of every gathered row
        (g * weights).sum().backward()
        results[rank] = (collectives.world_size(), collectives.rank(), x.grad[:, 0].tolist())
    finally:
        dist.destroy_process_group()


def test_two_ranks():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    results = mp.Manager().dict()
    mp.spawn(_worker, args=(port, results), nprocs=2, join=True)
    # d loss / d x_r = sum over ranks of the weights on rank r's rows (rank 0 weights w, rank 1 weights 2w)
    assert results[0] == (2, 0, [0.0 * 1 + 0.0 * 2, 1.0 * 1 + 1.0 * 2])
    assert results[1] == (2, 1, [2.0 * 1 + 2.0 * 2, 3.0 * 1 + 3.0 * 2])
