"""Key conversion between the official BLIP retrieval layout and transformers' BlipForImageTextRetrieval.

Pure functions on state dicts (no I/O). Keys without an HF counterpart (momentum encoders, queues, temp,
position_ids) travel as `extras` so a round trip restores them exactly. HF callers must put [ENC] at
position 0 of the text for ITM themselves (our `itm_logits` does it).
"""
import re

import torch
import torch.nn.functional as F

from easyretrieval.errors import UserError

from appzoo.blip_retrieval.model.config import create_config
from appzoo.blip_retrieval.model.parts import HF_SHARED_PREFIXES, ONLINE_PREFIXES

_VISION_NAMES = [  # (official name, HF name) under visual_encoder; {n} = block index; a trailing "." = a prefix
    ("visual_encoder.cls_token", "vision_model.embeddings.class_embedding"),
    ("visual_encoder.pos_embed", "vision_model.embeddings.position_embedding"),
    ("visual_encoder.patch_embed.proj.", "vision_model.embeddings.patch_embedding."),
    ("visual_encoder.norm.", "vision_model.post_layernorm."),
    ("visual_encoder.blocks.{n}.norm1.", "vision_model.encoder.layers.{n}.layer_norm1."),
    ("visual_encoder.blocks.{n}.norm2.", "vision_model.encoder.layers.{n}.layer_norm2."),
    ("visual_encoder.blocks.{n}.attn.qkv.", "vision_model.encoder.layers.{n}.self_attn.qkv."),
    ("visual_encoder.blocks.{n}.attn.proj.", "vision_model.encoder.layers.{n}.self_attn.projection."),
    ("visual_encoder.blocks.{n}.mlp.", "vision_model.encoder.layers.{n}.mlp."),
]


def _rules(pairs):
    """(regex, replacement) rules renaming the first name of each pair to the second."""
    rules = []
    for src, dst in pairs:
        pattern = "^" + re.escape(src).replace(re.escape("{n}"), r"(\d+)") + ("" if src.endswith(".") else "$")
        rules.append((pattern, dst.replace("{n}", r"\1")))
    return rules


_VISION_RULES = _rules(_VISION_NAMES)
_REVERSE_RULES = _rules([(hf, official) for official, hf in _VISION_NAMES])
_SHARED_PREFIXES = HF_SHARED_PREFIXES
_POSITION_IDS = "text_encoder.embeddings.position_ids"  # not persistent in HF


def _rename(key, rules):
    for pattern, replacement in rules:
        new, count = re.subn(pattern, replacement, key)
        if count:
            return new
    return None


def official_to_hf_key(key):
    """HF name of an official key, or None when HF has no counterpart."""
    if key == _POSITION_IDS:
        return None
    if key.startswith(_SHARED_PREFIXES):
        return key
    return _rename(key, _VISION_RULES) if key.startswith("visual_encoder.") else None


def hf_to_official_key(key):
    if key.startswith(_SHARED_PREFIXES):
        return key
    new = _rename(key, _REVERSE_RULES)
    if new is None:
        raise UserError(f"HF key {key} has no BLIP retrieval counterpart")
    return new


def _count_layers(state_dict, prefix):
    found = {int(m.group(1)) for k in state_dict for m in [re.match(re.escape(prefix) + r"(\d+)\.", k)] if m}
    return max(found) + 1 if found else 0


def infer_config(state_dict, vit=None):
    """Our config from an official state dict's shapes: the named size (`vit`) whose widths and depths
    it has (or `vit` when given), image size, embed_dim, queue length and vocab size."""
    from appzoo.blip_retrieval.model.config import VITS, named_size

    width = state_dict["visual_encoder.cls_token"].shape[-1]
    depth = _count_layers(state_dict, "visual_encoder.blocks.")
    text_width = state_dict["text_encoder.embeddings.word_embeddings.weight"].shape[1]
    text_layers = _count_layers(state_dict, "text_encoder.encoder.layer.")
    found = named_size(width, depth, text_width, text_layers)
    if vit is None:
        vit = found
        if vit is None:
            raise UserError(f"the checkpoint's sizes (ViT width {width}, {depth} blocks; text width {text_width}, "
                            f"{text_layers} layers) are none of the named sizes {', '.join(VITS)}")
    image_size = int(round((state_dict["visual_encoder.pos_embed"].shape[1] - 1) ** 0.5)) * 16
    overrides = {"embed_dim": state_dict["vision_proj.weight"].shape[0]}
    if "image_queue" in state_dict:
        overrides["queue_size"] = state_dict["image_queue"].shape[1]
    vocab = state_dict["text_encoder.embeddings.word_embeddings.weight"].shape[0]
    config = create_config(vit, image_size, vocab_size=vocab, **overrides)
    if (config.vision.width, config.vision.depth) != (width, depth):
        raise UserError(f"vit={vit} has a ViT of width {config.vision.width} and {config.vision.depth} blocks, "
                        f"the checkpoint {width} and {depth}")
    return config


def official_key_layout(state_dict):
    """'official' (visual_encoder.*), 'hf' (vision_model.*, BlipForImageTextRetrieval) or None."""
    if any(k.startswith("visual_encoder.") for k in state_dict):
        return "official"
    if any(k.startswith("vision_model.") for k in state_dict):
        return "hf"
    return None


def config_from_hf(hf_config, queue_size=None, where="the HF config"):
    """Our config from a transformers BlipConfig dict (config.json): the named size with its widths and
    depths. The math stays official BLIP's (e.g. ViT LayerNorm eps 1e-6) whatever the file's eps says."""
    from appzoo.blip_retrieval.model.config import VITS, named_size

    try:
        vision, text = hf_config["vision_config"], hf_config["text_config"]
        sizes = (vision["hidden_size"], vision["num_hidden_layers"], text["hidden_size"], text["num_hidden_layers"])
        image_size, vocab = vision["image_size"], text["vocab_size"]
        embed_dim = hf_config.get("image_text_hidden_size", 256)
    except (KeyError, TypeError) as error:
        raise UserError(f"{where} is not a BLIP config (no {error})") from None
    vit = named_size(*sizes)
    if vit is None:
        raise UserError(f"{where}: ViT width {sizes[0]}, {sizes[1]} blocks, text width {sizes[2]}, {sizes[3]} "
                        f"layers are none of the named sizes {', '.join(VITS)}")
    overrides = {"embed_dim": embed_dim}
    if queue_size is not None:
        overrides["queue_size"] = queue_size
    return create_config(vit, image_size, vocab_size=vocab, **overrides)


def from_hf_keys(hf_state_dict):
    """HF key names -> official key names (no keys added); `text_encoder.*.position_ids` saved by older
    transformers versions kept, other position_ids dropped (HF-only buffers)."""
    return {hf_to_official_key(k): v for k, v in hf_state_dict.items()
            if not (k.endswith("position_ids") and not k.startswith("text_encoder."))}


def hf_config_dict(config, special_ids=None):
    """Keyword arguments of transformers.BlipConfig equal to our config (eps 1e-6, 12 text heads...).

    special_ids: the tokenizer's {pad, bos, eos, sep}_token_id (BLIP: [PAD], [DEC], [SEP], [SEP]); without
    them transformers' defaults (bert-base-uncased + BLIP's [DEC] = 30522) stay.
    """
    v, t = config.vision, config.text
    text_ids = {"pad_token_id": t.pad_token_id}
    text_ids.update(special_ids or {})
    return dict(
        vision_config=dict(hidden_size=v.width, num_hidden_layers=v.depth, num_attention_heads=v.heads,
                           intermediate_size=int(v.width * v.mlp_ratio), image_size=v.image_size,
                           patch_size=v.patch_size, layer_norm_eps=v.layer_norm_eps, hidden_act="gelu"),
        text_config=dict(vocab_size=t.vocab_size, hidden_size=t.hidden_size, num_hidden_layers=t.num_layers,
                         num_attention_heads=t.num_heads, intermediate_size=t.intermediate_size,
                         encoder_hidden_size=v.width, hidden_dropout_prob=t.hidden_dropout,
                         attention_probs_dropout_prob=t.attention_dropout, layer_norm_eps=t.layer_norm_eps,
                         max_position_embeddings=t.max_position_embeddings, hidden_act="gelu", **text_ids),
        image_text_hidden_size=config.embed_dim,
    )


def to_hf(state_dict, config):
    """Official state dict -> (HF state dict, BlipConfig kwargs, extras {official key: tensor})."""
    if config.vision.stem != "patch":
        raise UserError(f"a vit_stem={config.vision.stem} model has no transformers BLIP counterpart (its ViT takes a "
                        "linear patch embedding only); keep it as a save_pretrained folder or an official-layout .pth")
    hf_state, extras = {}, {}
    for key, value in state_dict.items():
        new = official_to_hf_key(key)
        if new is None:
            extras[key] = value
        else:
            hf_state[new] = value
    return hf_state, hf_config_dict(config), extras


def from_hf(hf_state_dict, config, extras=None, seed=0):
    """HF state dict -> official state dict. Without `extras` (an HF-born model), the keys HF lacks are
    initialised as official: momentum encoders copy the online ones, queues random-normalised (seeded),
    idx_queue -100, ptr_queue 0, temp config.temp_init, position_ids arange."""
    state = from_hf_keys(hf_state_dict)
    extras = dict(extras or {})
    state.update({k: v for k, v in extras.items() if k not in state})
    if _POSITION_IDS not in state:
        state[_POSITION_IDS] = torch.arange(config.text.max_position_embeddings).unsqueeze(0)
    for key in [k for k in state if k.startswith(ONLINE_PREFIXES)]:
        prefix, rest = key.split(".", 1)
        momentum_key = f"{prefix}_m.{rest}"
        if momentum_key not in state:
            state[momentum_key] = state[key].clone()
    generator = torch.Generator().manual_seed(seed)
    for name in ("image_queue", "text_queue"):
        if name not in state:
            state[name] = F.normalize(torch.randn(config.embed_dim, config.queue_size, generator=generator), dim=0)
    state.setdefault("idx_queue", torch.full((1, config.queue_size), -100))
    state.setdefault("ptr_queue", torch.zeros(1, dtype=torch.long))
    state.setdefault("temp", torch.tensor(config.temp_init))
    return state
