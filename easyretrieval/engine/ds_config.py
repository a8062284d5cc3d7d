"""The DeepSpeed config: read a JSON file (or the built-in default) and fill it from the app's parameters.

The files in ds_configs/ leave the batch-size and clipping fields as "auto"; `build_ds_config` is the one
place that fills them, so the DeepSpeed config and the app's parameters never disagree. A number the user
wrote in the file must equal the parameter's value, otherwise we stop with a UserError naming both.
`precision` ('' | fp32 | bf16 | fp16) and `zero_stage` (None | 0-3) override the file.
The optimizer is not part of the config: the engine builds torch AdamW (the official optimizer).
"""
import copy
import json
import os
from dataclasses import dataclass
from typing import Optional

from easyretrieval.errors import UserError
from easyretrieval.text_input import read_text_file

AUTO = "auto"
PRECISIONS = ("fp32", "bf16", "fp16")

# The built-in default, identical to ds_configs/zero1.json (a test keeps the two equal): ZeRO-1, fp32.
DEFAULT_DS_CONFIG = {
    "train_micro_batch_size_per_gpu": AUTO,
    "gradient_accumulation_steps": AUTO,
    "train_batch_size": AUTO,
    "gradient_clipping": AUTO,
    "zero_optimization": {"stage": 1},
    "bf16": {"enabled": False},
    "fp16": {"enabled": False, "loss_scale": 0, "initial_scale_power": 16, "loss_scale_window": 1000,
             "hysteresis": 2, "min_loss_scale": 1},
    "steps_per_print": 1000000000,
    "wall_clock_breakdown": False,
}


@dataclass(frozen=True)
class DsParams:
    """The app parameters that feed the DeepSpeed config."""

    micro_batch_size: int
    gradient_accumulation_steps: int = 1
    gradient_clipping: float = 0.0
    precision: str = ""  # '' keeps the file's setting
    zero_stage: Optional[int] = None  # None keeps the file's setting


def load_ds_config(path: Optional[str]) -> dict:
    """The JSON object in `path`, or a copy of the built-in default when `path` is None."""
    if path is None:
        return copy.deepcopy(DEFAULT_DS_CONFIG)
    if not os.path.isfile(path):
        raise UserError(f"DeepSpeed config '{path}' not found (see ds_configs/)")
    try:
        obj = json.loads(read_text_file(path, "DeepSpeed config"))
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: invalid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(obj, dict):
        raise UserError(f"{path}: expected a JSON object")
    return obj


def _fill(config, key, value, param_name, where):
    current = config.get(key, AUTO)
    if current == AUTO or current is None:
        config[key] = value
    elif isinstance(current, (int, float)) and not isinstance(current, bool) and float(current) == float(value):
        config[key] = value
    else:
        raise UserError(
            f"{where}: '{key}' is {current!r} but {param_name} gives {value!r}; "
            f"set it to \"auto\" (filled from the parameters) or change {param_name}"
        )


def precision_of(config: dict) -> str:
    """'bf16', 'fp16' or 'fp32' as the (filled) config enables it."""
    bf16 = bool(config.get("bf16", {}).get("enabled", False)) or bool(config.get("bfloat16", {}).get("enabled", False))
    fp16 = bool(config.get("fp16", {}).get("enabled", False))
    if bf16 and fp16:
        raise UserError("DeepSpeed config enables both bf16 and fp16; enable one (or set precision=...)")
    return "bf16" if bf16 else "fp16" if fp16 else "fp32"


def zero_stage_of(config: dict) -> int:
    return int(config.get("zero_optimization", {}).get("stage", 0))


def build_ds_config(base: dict, params: DsParams, world_size: int, where: str = "DeepSpeed config") -> dict:
    """A complete DeepSpeed config: `base` with every "auto" filled and the overrides applied.

    Pure: returns a new dict and does no I/O.
    """
    config = copy.deepcopy(base)
    if "optimizer" in config or "scheduler" in config:
        raise UserError(
            f"{where}: remove the 'optimizer'/'scheduler' sections; the engine uses AdamW with init_lr, "
            "weight_decay and the cosine schedule from the app's parameters"
        )
    gas = params.gradient_accumulation_steps
    _fill(config, "train_micro_batch_size_per_gpu", params.micro_batch_size, "batch_size_train", where)
    _fill(config, "gradient_accumulation_steps", gas, "gradient_accumulation_steps", where)
    _fill(config, "train_batch_size", params.micro_batch_size * gas * world_size,
          "batch_size_train x gradient_accumulation_steps x world size", where)
    _fill(config, "gradient_clipping", float(params.gradient_clipping), "gradient_clipping", where)

    if params.precision:
        if params.precision not in PRECISIONS:
            raise UserError(f"precision '{params.precision}' is not one of {', '.join(PRECISIONS)}")
        config.pop("bfloat16", None)
        config.setdefault("bf16", {})["enabled"] = params.precision == "bf16"
        fp16 = config.setdefault("fp16", {})
        fp16["enabled"] = params.precision == "fp16"
        if params.precision == "fp16":
            for key, value in DEFAULT_DS_CONFIG["fp16"].items():
                fp16.setdefault(key, value)
    precision_of(config)  # both enabled is an error

    zero = config.setdefault("zero_optimization", {})
    if params.zero_stage is not None:
        zero["stage"] = int(params.zero_stage)
    stage = int(zero.get("stage", 0))
    if stage not in (0, 1, 2, 3):
        raise UserError(f"{where}: zero_optimization.stage must be 0, 1, 2 or 3, not {stage}")
    if stage < 3 and "offload_param" in zero:
        raise UserError(f"{where}: offload_param needs ZeRO stage 3 (zero_stage={stage}); use zero_stage=3")
    if stage == 0 and "offload_optimizer" in zero:
        raise UserError(f"{where}: offload_optimizer needs ZeRO stage 1-3")
    if "offload_optimizer" in zero or "offload_param" in zero:
        # The engine passes torch AdamW (official numerics); DeepSpeed must accept it with offload.
        config.setdefault("zero_force_ds_cpu_optimizer", False)
    return config
