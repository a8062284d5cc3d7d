"""Activation checkpointing of one block: DeepSpeed's when the run configured it, else torch's non-reentrant."""
import sys

import torch.utils.checkpoint


def _deepspeed_checkpointing():
    """DeepSpeed's activation-checkpointing module when DeepSpeed is loaded and configured, else None."""
    if "deepspeed" not in sys.modules:  # never import DeepSpeed just to ask
        return None
    import deepspeed

    return deepspeed.checkpointing if deepspeed.checkpointing.is_configured() else None  # its documented API


def checkpoint(function, *args):
    """Run `function(*args)` without keeping its activations; they are recomputed in backward."""
    ds = _deepspeed_checkpointing()
    if ds is not None:
        return ds.checkpoint(function, *args)
    return torch.utils.checkpoint.checkpoint(function, *args, use_reentrant=False)
