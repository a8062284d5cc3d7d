"""What a resume may change: this run against the record its checkpoint keeps, before anything is loaded.

A training checkpoint records its run (`run_record`: every parameter, world size, seed, the effective ZeRO
stage and precision, a fingerprint of the training samples and of the vocab). A resume continues the run
exactly or is refused in one line naming every difference and why it matters:

- tensor shapes: vit, image_size, queue_size, the vocab (embed sizes follow vit) - the state cannot load;
- data order and position: batch_size_train, gradient_accumulation_steps, world size, seed (augmentations),
  max_words and the training samples themselves - the sampler position would replay or skip samples;
- saved optimizer layout: ZeRO stage, precision;
- the objective: alpha, momentum, weight_decay, gradient_clipping, negative_all_rank;
- the schedule (max_epoch, init_lr, min_lr): the LR is set per epoch from these, so a change is exact from
  the next epoch on: accepted at an epoch-end checkpoint (and said), refused inside an epoch;
- the split that selects the best epoch.
Everything else (workers, logging, checkpoint cadence, evaluation settings, gradient checkpointing,
pretrained=, which the checkpoint's weights replace) may change freely.
"""
import hashlib
import json
from typing import List, Optional, Tuple

from easyretrieval.errors import UserError
from easyretrieval.secrets import mask_secrets

RECORD_VERSION = 1
_SHAPES, _ORDER, _OBJECTIVE = "tensor shapes", "data order and position", "the training objective"
# parameter -> (category, why a change matters); "schedule" changes are exact from the next epoch on
PARAMETERS = {
    "vit": ("shape", _SHAPES), "image_size": ("shape", _SHAPES), "queue_size": ("shape", _SHAPES),
    "batch_size_train": ("data", _ORDER), "gradient_accumulation_steps": ("data", _ORDER),
    "max_words": ("data", "the training captions"),
    "alpha": ("objective", _OBJECTIVE), "momentum": ("objective", _OBJECTIVE),
    "weight_decay": ("objective", _OBJECTIVE), "gradient_clipping": ("objective", _OBJECTIVE),
    "negative_all_rank": ("objective", _OBJECTIVE),
    "max_epoch": ("schedule", "the LR schedule"), "init_lr": ("schedule", "the LR schedule"),
    "min_lr": ("schedule", "the LR schedule"),
}
# keys of the record beside the parameters: key -> (name in messages, category, why)
RUN_KEYS = {
    "world_size": ("number of ranks", "data", _ORDER),
    "seed": ("--seed", "data", "the augmentations"),
    "zero_stage": ("ZeRO stage", "state", "the saved optimizer layout"),
    "precision": ("precision", "state", "the saved optimizer layout"),
    "select_split": ("split selecting the best epoch", "run", "the best-epoch selection"),
    "train_data": ("training samples", "data", "the training data"),
    "vocab": ("tokenizer vocab", "shape", "tensor shapes and token ids"),
}


def fingerprint(items) -> dict:
    """{'count', 'sha256'} of a list of JSON-serialisable items (order matters)."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(json.dumps(item, sort_keys=True, ensure_ascii=True).encode())
        digest.update(b"\n")
    return {"count": len(items), "sha256": digest.hexdigest()}


def run_record(config, world_size, seed, zero_stage=None, precision=None, select_split=None, train_samples=None,
               vocab=None) -> dict:
    """This run's record (JSON); keys left None are not compared. train_samples: the training annotation as
    trained (a list of entries); vocab: the tokenizer's vocab ({token: id})."""
    params = {k: (mask_secrets(v) if isinstance(v, str) else v) for k, v in config.to_dict().items()}
    record = {"version": RECORD_VERSION, "parameters": params, "world_size": world_size, "seed": seed,
              "zero_stage": zero_stage, "precision": precision, "select_split": select_split}
    if train_samples is not None:
        record["train_data"] = fingerprint([[a["image"], a["caption"], a["image_id"]] for a in train_samples])
    if vocab is not None:
        record["vocab"] = fingerprint(sorted(vocab.items(), key=lambda kv: kv[1]))
    return record


def _show(value):
    if isinstance(value, dict) and "count" in value:
        return f"{value['count']} items, sha256 {value['sha256'][:8]}"
    return repr(value)


def differences(recorded: dict, current: dict) -> List[Tuple[str, str, str, object, object]]:
    """(category, name, why, recorded value, current value) for everything both records hold that differs."""
    found = []
    old_params, new_params = recorded.get("parameters", {}), current.get("parameters", {})
    for name, (category, why) in PARAMETERS.items():
        if name in old_params and name in new_params and old_params[name] != new_params[name]:
            found.append((category, name, why, old_params[name], new_params[name]))
    for key, (name, category, why) in RUN_KEYS.items():
        old, new = recorded.get(key), current.get(key)
        if old is not None and new is not None and old != new:
            found.append((category, name, why, old, new))
    return found


def check_resume(checkpoint: str, marker: dict, current: dict) -> Optional[str]:
    """Raise UserError when this run (`current` record) cannot continue `checkpoint` exactly; returns a note
    to print when the schedule changes at an epoch end (None otherwise). `marker`: the checkpoint's marker."""
    recorded = dict(marker.get("run") or {})
    recorded.setdefault("world_size", marker.get("world_size"))  # checkpoints written before run records
    found = differences(recorded, current)
    mid_epoch = bool(marker.get("step_in_epoch"))
    epoch = marker.get("epoch")
    refused = [f for f in found if f[0] != "schedule" or mid_epoch]
    if refused:
        listed = "; ".join(f"{name} {_show(old)} -> {_show(new)} ({why})" for _, name, why, old, new in refused)
        where = f" (inside epoch {epoch}: a schedule change can start only at an epoch end)" if mid_epoch and any(
            f[0] == "schedule" for f in refused) else ""
        raise UserError(f"resume: this run differs from checkpoint {checkpoint} in {listed}{where}; resume with "
                        "the checkpoint's values, or start a new run in another --output_dir")
    max_epoch = current.get("parameters", {}).get("max_epoch")
    if epoch is not None and max_epoch is not None and epoch > max_epoch:
        raise UserError(f"resume: checkpoint {checkpoint} has trained {epoch} epochs, more than max_epoch={max_epoch}")
    if found:
        changed = ", ".join(f"{name} {_show(old)} -> {_show(new)}" for _, name, _, old, new in found)
        return f"the schedule changes at this epoch end ({changed}): epochs from {epoch} on follow it"
    return None
