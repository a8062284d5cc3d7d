"""Configuration of the BLIP retrieval model (no torch import: configs are plain data).

Named sizes: `base` (ViT-B/16) and `large` (ViT-L/16) are the official models; `small` and `tiny` are
for tests and the demo (few layers, small widths, a small text encoder). The text encoder is BLIP's MED
(BERT-base with cross-attention in every layer); its cross-attention width is derived from the vision
width in one place (`BlipRetrievalConfig.__post_init__`).
"""
from dataclasses import asdict, dataclass, field, fields

from easyretrieval.errors import UserError

VITS = ("base", "large", "small", "tiny")
VIT_STEMS = ("patch", "conv")  # patch: official linear patch embedding; conv: convolutional stem (from scratch)


def stem_fits_patch(stem, patch_size):
    """Whether `stem` can make patch_size-pixel tokens: a conv stem halves the image per stride-2 convolution,
    so its patch_size must be a power of two; the linear patch embedding takes any size."""
    return stem != "conv" or (patch_size >= 2 and not patch_size & (patch_size - 1))


@dataclass
class VisionConfig:
    width: int = 768            # token width of the ViT
    depth: int = 12             # number of transformer blocks
    heads: int = 12             # attention heads
    image_size: int = 384       # input resolution (a multiple of patch_size)
    patch_size: int = 16
    stem: str = "patch"         # one of VIT_STEMS
    mlp_ratio: float = 4.0
    drop_path_rate: float = 0.0  # 0 for base, 0.1 for large, as official create_vit
    layer_norm_eps: float = 1e-6
    grad_ckpt: bool = False     # checkpoint the last `ckpt_layer` blocks
    ckpt_layer: int = 0
    init_std: float = 0.02      # std of the truncated-normal init of the blocks' Linear weights (timm/official: 0.02)

    def __post_init__(self):
        if self.image_size % self.patch_size:
            raise UserError(f"image_size {self.image_size} is not a multiple of the patch size {self.patch_size}")
        if not 0 <= self.ckpt_layer <= self.depth:
            raise UserError(f"vit_ckpt_layer {self.ckpt_layer} must be between 0 and the ViT depth {self.depth}")
        if self.stem not in VIT_STEMS:
            raise UserError(f"vit_stem '{self.stem}' is not one of {', '.join(VIT_STEMS)}")
        if not stem_fits_patch(self.stem, self.patch_size):
            raise UserError(f"vit_stem=conv needs a patch_size that is a power of two (its stride-2 convolutions "
                            f"halve the image each), not {self.patch_size}; use e.g. patch_size=8 or 16")

    @property
    def num_patches(self):
        return (self.image_size // self.patch_size) ** 2


@dataclass
class TextConfig:
    vocab_size: int = 30524     # bert-base-uncased 30522 + [DEC] + [ENC]
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    encoder_width: int = 768    # cross-attention key/value input width (= vision width; derived)
    grad_ckpt: bool = False     # checkpoint every text layer
    init_std: float = 0.02      # std of the normal init of Linear/Embedding weights (official BERT: 0.02)

    def __post_init__(self):
        if self.hidden_size % self.num_heads:
            raise ValueError(f"text hidden_size {self.hidden_size} is not divisible by {self.num_heads} heads")


@dataclass
class BlipRetrievalConfig:
    vision: VisionConfig = field(default_factory=VisionConfig)
    text: TextConfig = field(default_factory=TextConfig)
    vit: str = "base"               # the named size this config was built from
    embed_dim: int = 256            # ITC feature width (vision_proj / text_proj)
    queue_size: int = 57600         # momentum feature queue length
    momentum: float = 0.995         # EMA momentum of the momentum encoders
    negative_all_rank: bool = False  # sample ITM hard negatives from every rank
    max_length: int = 35            # tokens per caption (official retrieval)
    max_words: int = 30             # captions are cut to this many words (official pre_caption) before tokenizing
    temp_init: float = 0.07         # initial ITC temperature
    temp_min: float = 0.001         # temp is clamped to [temp_min, temp_max] at each forward
    temp_max: float = 0.5

    def __post_init__(self):
        if isinstance(self.vision, dict):
            self.vision = VisionConfig(**self.vision)
        if isinstance(self.text, dict):
            self.text = TextConfig(**self.text)
        self.text.encoder_width = self.vision.width

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, values):
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UserError(f"unknown model config keys {unknown}; known: {sorted(known)}")
        return cls(**values)


_SIZES = {
    # vit: (vision width, depth, heads, drop_path, text hidden, text layers, text heads, text ffn, embed_dim)
    "base": (768, 12, 12, 0.0, 768, 12, 12, 3072, 256),
    "large": (1024, 24, 16, 0.1, 768, 12, 12, 3072, 256),
    "small": (192, 4, 3, 0.0, 128, 2, 2, 512, 128),
    "tiny": (64, 2, 2, 0.0, 64, 2, 2, 128, 64),
}


def named_size(vision_width, vision_depth, text_hidden_size, text_layers):
    """The named size (`vit`) with these widths and depths, or None when no named size has them."""
    for vit, (vw, vd, _vh, _dp, tw, tl, _th, _tf, _ed) in _SIZES.items():
        if (vw, vd, tw, tl) == (vision_width, vision_depth, text_hidden_size, text_layers):
            return vit
    return None


def create_config(vit, image_size, vocab_size=30524, **overrides):
    """The config of a named size; `overrides` set top-level fields (vision=/text= take dicts of fields)."""
    if vit not in _SIZES:
        raise UserError(f"unknown vit '{vit}'; known: {', '.join(VITS)}")
    vw, vd, vh, dp, tw, tl, th, tf, ed = _SIZES[vit]
    vision_over = dict(overrides.pop("vision", {}) or {})
    text_over = dict(overrides.pop("text", {}) or {})
    # Built in one call with the overrides: the image_size check must see the overriding patch_size.
    vision = VisionConfig(**{"width": vw, "depth": vd, "heads": vh, "image_size": image_size, "drop_path_rate": dp,
                             **vision_over})
    text = TextConfig(**{"vocab_size": vocab_size, "hidden_size": tw, "num_layers": tl, "num_heads": th,
                         "intermediate_size": tf, **text_over})
    overrides.setdefault("embed_dim", ed)
    return BlipRetrievalConfig(vision=vision, text=text, vit=vit, **overrides)


def config_from_params(cfg, vocab_size):
    """The model config from the app's resolved parameters (see appzoo/blip_retrieval/params.py)."""
    return create_config(
        cfg["vit"],
        cfg["image_size"],
        vocab_size=vocab_size,
        vision={"grad_ckpt": bool(cfg["vit_grad_ckpt"]), "ckpt_layer": int(cfg["vit_ckpt_layer"]),
                "patch_size": int(cfg.get("patch_size", 16)), "stem": cfg.get("vit_stem", "patch"),
                "init_std": float(cfg.get("vit_init_std", 0.02))},
        text={"grad_ckpt": bool(cfg.get("text_grad_ckpt", False)), "init_std": float(cfg.get("text_init_std", 0.02)),
              "hidden_dropout": float(cfg.get("text_dropout", 0.1)),
              "attention_dropout": float(cfg.get("text_dropout", 0.1))},
        queue_size=cfg["queue_size"],
        momentum=cfg["momentum"],
        negative_all_rank=cfg["negative_all_rank"],
        max_words=int(cfg.get("max_words", 30)),
    )
