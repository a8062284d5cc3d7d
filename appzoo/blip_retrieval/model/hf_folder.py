"""transformers `BlipForImageTextRetrieval` folders (save_pretrained layout, as on the HF hub): read as our
official layout, and written with a tokenizer and image processor that transformers loads without warnings.

Reading needs no transformers: config.json gives the sizes, the weights come from model.safetensors (or the
shards named by model.safetensors.index.json, or pytorch_model.bin read with weights_only=True), the vocab
from vocab.txt or tokenizer.json. `blip_extras.safetensors` (or the older blip_extras.pth), written by
`easyretrieval convert --to hf`, restores the momentum encoders, queues and temp exactly; without it they
are initialised as official (`hf_convert.from_hf`).
"""
import json
import os
from dataclasses import dataclass
from typing import Optional

from easyretrieval.errors import UserError

CONFIG_FILE = "config.json"
SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
BIN_FILE = "pytorch_model.bin"
EXTRAS_FILE = "blip_extras.safetensors"
LEGACY_EXTRAS_FILE = "blip_extras.pth"
ARCHITECTURE = "BlipForImageTextRetrieval"


@dataclass
class HfFolderInfo:
    """What an HF folder's files say (no weights read)."""

    path: str
    config: object            # our BlipRetrievalConfig
    vocab: Optional[object]   # a vocab.txt path, a token -> id dict (from tokenizer.json), or None


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"cannot read {path}: {type(error).__name__}: {error}") from None


def is_hf_folder(path) -> bool:
    """True when `path` holds a transformers BLIP config.json (model_type "blip")."""
    config = os.path.join(path, CONFIG_FILE)
    if not os.path.isfile(config):
        return False
    try:
        with open(config, encoding="utf-8") as handle:
            return json.load(handle).get("model_type") == "blip"
    except (OSError, ValueError, AttributeError):
        return False


def _extras(path):
    """(extras {official key: tensor}, their config dict) from blip_extras.*, or (None, None)."""
    new, old = os.path.join(path, EXTRAS_FILE), os.path.join(path, LEGACY_EXTRAS_FILE)
    if os.path.isfile(new):
        from safetensors import safe_open

        with safe_open(new, framework="pt") as handle:
            meta = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        return tensors, json.loads(meta.get("config", "null"))
    if os.path.isfile(old):
        import torch

        saved = torch.load(old, map_location="cpu", weights_only=True)
        return saved.get("extras"), saved.get("config")
    return None, None


def _queue_size(path):
    from safetensors import safe_open

    extras = os.path.join(path, EXTRAS_FILE)
    if os.path.isfile(extras):
        with safe_open(extras, framework="pt") as handle:
            if "image_queue" in handle.keys():
                return handle.get_slice("image_queue").get_shape()[1]
        return None
    tensors, _ = _extras(path)
    return tensors["image_queue"].shape[1] if tensors and "image_queue" in tensors else None


def hf_vocab(path):
    """The folder's vocab: vocab.txt's path, else tokenizer.json's WordPiece vocab (a dict), else None."""
    text = os.path.join(path, "vocab.txt")
    if os.path.isfile(text):
        return text
    fast = os.path.join(path, "tokenizer.json")
    if os.path.isfile(fast):
        model = _read_json(fast).get("model", {})
        if model.get("type") == "WordPiece" and isinstance(model.get("vocab"), dict):
            return dict(model["vocab"])
    return None


def read_info(path) -> HfFolderInfo:
    """Sizes and vocab of an HF BlipForImageTextRetrieval folder; UserError for another BLIP head."""
    from appzoo.blip_retrieval.model.hf_convert import config_from_hf

    hf_config = _read_json(os.path.join(path, CONFIG_FILE))
    architectures = hf_config.get("architectures") or [ARCHITECTURE]
    if ARCHITECTURE not in architectures:
        raise UserError(f"{path} holds a transformers {', '.join(architectures)}, not a {ARCHITECTURE}: "
                        "only BLIP's retrieval (ITM/ITC) heads can be loaded")
    config = config_from_hf(hf_config, queue_size=_queue_size(path), where=os.path.join(path, CONFIG_FILE))
    return HfFolderInfo(path, config, hf_vocab(path))


def read_hf_state(path):
    """The HF state dict of the folder's weights (safetensors, sharded safetensors or pytorch_model.bin)."""
    from safetensors.torch import load_file

    single, index = os.path.join(path, SAFETENSORS_FILE), os.path.join(path, SAFETENSORS_INDEX)
    if os.path.isfile(single):
        return load_file(single)
    if os.path.isfile(index):
        shards = sorted(set(_read_json(index).get("weight_map", {}).values()))
        state = {}
        for shard in shards:
            state.update(load_file(os.path.join(path, shard)))
        return state
    binary = os.path.join(path, BIN_FILE)
    if os.path.isfile(binary):
        from appzoo.blip_retrieval.model.checkpoint import read_state_dict

        return read_state_dict(binary)
    raise UserError(f"{path} has a BLIP config.json but no weights ({SAFETENSORS_FILE}, {SAFETENSORS_INDEX} "
                    f"or {BIN_FILE})")


def read_weights(info: HfFolderInfo):
    """The folder's weights in the official layout (extras restored when blip_extras.* is there)."""
    from appzoo.blip_retrieval.model.hf_convert import from_hf

    extras, _ = _extras(info.path)
    return from_hf(read_hf_state(info.path), info.config, extras)


def write_hf_folder(output_dir, state_dict, config, tokenizer):
    """Write an official-layout state dict as a transformers BlipForImageTextRetrieval folder: the model
    (config.json, model.safetensors), BLIP's tokenizer (with vocab.txt), the image processor (bicubic
    resize, CLIP mean/std) and blip_extras.safetensors (what HF has no place for). Returns output_dir."""
    from safetensors.torch import save_file
    from transformers import BlipConfig, BlipForImageTextRetrieval, BlipImageProcessor, BlipProcessor
    from transformers.image_utils import PILImageResampling

    from appzoo.blip_retrieval.data.transforms import CLIP_MEAN, CLIP_STD
    from appzoo.blip_retrieval.model.hf_convert import hf_config_dict, to_hf
    from appzoo.blip_retrieval.model.pretrained_folder import base_vocab

    special_ids = {"pad_token_id": tokenizer.pad_token_id, "bos_token_id": tokenizer.bos_token_id,
                   "eos_token_id": tokenizer.sep_token_id, "sep_token_id": tokenizer.sep_token_id}
    if len(tokenizer) != config.text.vocab_size:
        raise UserError(f"the tokenizer has {len(tokenizer)} tokens, the checkpoint's text encoder "
                        f"{config.text.vocab_size}: give the vocab it was trained with (--tokenizer)")
    hf_state, _, extras = to_hf(state_dict, config)
    model = BlipForImageTextRetrieval(BlipConfig(**hf_config_dict(config, special_ids)))
    result = model.load_state_dict(hf_state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise UserError(f"the checkpoint does not map onto {ARCHITECTURE}: missing {result.missing_keys[:3]}, "
                        f"unexpected {result.unexpected_keys[:3]}")
    os.makedirs(output_dir, exist_ok=True)
    model.save_pretrained(output_dir)
    tokenizer.model_max_length = config.text.max_position_embeddings
    size = config.vision.image_size
    image_processor = BlipImageProcessor(size={"height": size, "width": size}, resample=PILImageResampling.BICUBIC,
                                         image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD))
    BlipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(output_dir)
    with open(os.path.join(output_dir, "vocab.txt"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(base_vocab(tokenizer)) + "\n")
    save_file({k: v.detach().cpu().contiguous() for k, v in extras.items()}, os.path.join(output_dir, EXTRAS_FILE),
              metadata={"config": json.dumps(config.to_dict())})
    return output_dir
