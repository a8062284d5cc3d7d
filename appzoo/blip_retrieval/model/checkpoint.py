"""Loading official BLIP checkpoints into BlipRetrieval (and saving in the same layout).

Official semantics (models/blip.py load_checkpoint): `{'model': state_dict}`, position embeddings of both
ViTs interpolated when the checkpoint was trained at another image size, queues of another length left at
their initial values. Stricter than official: any other missing, unexpected or mis-shaped key is an error,
so a checkpoint of the wrong size (large into base) never loads partially.
"""
import os
import pickle
from dataclasses import dataclass, field
from typing import List

import torch

from easyretrieval.atomic_files import write_atomic
from easyretrieval.errors import UserError

from appzoo.blip_retrieval.model.parts import MOMENTUM_PREFIXES, QUEUE_BUFFERS
from appzoo.blip_retrieval.model.vision_encoder import interpolate_pos_embed

POS_EMBED_KEYS = ("visual_encoder.pos_embed", "visual_encoder_m.pos_embed")
POSITION_IDS_KEYS = ("text_encoder.embeddings.position_ids", "text_encoder_m.embeddings.position_ids")
# Keys of the pre-training checkpoints (model_base.pth, model_large.pth) that retrieval does not use.
IGNORED_PREFIXES = ("text_decoder.",)
IGNORED_KEYS = ("queue_ptr",)


@dataclass
class LoadReport:
    missing: List[str] = field(default_factory=list)       # model keys the checkpoint lacked (all initialised)
    unexpected: List[str] = field(default_factory=list)    # checkpoint keys ignored (pre-training only)
    initialised: List[str] = field(default_factory=list)   # keys initialised as official, with how
    interpolated: List[str] = field(default_factory=list)  # position embeddings resized

    def summary(self):
        return (f"missing {len(self.missing)}, unexpected {len(self.unexpected)}, "
                f"initialised {self.initialised}, interpolated {self.interpolated}")


# Leading bytes of files people give as pretrained= by mistake, so the error can say what the file is.
_NOT_CHECKPOINTS = ((b"\xff\xd8\xff", "a JPEG image"), (b"\x89PNG", "a PNG image"), (b"GIF8", "a GIF image"),
                    (b"%PDF", "a PDF document"), (b"\x1f\x8b", "a gzip archive"), (b"BZh", "a bzip2 archive"),
                    (b"\xfd7zXZ", "an xz archive"), (b"<", "a text/HTML/XML file"), (b"{", "a JSON/text file"))


def sniff_checkpoint(path):
    """What the file at `path` is by its first bytes: 'zip' (torch.save), 'pickle' (legacy torch.save),
    'safetensors', or a description of something that is not a checkpoint ('a JPEG image', ...)."""
    with open(path, "rb") as handle:
        head = handle.read(9)
        size = os.fstat(handle.fileno()).st_size
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "pickle"
    if len(head) == 9 and head[8:9] == b"{" and 8 + int.from_bytes(head[:8], "little") <= size:
        return "safetensors"
    for magic, what in _NOT_CHECKPOINTS:
        if head.startswith(magic):
            return what
    return "neither a PyTorch nor a safetensors file" if head else "an empty file"


def not_a_checkpoint(path, what):
    return UserError(f"{path} is not a model checkpoint ({what}); give a BLIP .pth or .safetensors file, a "
                     "save_pretrained folder, an HF BlipForImageTextRetrieval folder or hub id, a modelzoo name "
                     "or a URL")


def read_state_dict(path):
    """The state dict inside a checkpoint file: torch.save'd {'model': sd} or bare sd (read with
    weights_only=True), or a .safetensors file. Raises UserError naming the file for anything else."""
    if not os.path.isfile(path):
        raise UserError(f"checkpoint not found: {path}")
    kind = sniff_checkpoint(path)
    if kind == "safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(path)
        except (SafetensorError, OSError, ValueError) as error:
            raise UserError(f"cannot read safetensors checkpoint {path}: {error}") from None
    if kind not in ("zip", "pickle"):
        raise not_a_checkpoint(path, kind)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # torch's message advises weights_only=False: unsafe for a file of unknown origin, so not repeated.
        raise UserError(f"{path} holds Python objects besides tensors, which are not loaded (unpickling them "
                        "could run code); save its state dict alone: torch.save({'model': model.state_dict()})"
                        ) from None
    except Exception as error:  # noqa: BLE001 - any unreadable file is the user's to fix
        if kind == "zip" and "PytorchStreamReader" in str(error):
            raise not_a_checkpoint(path, "a zip archive that torch.save did not write") from None
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise UserError(f"cannot read checkpoint {path}: {type(error).__name__}: {first}") from None
    state = checkpoint.get("model", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"checkpoint {path} holds no state dict (expected {{'model': state_dict}} or a state dict)")
    return state


def _stem_hint(unknown):
    """What to do when the checkpoint's only unknown keys are another ViT stem's (linear patch embedding vs
    vit_stem=conv): a stem mismatch always shows here first, as the checkpoint's stem keys."""
    stem_keys = [k for k in unknown if ".patch_embed.proj." in k]
    if not stem_keys or len(stem_keys) != len(unknown):
        return ""
    conv = any(k.split(".patch_embed.proj.")[1][0].isdigit() for k in stem_keys)  # proj.0.weight: a conv stack
    stem = "conv" if conv else "patch"
    return f"the checkpoint's ViT has vit_stem={stem}: set vit_stem={stem}"


def _is_momentum(key):
    return key.startswith(MOMENTUM_PREFIXES)


def plan_load(model_shapes, state, num_patches, source="checkpoint"):
    """Decide what to load (pure; no I/O). Returns (state to load, LoadReport, momentum keys to copy).

    `model_shapes`: key -> torch.Size of the model's state dict; `state`: the checkpoint's state dict.
    """
    report = LoadReport()
    state = dict(state)
    for key in POS_EMBED_KEYS:
        if key in state and key in model_shapes and state[key].shape != model_shapes[key]:
            if state[key].shape[-1] == model_shapes[key][-1]:
                old = state[key].shape[-2] - 1
                state[key] = interpolate_pos_embed(state[key], num_patches)
                report.interpolated.append(f"{key}: {old} -> {state[key].shape[-2] - 1} patches")
    mismatched = []
    for key in list(state):
        if key not in model_shapes:
            continue
        if state[key].shape != model_shapes[key]:
            if key in QUEUE_BUFFERS:  # official: a queue of another length is dropped and keeps its init
                del state[key]
                report.initialised.append(f"{key} (queue length differs: official initial value)")
            else:
                mismatched.append(f"{key}: checkpoint {tuple(state[key].shape)} vs model {tuple(model_shapes[key])}")
    if mismatched:
        raise UserError(
            f"{source} does not fit this model size ({len(mismatched)} shape mismatches, e.g. {mismatched[0]}); "
            "check the `vit` parameter (base/large) against the checkpoint"
        )
    unexpected = sorted(k for k in state if k not in model_shapes)
    unknown = [k for k in unexpected if not (k.startswith(IGNORED_PREFIXES) or k in IGNORED_KEYS)]
    if unknown:
        raise UserError(f"{source} has {len(unknown)} keys this model does not have, e.g. {unknown[:3]}; "
                        + (_stem_hint(unknown) or "is it a BLIP retrieval/pre-training checkpoint?"))
    report.unexpected = unexpected
    for key in unexpected:
        del state[key]
    missing = sorted(k for k in model_shapes if k not in state)
    allowed = set(QUEUE_BUFFERS) | set(POSITION_IDS_KEYS)
    unknown_missing = [k for k in missing if k not in allowed and not _is_momentum(k)]
    if unknown_missing:
        raise UserError(f"{source} lacks {len(unknown_missing)} keys of this model, e.g. {unknown_missing[:3]}")
    report.missing = missing
    momentum_missing = [k for k in missing if _is_momentum(k)]
    for key in missing:
        if key in momentum_missing:
            continue
        how = {"idx_queue": "-100", "ptr_queue": "0", "image_queue": "random, normalised",
               "text_queue": "random, normalised"}.get(key, "arange")
        report.initialised.append(f"{key} ({how}, official initial value)")
    if momentum_missing:
        report.initialised.append(f"{len(momentum_missing)} momentum-encoder keys (copied from the online encoders)")
    return state, report, momentum_missing


def load_pretrained(model, path):
    """Load an official BLIP checkpoint (retrieval or pre-training) from a LOCAL file into `model`."""
    return load_state(model, read_state_dict(path), source=f"checkpoint {path}")


def load_state(model, state, source="checkpoint"):
    """Load an official-layout state dict into `model` with the official rules (`plan_load`): position
    embeddings interpolated, missing queues / momentum encoders initialised as official. Returns the
    LoadReport; raises UserError (naming `source`) for a checkpoint of another size or model."""
    model_state = model.state_dict()
    shapes = {k: v.shape for k, v in model_state.items()}
    state, report, momentum_missing = plan_load(shapes, state, model.config.vision.num_patches, source=source)
    result = model.load_state_dict(state, strict=False)
    if result.unexpected_keys or set(result.missing_keys) != set(report.missing):
        raise RuntimeError(f"load plan and load_state_dict disagree: {result}")
    if momentum_missing:
        online = {k: v for k, v in model.state_dict().items()}
        with torch.no_grad():
            for key in momentum_missing:
                source_key = key.replace("_m.", ".", 1)
                model_state[key].copy_(online[source_key])
    return report


def official_shapes(state_dict):
    """`state_dict` with temp 0-dim as official, for tensors taken from the parameters (e.g. consolidated
    by the engine: BlipRetrieval holds temp as [1]); the other tensors are the same objects."""
    out = dict(state_dict)
    if "temp" in out and out["temp"].shape == (1,):
        out["temp"] = out["temp"].reshape(())
    return out


def official_layout(state_dict):
    """What official BLIP saves and loads: `{'model': state_dict}` (models/blip.py load_checkpoint)."""
    return {"model": official_shapes(state_dict)}


def official_state_dict(model, dtype=torch.float32):
    """The model's state dict in the official layout, floating tensors as `dtype`; a float32 EMA shadow
    of the momentum encoders (kept when training in half precision) replaces their live values."""
    state = model.state_dict()
    shadow = getattr(model, "_momentum_shadow", {})
    out = {}
    for key, value in state.items():
        if key in shadow and shadow[key].shape == value.shape:
            value = shadow[key]
        out[key] = value.detach().to("cpu", dtype=dtype if value.is_floating_point() else value.dtype).clone()
    return out


def save_official(model_or_state_dict, path):
    """Write {'model': state_dict} (official layout) to `path` atomically; the official code loads it."""
    if isinstance(model_or_state_dict, torch.nn.Module):
        state = official_state_dict(model_or_state_dict)
    else:
        state = {k: v.detach().cpu() for k, v in model_or_state_dict.items()}
    layout = official_layout(state)
    return write_atomic(path, lambda handle: torch.save(layout, handle))
