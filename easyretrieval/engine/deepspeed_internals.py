"""Every use of DeepSpeed internals (names outside its documented API) lives here, each in one function.

tests/easyretrieval/engine/test_deepspeed_internals.py checks each name below against the installed DeepSpeed
and fails naming the one a release changed. The internals relied on:

- `deepspeed.comm.torch.build_shm_op`, called by `TorchBackend.__init__` (see `no_cpu_shm_comm_op`).
- `deepspeed.runtime.engine.DeepSpeedEngine._broadcast_model` and
  `deepspeed.runtime.zero.partition_parameters.Init._zero_init_param` (see `scalar_safe_broadcast`).
"""
import contextlib
import importlib

import torch

# (module, attribute path) of every internal used in this file; the test imports each one.
INTERNALS = (
    ("deepspeed.comm.torch", "build_shm_op"),
    ("deepspeed.comm.torch", "TorchBackend.__init__"),
    ("deepspeed.runtime.engine", "DeepSpeedEngine._broadcast_model"),
    ("deepspeed.runtime.zero.partition_parameters", "Init._zero_init_param"),
    ("deepspeed.runtime.zero.partition_parameters", "Init._convert_to_deepspeed_param"),
    ("deepspeed.runtime.zero.partition_parameters", "Init.get_partition_dp_group"),
)


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


@contextlib.contextmanager
def scalar_safe_broadcast():
    """DeepSpeed's initial broadcasts (engine and ZeRO-3 Init) view each parameter as bytes, which fails on
    0-dim parameters (BLIP's `temp`). While the engine is built, they are broadcast as 1-element views of
    the same storage; their shape stays () as in the official state dict."""
    from deepspeed import comm
    from deepspeed.runtime.engine import DeepSpeedEngine
    from deepspeed.runtime.zero.partition_parameters import Init

    original = DeepSpeedEngine._broadcast_model

    def broadcast(self):
        scalars = [p for p in self.module.parameters() if p.dim() == 0]
        for p in scalars:
            p.data = p.data.reshape(1)
        try:
            original(self)
        finally:
            for p in scalars:
                p.data = p.data.reshape(())

    original_zero3 = Init._zero_init_param

    def zero_init_param(self, param):  # ZeRO-3: Init._zero_init_param with the same 1-element view
        if param.dim() != 0:
            return original_zero3(self, param)
        self._convert_to_deepspeed_param(param)
        group = self.get_partition_dp_group(param)
        src = 0 if comm.get_world_group() == group else comm.get_global_rank(group, 0)
        comm.broadcast(param.data.reshape(1).view(torch.uint8), src, group)
        param.partition()

    DeepSpeedEngine._broadcast_model = broadcast
    Init._zero_init_param = zero_init_param
    try:
        yield
    finally:
        DeepSpeedEngine._broadcast_model = original
        Init._zero_init_param = original_zero3
