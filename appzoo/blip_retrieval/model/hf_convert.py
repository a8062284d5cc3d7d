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
_SHARED_PREFIXES = ("text_encoder.", "vision_proj.", "text_proj.", "itm_head.")
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


def infer_config(state_dict, vit=None):
    """Our config from an official state dict's shapes; `vit` names the size when the width is ambiguous."""
    width = state_dict["visual_encoder.cls_token"].shape[-1]
    if vit is None:
        vit = {768: "base", 1024: "large"}.get(width)
        if vit is None:
            raise UserError(f"vision width {width} is not base (768) or large (1024); pass --vit small|tiny")
    image_size = int(round((state_dict["visual_encoder.pos_embed"].shape[1] - 1) ** 0.5)) * 16
    overrides = {"embed_dim": state_dict["vision_proj.weight"].shape[0]}
    if "image_queue" in state_dict:
        overrides["queue_size"] = state_dict["image_queue"].shape[1]
    vocab = state_dict["text_encoder.embeddings.word_embeddings.weight"].shape[0]
    config = create_config(vit, image_size, vocab_size=vocab, **overrides)
    if config.vision.width != width:
        raise UserError(f"vit={vit} has vision width {config.vision.width}, the checkpoint {width}")
    return config


def hf_config_dict(config):
    """Keyword arguments of transformers.BlipConfig equal to our config (eps 1e-6, 12 text heads...)."""
    v, t = config.vision, config.text
    return dict(
        vision_config=dict(hidden_size=v.width, num_hidden_layers=v.depth, num_attention_heads=v.heads,
                           intermediate_size=int(v.width * v.mlp_ratio), image_size=v.image_size,
                           patch_size=v.patch_size, layer_norm_eps=v.layer_norm_eps, hidden_act="gelu"),
        text_config=dict(vocab_size=t.vocab_size, hidden_size=t.hidden_size, num_hidden_layers=t.num_layers,
                         num_attention_heads=t.num_heads, intermediate_size=t.intermediate_size,
                         encoder_hidden_size=v.width, hidden_dropout_prob=t.hidden_dropout,
                         attention_probs_dropout_prob=t.attention_dropout, layer_norm_eps=t.layer_norm_eps,
                         max_position_embeddings=t.max_position_embeddings, pad_token_id=t.pad_token_id,
                         hidden_act="gelu"),
        image_text_hidden_size=config.embed_dim,
    )


def to_hf(state_dict, config):
    """Official state dict -> (HF state dict, BlipConfig kwargs, extras {official key: tensor})."""
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
    state = {hf_to_official_key(k): v for k, v in hf_state_dict.items()}
    extras = dict(extras or {})
    state.update({k: v for k, v in extras.items() if k not in state})
    if _POSITION_IDS not in state:
        state[_POSITION_IDS] = torch.arange(config.text.max_position_embeddings).unsqueeze(0)
    for key in [k for k in state if k.startswith(("visual_encoder.", "vision_proj.", "text_encoder.", "text_proj."))]:
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
