"""The DeepSpeed internals easyretrieval relies on (engine/deepspeed_compat.py) still exist and behave as used
under the installed DeepSpeed: each test fails naming the internal a release changed. One process builds a
real ZeRO-3 engine (deepspeed_compat_worker.py) and checks them all; it starts without compiling anything."""
import importlib
import inspect
import json
import os
import sys

import pytest

from easyretrieval.engine import deepspeed_compat

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER_CHECKS = ("no_cpu_shm_comm_op", "param_attributes", "full_shape", "local_shard", "refresh_persistent",
                 "forward_hooks_suspended")


@pytest.mark.parametrize("module,attribute", deepspeed_compat.INTERNALS,
                         ids=[f"{m}.{a}" for m, a in deepspeed_compat.INTERNALS])
def test_internal_exists(module, attribute):
    obj = importlib.import_module(module)
    for part in attribute.split("."):
        assert hasattr(obj, part), f"DeepSpeed changed: {module}.{attribute} is gone ({part})"
        obj = getattr(obj, part)


def test_torch_backend_still_builds_the_shm_op_through_build_shm_op():
    source = inspect.getsource(importlib.import_module("deepspeed.comm.torch").TorchBackend.__init__)
    assert "build_shm_op()" in source, "DeepSpeed changed how TorchBackend builds its shm op: no_cpu_shm_comm_op " \
                                       "no longer skips it"


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    """(checks {name: "ok" or the failure}, TORCH_EXTENSIONS_DIR the worker ran with, its output)."""
    import process_launch

    extensions = tmp_path_factory.mktemp("torch_extensions")
    env = dict(os.environ, TORCH_EXTENSIONS_DIR=str(extensions), OMP_NUM_THREADS="1")
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    proc = process_launch.run([sys.executable, os.path.join(HERE, "deepspeed_compat_worker.py")], 300, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), extensions, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", WORKER_CHECKS)
def test_internal_behaves_as_used(worker, name):
    checks = worker[0]
    assert checks.get(name) == "ok", f"DeepSpeed changed what deepspeed_compat.{name} relies on:\n{checks.get(name)}"


def test_one_process_starts_without_compiling(worker):
    _, extensions, output = worker
    assert "built successfully" not in output
    assert list(extensions.rglob("*")) == []  # nothing compiled, nothing cached
