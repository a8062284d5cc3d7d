"""The DeepSpeed internals easyretrieval relies on (engine/deepspeed_internals.py) still exist under the
installed DeepSpeed, and a one-process run starts without compiling DeepSpeed's CPU shm op."""
import importlib
import inspect
import os
import sys

import pytest

from easyretrieval.engine import deepspeed_internals

@pytest.mark.parametrize("module,attribute", deepspeed_internals.INTERNALS,
                         ids=[f"{m}.{a}" for m, a in deepspeed_internals.INTERNALS])
def test_internal_exists(module, attribute):
    obj = importlib.import_module(module)
    for part in attribute.split("."):
        assert hasattr(obj, part), f"DeepSpeed changed: {module}.{attribute} is gone ({part})"
        obj = getattr(obj, part)
    assert callable(obj)


def test_torch_backend_still_builds_the_shm_op_through_build_shm_op():
    source = inspect.getsource(importlib.import_module("deepspeed.comm.torch").TorchBackend.__init__)
    assert "build_shm_op()" in source, "DeepSpeed changed how TorchBackend builds its shm op: no_cpu_shm_comm_op " \
                                       "no longer skips it"


def test_one_process_starts_without_compiling(tmp_path):
    import process_launch

    script = (
        "import torch, importlib\n"
        "from easyretrieval.distributed import DistInfo, init_distributed\n"
        "init_distributed(DistInfo(), timeout_s=60)\n"
        "from deepspeed.comm import comm\n"
        "assert comm.cdb.shm_comm_op is None, 'the shm op was built'\n"
        "t = torch.ones(3)\n"
        "comm.all_reduce(t)\n"
        "assert importlib.import_module('deepspeed.comm.torch').build_shm_op.__name__ == 'build_shm_op'\n"
        "print('ok', t.tolist())\n"
    )
    extensions = tmp_path / "torch_extensions"
    extensions.mkdir()
    env = dict(os.environ, TORCH_EXTENSIONS_DIR=str(extensions))
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    proc = process_launch.run([sys.executable, "-c", script], 300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ok [1.0, 1.0, 1.0]" in proc.stdout
    assert "built successfully" not in proc.stdout + proc.stderr
    assert list(extensions.rglob("*")) == []  # nothing compiled, nothing cached


def test_scalar_safe_broadcast_restores_deepspeed():
    from deepspeed.runtime.engine import DeepSpeedEngine
    from deepspeed.runtime.zero.partition_parameters import Init

    before = (DeepSpeedEngine._broadcast_model, Init._zero_init_param)
    with deepspeed_internals.scalar_safe_broadcast():
        assert DeepSpeedEngine._broadcast_model is not before[0]
    assert (DeepSpeedEngine._broadcast_model, Init._zero_init_param) == before
