"""Process-group setup that works under `deepspeed`, `torchrun` and as one plain process.

Ranks come from the environment (RANK, WORLD_SIZE, LOCAL_RANK) or from --local_rank; GPUs use nccl,
CPUs gloo. Everything here is a thin, explicit wrapper so that lower layers receive ranks as arguments.
"""
import datetime
import gc
import logging
import os
import socket
import sys
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def is_main(self):
        return self.rank == 0

    @property
    def is_local_main(self):
        return self.local_rank == 0

    @property
    def distributed(self):
        return self.world_size > 1


def dist_info_from_env(local_rank: Optional[int] = None) -> DistInfo:
    """Ranks as the launcher set them; a plain process is rank 0 of 1."""
    env = os.environ
    world_size = int(env.get("WORLD_SIZE", "1"))
    rank = int(env.get("RANK", "0"))
    lr = int(env.get("LOCAL_RANK", local_rank if local_rank is not None else 0))
    local_world_size = int(env.get("LOCAL_WORLD_SIZE", world_size))
    return DistInfo(rank=rank, world_size=world_size, local_rank=lr, local_world_size=local_world_size)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_group_started = False  # set once this process has joined a process group


def init_distributed(info: DistInfo, timeout_s: float = 1800.0):
    """Initialise torch.distributed (through DeepSpeed, so its communication layer is set up too).

    A plain single process gets a private one-rank group on a free local port, so the DeepSpeed engine
    and the collectives in the evaluator run unchanged.
    """
    import torch
    import torch.distributed as dist

    global _group_started
    if dist.is_available() and dist.is_initialized():
        return
    _group_started = True
    os.environ.setdefault("RANK", str(info.rank))
    os.environ.setdefault("LOCAL_RANK", str(info.local_rank))
    os.environ.setdefault("WORLD_SIZE", str(info.world_size))
    os.environ.setdefault("LOCAL_WORLD_SIZE", str(info.local_world_size))
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    if "MASTER_PORT" not in os.environ:
        if info.world_size > 1:
            raise RuntimeError("MASTER_PORT is not set; start several ranks with deepspeed or torchrun")
        os.environ["MASTER_PORT"] = str(_free_port())
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(info.local_rank)
    import deepspeed

    from easyretrieval.engine.deepspeed_internals import no_cpu_shm_comm_op

    with no_cpu_shm_comm_op():  # no C++ build at start (the op serves DeepSpeed-Inference only)
        deepspeed.init_distributed(
            dist_backend=backend,
            auto_mpi_discovery=False,
            timeout=datetime.timedelta(seconds=timeout_s),
            rank=info.rank,
            world_size=info.world_size,
        )


def device_for(info: DistInfo):
    import torch

    if torch.cuda.is_available():
        return torch.device("cuda", info.local_rank)
    return torch.device("cpu")


def barrier():
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def shutdown_distributed():
    """Wait for every rank, then tear the process groups down (call once the work is done)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        if dist.get_world_size() > 1:
            dist.barrier()
        dist.destroy_process_group()


def exit_process(code: int = 0):
    """End the process with `code`; after a process group, skip the interpreter's finalization.

    DeepSpeed keeps references to its gloo groups, so their C++ worker threads outlive
    destroy_process_group. If one of them asks for the GIL while Python finalizes, Python
    unwinds that thread and C++ aborts the process ('terminate called without an active
    exception', exit -6) after a run that succeeded and saved everything. All output is flushed
    and every file is closed by then, so only that teardown is skipped.
    """
    if not isinstance(code, int):
        raise TypeError(f"exit_process needs an int exit code, got {code!r}")
    if "torch" not in sys.modules:  # nothing started a process group (e.g. --help-params): no torch import
        sys.exit(code)
    import torch.distributed as dist

    if not (_group_started or (dist.is_available() and dist.is_initialized())):
        sys.exit(code)
    gc.collect()  # finalizers of objects in reference cycles (e.g. data-loader workers) still run
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe must not change the exit code
            pass
    os._exit(code)
