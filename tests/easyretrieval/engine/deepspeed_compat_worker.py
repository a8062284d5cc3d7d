"""One process that exercises every DeepSpeed internal of easyretrieval/engine/deepspeed_compat.py on a real
ZeRO-3 engine and prints one JSON object {check name: "ok" or what went wrong} as its last line.

python deepspeed_compat_worker.py   (TORCH_EXTENSIONS_DIR: an empty folder; nothing may be compiled into it)
"""
import json
import traceback

import torch
from torch import nn

from easyretrieval.distributed import DistInfo, init_distributed
from easyretrieval.engine import deepspeed_compat as compat
from easyretrieval.engine.ds_config import DsParams, build_ds_config, load_ds_config
from easyretrieval.engine.trainer import build_engine

results = {}


def check(name):
    def run(fn):
        try:
            fn()
            results[name] = "ok"
        except Exception:  # noqa: BLE001 - reported by name, the test fails on it
            results[name] = traceback.format_exc(limit=3)[-1500:]
        return fn

    return run


class Scale(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1))  # 1 element: persistent (kept whole in .data)

    def forward(self, x):
        return x * self.weight


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.big = nn.Linear(16, 16)  # 256 weights: partitioned
        self.scale = Scale()

    def forward(self, x):
        return self.scale(self.big(x))


def main():
    init_distributed(DistInfo(), timeout_s=60)

    @check("no_cpu_shm_comm_op")
    def _():
        from deepspeed.comm import comm

        assert comm.cdb.shm_comm_op is None, "DeepSpeed built its CPU shm op"
        t = torch.ones(3)
        comm.all_reduce(t)
        assert t.tolist() == [1.0, 1.0, 1.0]
        import importlib

        assert importlib.import_module("deepspeed.comm.torch").build_shm_op.__name__ == "build_shm_op", \
            "build_shm_op was not restored"

    torch.manual_seed(0)
    reference = Small()
    model = Small()
    model.load_state_dict(reference.state_dict())
    ds = build_ds_config(load_ds_config(None), DsParams(1, zero_stage=3), 1)
    ds["zero_optimization"]["stage3_param_persistence_threshold"] = 4
    engine = build_engine(model, ds, init_lr=0.0, weight_decay=0.0)
    big, scale = engine.module.big.weight, engine.module.scale.weight

    @check("param_attributes")
    def _():
        for attribute in compat.PARAM_ATTRIBUTES:
            assert hasattr(big, attribute), f"ZeRO-3 parameters have no `{attribute}` any more"
        assert compat.is_partitioned(big) and compat.any_partitioned(engine.module)
        assert not compat.is_partitioned(reference.big.weight)

    @check("full_shape")
    def _():
        assert compat.full_shape(big) == torch.Size([16, 16]), compat.full_shape(big)
        assert compat.full_shape(reference.big.weight) == torch.Size([16, 16])

    @check("local_shard")
    def _():
        shard = compat.local_shard(big)
        assert shard is big.ds_tensor and shard.numel() == big.ds_numel == 256, (shard.shape, big.ds_numel)
        assert compat.local_shard(reference.big.weight).data_ptr() == reference.big.weight.data_ptr()

    @check("refresh_persistent")
    def _():
        from deepspeed.runtime.zero.partition_parameters import ZeroParamStatus

        engine.backward(engine(torch.randn(2, 16)).sum())  # after the first step (lr 0: no change) the
        engine.step()  # persistent parameters stay whole in .data
        assert scale.ds_persist, "`scale` is not persistent"
        assert scale.ds_status == ZeroParamStatus.AVAILABLE, f"after a forward: {scale.ds_status}"
        compat.local_shard(scale).fill_(3.0)  # what an in-place update of the shard (an EMA) does
        compat.refresh_persistent([scale, big])
        assert scale.data.view(-1).tolist() == [3.0], scale.data
        compat.local_shard(scale).fill_(1.0)
        compat.refresh_persistent([scale])

    @check("forward_hooks_suspended")
    def _():
        import deepspeed

        x = torch.randn(2, 16)
        expected = reference(x)
        hooked = [m for m in engine.module.modules() if any(getattr(m, a, None) for a in compat.FORWARD_HOOK_DICTS)]
        assert hooked, "ZeRO-3 registered no forward hooks in " + ", ".join(compat.FORWARD_HOOK_DICTS)
        with deepspeed.zero.GatheredParameters(list(engine.module.parameters()), modifier_rank=None):
            with compat.forward_hooks_suspended(engine.module):
                assert not any(getattr(m, a, None) for m in engine.module.modules()
                               for a in compat.FORWARD_HOOK_DICTS)
                got = engine.module(x)
        torch.testing.assert_close(got, expected)
        assert all(any(getattr(m, a, None) for a in compat.FORWARD_HOOK_DICTS) for m in hooked), "not restored"
        torch.testing.assert_close(engine(x), expected)  # the hooks work again

    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
