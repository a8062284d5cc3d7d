"""BLIP's image encoder: timm's ViT with official BLIP settings and checkpointing of the last N blocks.

Same parameter names as official models/vit.py (cls_token, pos_embed, patch_embed.proj, blocks.i.*, norm),
LayerNorm eps 1e-6, qkv bias, no head; `forward` returns all normed tokens [B, 1+P, width].

Two options for models trained from scratch (defaults are official): `init_std` re-draws the blocks' Linear
weights with another std (timm's 0.02 suits width 768; at width 64 each block then adds ~2% to the residual
stream and the class token carries almost no image content at init), and `stem="conv"` replaces the linear
patch embedding by a convolutional stem (Xiao et al., "Early Convolutions Help Transformers See Better",
NeurIPS 2021): the same token grid, but translation-equivariant features of size and position.
"""
import math
from functools import partial

import torch
from torch import nn
from timm.layers import resample_abs_pos_embed, trunc_normal_
from timm.models.vision_transformer import VisionTransformer

from appzoo.blip_retrieval.model._checkpointing import checkpoint


class VisionEncoder(VisionTransformer):
    """timm VisionTransformer whose block i is checkpointed iff grad_ckpt and i >= depth - ckpt_layer."""

    def __init__(self, config, grad_ckpt=None):
        super().__init__(
            img_size=config.image_size,
            patch_size=config.patch_size,
            embed_dim=config.width,
            depth=config.depth,
            num_heads=config.heads,
            mlp_ratio=config.mlp_ratio,
            qkv_bias=True,
            class_token=True,
            global_pool="",
            num_classes=0,
            drop_path_rate=config.drop_path_rate,
            norm_layer=partial(nn.LayerNorm, eps=config.layer_norm_eps),
        )
        # Official models/vit.py initialises the class token like pos_embed, trunc_normal(std 0.02);
        # timm 1.0 uses normal(std 1e-6). Matters only when training from scratch.
        trunc_normal_(self.cls_token, std=0.02)
        if config.init_std != 0.02:  # the default leaves timm's init (and its random draws) untouched
            for block in self.blocks:
                for sub in block.modules():
                    if isinstance(sub, nn.Linear):
                        trunc_normal_(sub.weight, std=config.init_std)
        if config.stem == "conv":
            self.patch_embed.proj = conv_stem(config.patch_size, config.width)
        self.vit_grad_ckpt = config.grad_ckpt if grad_ckpt is None else grad_ckpt
        self.ckpt_layer = config.ckpt_layer

    def checkpointed_blocks(self):
        """Indices of the blocks that are recomputed in backward (the official last-N rule)."""
        depth = len(self.blocks)
        if not self.vit_grad_ckpt:
            return []
        return [i for i in range(depth) if i >= depth - self.ckpt_layer]

    def forward(self, image):
        x = self.patch_embed(image)
        x = self._pos_embed(x)
        x = self.patch_drop(x)
        x = self.norm_pre(x)
        ckpt = set(self.checkpointed_blocks()) if torch.is_grad_enabled() else set()
        for i, block in enumerate(self.blocks):
            x = checkpoint(block, x) if i in ckpt else block(x)
        return self.norm(x)


def interpolate_pos_embed(pos_embed, num_patches):
    """Official BLIP interpolate_pos_embed: bicubic resize of the patch grid, class token kept.

    `pos_embed` [1, 1+P_old, W] -> [1, 1+num_patches, W]; unchanged (same object) when sizes agree.
    """
    old_side = int(math.sqrt(pos_embed.shape[-2] - 1))
    new_side = int(math.sqrt(num_patches))
    if old_side == new_side:
        return pos_embed
    return resample_abs_pos_embed(
        pos_embed, new_size=(new_side, new_side), old_size=(old_side, old_side),
        num_prefix_tokens=1, interpolation="bicubic", antialias=False,
    )


def conv_stem(patch_size, width):
    """The conv stem of Xiao et al. 2021: log2(patch_size) 3x3 stride-2 convolutions, each followed by
    GroupNorm(1 group) and ReLU, channels doubling up to width/2 (at least 16), then a 1x1 convolution to `width`.

    [B, 3, H, W] -> [B, width, H/patch_size, W/patch_size], the grid of the linear patch embedding it replaces.
    GroupNorm, not the paper's BatchNorm: no running statistics, so the momentum encoder's EMA and evaluation
    see the same function. patch_size must be a power of two (VisionConfig checks it).
    """
    layers, c_in, n = [], 3, int(math.log2(patch_size))
    for i in range(n):
        c_out = max(16, width >> (n - i))
        layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False), nn.GroupNorm(1, c_out), nn.ReLU()]
        c_in = c_out
    layers.append(nn.Conv2d(c_in, width, 1))
    return nn.Sequential(*layers)
