"""Consolidated fp32 weights from any ZeRO stage, in-process or from a checkpoint on disk; `easyretrieval export`.

In-process (`consolidated_state_dict`, a collective): trainable parameters come from the optimizer's fp32
master copy (gathered under ZeRO-3), frozen parameters are gathered, buffers are taken as they are.
Offline (`consolidate_checkpoint`): DeepSpeed's zero_to_fp32 for ZeRO 1-3 checkpoints, overlaid on the
module state saved by rank 0 (which holds frozen parameters and buffers under ZeRO 0-2).
The result is saved in the official layout `{'model': state_dict}`, written atomically.
"""
import argparse
import glob
import os
from collections import OrderedDict
from typing import Dict

from easyretrieval.errors import UserError
from easyretrieval.registry import register_command


def _fp32(tensor):
    tensor = tensor.detach().cpu()
    return tensor.float().clone() if tensor.is_floating_point() else tensor.clone()


def consolidated_state_dict(engine) -> "OrderedDict[str, torch.Tensor]":
    """The full fp32 state dict of `engine.module` on every rank (call on every rank)."""
    from deepspeed.utils import safe_get_full_fp32_param

    module = engine.module
    zero3 = engine.zero_optimization_partition_weights()
    params = dict(module.named_parameters(remove_duplicate=False))
    out = OrderedDict()
    for key, value in module.state_dict(keep_vars=True).items():
        param = params.get(key)
        if param is None:  # a buffer: replicated, never partitioned
            out[key] = _fp32(value)
            continue
        full = safe_get_full_fp32_param(param) if param.requires_grad else None
        if full is not None:
            out[key] = _fp32(full).view(param.ds_shape if zero3 else param.shape)
        elif zero3:
            import deepspeed

            with deepspeed.zero.GatheredParameters([param], modifier_rank=None):
                out[key] = _fp32(param.data)
        else:
            out[key] = _fp32(param.data)
    return out


def save_atomic(obj, path: str) -> str:
    """torch.save to `path` through a temporary file, so a crash never leaves a half-written file."""
    import torch

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".part"
    torch.save(obj, tmp)
    os.replace(tmp, path)
    return path


def _module_state_from_rank0(checkpoint_dir):
    files = sorted(glob.glob(os.path.join(checkpoint_dir, "*mp_rank_00_model_states.pt")))
    if not files:
        raise UserError(f"export: {checkpoint_dir} holds no DeepSpeed model states (*mp_rank_00_model_states.pt)")
    import torch

    state = torch.load(files[0], map_location="cpu", weights_only=False)
    return state["module"]


def consolidate_checkpoint(checkpoint_dir: str) -> "OrderedDict[str, torch.Tensor]":
    """The full fp32 state dict of a DeepSpeed checkpoint directory written by any ZeRO stage."""
    if not os.path.isdir(checkpoint_dir):
        raise UserError(f"export: checkpoint '{checkpoint_dir}' not found")
    module = _module_state_from_rank0(checkpoint_dir)
    out = OrderedDict((k, _fp32(v)) for k, v in module.items() if v is not None and v.numel() > 0)
    if glob.glob(os.path.join(checkpoint_dir, "*zero_pp_rank_*optim_states.pt")):
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

        root, tag = os.path.split(os.path.abspath(checkpoint_dir))
        merged = get_fp32_state_dict_from_zero_checkpoint(root, tag=tag)
        for key, value in merged.items():
            out[key] = _fp32(value)
        order = [k for k in module if k in out] + [k for k in out if k not in module]
        out = OrderedDict((k, out[k]) for k in order)
    missing = [k for k, v in module.items() if k not in out]
    if missing:
        raise UserError(f"export: {len(missing)} tensors could not be consolidated, e.g. {missing[:3]}")
    return out


def export_checkpoint(checkpoint_dir: str, output_path: str, layout=lambda sd: {"model": sd}) -> Dict[str, int]:
    """Consolidate `checkpoint_dir` and save `layout(state_dict)` to `output_path`; returns a summary."""
    state_dict = consolidate_checkpoint(checkpoint_dir)
    save_atomic(layout(state_dict), output_path)
    return {"tensors": len(state_dict), "numel": sum(v.numel() for v in state_dict.values())}


def _resolve_checkpoint_dir(path):
    from easyretrieval.engine.checkpointing import find_latest, is_complete

    if is_complete(path):
        return path
    for root in (os.path.join(path, "checkpoints"), path):
        latest = find_latest(root)
        if latest is not None:
            return latest
    if glob.glob(os.path.join(path, "*model_states.pt")):
        return path
    raise UserError(f"export: no checkpoint in '{path}' (pass an output_dir, its checkpoints/ or a step_* dir)")


@register_command("export", help="consolidate a training checkpoint (any ZeRO stage) into official "
                                 "{'model': state_dict} weights")
def export_command(argv) -> int:
    args = _parser().parse_args(argv)
    checkpoint_dir = _resolve_checkpoint_dir(args.checkpoint)
    output = args.output or os.path.join(checkpoint_dir, "model_fp32.pth")
    summary = export_checkpoint(checkpoint_dir, output)
    print(f"exported {summary['tensors']} tensors ({summary['numel']:,} values) from {checkpoint_dir} to {output}")
    return 0


def _parser():
    p = argparse.ArgumentParser(
        prog="easyretrieval export",
        description="Consolidate a (ZeRO 0-3) training checkpoint into fp32 weights in the official BLIP layout.",
    )
    p.add_argument("checkpoint", help="an output_dir (its latest checkpoint), its checkpoints/ dir, or a step_* dir")
    p.add_argument("--output", default=None, help="output file (default: <checkpoint>/model_fp32.pth)")
    return p
