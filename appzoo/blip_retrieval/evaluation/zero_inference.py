"""Inference on a model whose parameters ZeRO-3 partitions: gather them once, run forwards without hooks.

Under ZeRO-3 every submodule's forward hooks all-gather its parameters and release them afterwards: each
forward is a collective, so ranks doing different amounts of evaluation work would deadlock. Here the
parameters of the inference modules are gathered once (`deepspeed.zero.GatheredParameters`, a collective
all ranks enter together), and DeepSpeed's module hooks are set aside until the block ends, so forwards
are purely local. Without ZeRO-3 parameters (`ds_id`), this is a no-op.
"""
import contextlib
from collections import OrderedDict

from torch import nn

INFERENCE_MODULES = ("visual_encoder", "vision_proj", "text_encoder", "text_proj", "itm_head")
_HOOK_DICTS = ("_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_forward_hooks",
               "_forward_hooks_with_kwargs", "_forward_hooks_always_called")


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


def is_zero3(model: nn.Module) -> bool:
    return any(hasattr(p, "ds_id") for p in model.parameters())


@contextlib.contextmanager
def _hooks_suspended(model: nn.Module):
    saved = []
    for module in model.modules():
        for attr in _HOOK_DICTS:
            hooks = getattr(module, attr, None)
            if hooks:
                saved.append((module, attr, hooks))
                setattr(module, attr, OrderedDict())
    try:
        yield
    finally:
        for module, attr, hooks in saved:
            setattr(module, attr, hooks)


@contextlib.contextmanager
def gathered_for_inference(model: nn.Module):
    """Full parameters and hook-free forwards inside the block under ZeRO-3; nothing otherwise."""
    if not is_zero3(model):
        yield model
        return
    import deepspeed

    with deepspeed.zero.GatheredParameters(inference_parameters(model), modifier_rank=None):
        with _hooks_suspended(model):
            yield model
