"""Every use of DeepSpeed internals (names outside its documented API) lives here, one function each.

tests/easyretrieval/engine/test_deepspeed_compat.py checks each name below against the installed DeepSpeed and
fails naming the one a release changed; setup.py pins the DeepSpeed range those tests passed on.

- `deepspeed.comm.torch.build_shm_op`, called by `TorchBackend.__init__`: `no_cpu_shm_comm_op`.
- The attributes ZeRO-3 adds to a partitioned parameter (`ds_id`, `ds_shape`, `ds_tensor`, `ds_numel`,
  `ds_persist`, `ds_status`, `ds_process_group`) and `deepspeed.runtime.zero.partition_parameters.ZeroParamStatus`:
  `is_partitioned`, `full_shape`, `local_shard`, `refresh_persistent`.
- ZeRO-3's fetch/release hooks, which DeepSpeed registers in torch's per-module forward-hook dicts:
  `forward_hooks_suspended`.

Everything else easyretrieval calls is DeepSpeed's documented API (`deepspeed.initialize`, `engine.*`,
`deepspeed.zero.GatheredParameters`, `deepspeed.utils.safe_get_full_fp32_param`, `zero_to_fp32`,
`deepspeed.checkpointing`).
"""
import contextlib
import importlib
from collections import OrderedDict

import torch
from torch import nn

# (module, attribute path) of every DeepSpeed name used in this file; the test imports each one.
INTERNALS = (
    ("deepspeed.comm.torch", "build_shm_op"),
    ("deepspeed.comm.torch", "TorchBackend.__init__"),
    ("deepspeed.runtime.zero.partition_parameters", "ZeroParamStatus.AVAILABLE"),
)
# The attributes ZeRO-3 sets on every partitioned parameter (the test builds a ZeRO-3 engine and checks them).
PARAM_ATTRIBUTES = ("ds_id", "ds_shape", "ds_tensor", "ds_numel", "ds_persist", "ds_status", "ds_process_group")
# torch's per-module forward-hook dicts, where ZeRO-3 registers its parameter fetch/release hooks.
FORWARD_HOOK_DICTS = ("_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_forward_hooks",
                      "_forward_hooks_with_kwargs", "_forward_hooks_always_called")


@contextlib.contextmanager
def no_cpu_shm_comm_op():
    """While DeepSpeed creates its communication backend, skip building its CPU shared-memory op.

    On the CPU accelerator `TorchBackend.__init__` JIT-compiles the C++ op `deepspeed_shm_comm` (30-80 s,
    and again whenever another virtualenv rebuilt it in the shared torch extensions folder). The op serves
    one function only, `inference_all_reduce` of DeepSpeed-Inference tensor parallelism, which easyretrieval
    never calls; without it that function falls back to torch.distributed.all_reduce (DeepSpeed's own
    fallback when the op cannot be built). Training and evaluation collectives do not use it.
    Prebuilding it at install (`DS_BUILD_SHM_COMM=1 pip install deepspeed`) is DeepSpeed's supported way
    to have it without the start-up cost; this skips the build whether or not it was prebuilt.
    """
    ds_torch_comm = importlib.import_module("deepspeed.comm.torch")  # `deepspeed.comm.torch` is torch itself

    original = ds_torch_comm.build_shm_op
    ds_torch_comm.build_shm_op = lambda: None
    try:
        yield
    finally:
        ds_torch_comm.build_shm_op = original


def is_partitioned(param: torch.Tensor) -> bool:
    """True for a parameter ZeRO-3 partitions (it carries a `ds_id`)."""
    return hasattr(param, "ds_id")


def any_partitioned(module: nn.Module) -> bool:
    """True when ZeRO-3 partitions any parameter of `module`."""
    return any(is_partitioned(p) for p in module.parameters())


def full_shape(param: torch.Tensor) -> torch.Size:
    """The parameter's whole shape: `ds_shape` under ZeRO-3 (its `.shape` is then the empty placeholder's)."""
    return param.ds_shape if is_partitioned(param) else param.shape


def local_shard(param: torch.Tensor) -> torch.Tensor:
    """The tensor this rank owns: the ZeRO-3 shard (`ds_tensor`, flat) when partitioned, else `.data`."""
    shard = getattr(param, "ds_tensor", None)
    return shard if shard is not None else param.data


def refresh_persistent(params) -> None:
    """Copy the ZeRO-3 shards of *persistent* parameters (numel <= stage3_param_persistence_threshold) into
    their whole `.data`, in place. A collective: every rank calls it with the same parameters.

    DeepSpeed keeps such a parameter whole in `.data` and re-gathers it from its shards only after the
    optimizer step; a forward reads `.data`, so after an in-place update of the shards (e.g. an EMA) the
    module would run with the previous values. The copy is in place: a parameter the root forward reads
    (e.g. a `.dtype`) is held active there and cannot be freed and re-gathered by DeepSpeed itself.
    No-op for parameters that are not persistent ZeRO-3 parameters.
    """
    persistent = [p for p in params if getattr(p, "ds_persist", False)]
    if not persistent:
        return
    from deepspeed.runtime.zero.partition_parameters import ZeroParamStatus

    groups = {}
    for p in persistent:
        if p.ds_status == ZeroParamStatus.AVAILABLE:  # otherwise the next fetch gathers the shards anyway
            groups.setdefault((p.ds_tensor.dtype, p.ds_process_group), []).append(p)
    for (_, group), stale in groups.items():
        shards = torch.cat([p.ds_tensor.view(-1) for p in stale])
        world = torch.distributed.get_world_size(group)
        gathered = shards.new_empty(world * shards.numel())
        torch.distributed.all_gather_into_tensor(gathered, shards, group=group)
        gathered, offset = gathered.view(world, -1), 0
        for p in stale:  # DeepSpeed's layout: rank r's shard of each parameter at r * shard size, padding last
            size = p.ds_tensor.numel()
            p.data.view(-1).copy_(gathered[:, offset:offset + size].reshape(-1)[: p.ds_numel])
            offset += size


@contextlib.contextmanager
def forward_hooks_suspended(module: nn.Module):
    """Inside the block no forward hook of `module` or its submodules runs (ZeRO-3's fetch/release hooks
    among them); they are all restored after. For forwards on parameters gathered beforehand
    (`deepspeed.zero.GatheredParameters`), so that a forward is not a collective."""
    saved = []
    for sub in module.modules():
        for attr in FORWARD_HOOK_DICTS:
            hooks = getattr(sub, attr, None)
            if hooks:
                saved.append((sub, attr, hooks))
                setattr(sub, attr, OrderedDict())
    try:
        yield
    finally:
        for sub, attr, hooks in saved:
            setattr(sub, attr, hooks)
