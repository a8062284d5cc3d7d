"""Inference on a model whose parameters ZeRO-3 partitions: gather them once, run forwards without hooks.

Under ZeRO-3 every submodule's forward hooks all-gather its parameters and release them afterwards: each
forward is a collective, so ranks doing different amounts of evaluation work would deadlock. Here the
parameters of the inference modules are gathered once (`deepspeed.zero.GatheredParameters`, a collective
all ranks enter together), and the forward hooks are set aside until the block ends
(easyretrieval.engine.deepspeed_compat.forward_hooks_suspended), so forwards are purely local. Without
ZeRO-3 parameters this is a no-op.
"""
import contextlib

from torch import nn

from easyretrieval.engine.deepspeed_compat import any_partitioned, forward_hooks_suspended

from appzoo.blip_retrieval.model.parts import INFERENCE_MODULES


def unwrap(model: nn.Module) -> nn.Module:
    """The user model inside a DeepSpeed engine / DDP wrapper (`.module`), else the model."""
    while isinstance(getattr(model, "module", None), nn.Module):
        model = model.module
    return model


def inference_parameters(model: nn.Module):
    """Parameters of the modules evaluation uses (not the momentum copies), or all when those are absent."""
    if all(hasattr(model, name) for name in INFERENCE_MODULES):
        return [p for name in INFERENCE_MODULES for p in getattr(model, name).parameters()]
    return list(model.parameters())


@contextlib.contextmanager
def gathered_for_inference(model: nn.Module):
    """Full parameters and hook-free forwards inside the block under ZeRO-3; nothing otherwise."""
    if not any_partitioned(model):
        yield model
        return
    import deepspeed

    with deepspeed.zero.GatheredParameters(inference_parameters(model), modifier_rank=None):
        with forward_hooks_suspended(model):
            yield model
