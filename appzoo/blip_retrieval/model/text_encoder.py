"""BLIP's MED text encoder: BERT with cross-attention to image tokens in every layer (official names).

Parameter names equal official models/med.py `BertModel(add_pooling_layer=False)` and transformers'
`BlipTextModel`, so checkpoints load unchanged. Differences from those, none of which changes the math:
attention runs through torch's scaled_dot_product_attention, and the image-side keys/values of the
cross-attention can be computed once per image (`cross_kv`) and reused for many captions.
Without image tokens (text-only mode, official mode='text') the cross-attention is skipped.
"""
import math
from dataclasses import dataclass
from typing import List

import torch
import torch.nn.functional as F
from torch import nn

from appzoo.blip_retrieval.model._checkpointing import checkpoint
from appzoo.blip_retrieval.model.cross_groups import CrossGroups, grouped_cross_attention, plan_cross_groups

MASK_VALUE = -10000.0  # official MED: (1 - mask) * -10000


@dataclass
class CrossKV:
    """Per text layer, the cross-attention keys and values of a set of images: [num_images, heads, L, d]."""

    keys: List[torch.Tensor]
    values: List[torch.Tensor]

    @property
    def num_images(self):
        return self.keys[0].shape[0]


class TextEmbeddings(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout)
        # In official checkpoints (persistent), though it only ever holds arange.
        self.register_buffer("position_ids", torch.arange(config.max_position_embeddings).expand((1, -1)))

    def forward(self, input_ids):
        length = input_ids.shape[1]
        positions = torch.arange(length, device=input_ids.device).unsqueeze(0)
        embeddings = self.word_embeddings(input_ids) + self.position_embeddings(positions)
        return self.dropout(self.LayerNorm(embeddings))


class MultiHeadAttention(nn.Module):
    """Official `BertSelfAttention` (named `self` in its parent): query from text, key/value from kv_width."""

    def __init__(self, config, kv_width):
        super().__init__()
        self.num_heads = config.num_heads
        self.head_dim = config.hidden_size // config.num_heads
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(kv_width, config.hidden_size)
        self.value = nn.Linear(kv_width, config.hidden_size)
        self.dropout_p = config.attention_dropout

    def _split(self, x):
        return x.view(*x.shape[:-1], self.num_heads, self.head_dim).transpose(1, 2)

    def project_kv(self, states):
        return self._split(self.key(states)), self._split(self.value(states))

    def forward(self, hidden, mask=None, states=None, kv=None, groups=None):
        dropout_p = self.dropout_p if self.training else 0.0
        if groups is not None:  # cached image keys/values, rows grouped by image (no per-row copy)
            return grouped_cross_attention(self.query(hidden), kv[0], kv[1], groups, self.num_heads, dropout_p)
        query = self._split(self.query(hidden))
        key, value = kv if kv is not None else self.project_kv(hidden if states is None else states)
        context = F.scaled_dot_product_attention(
            query, key, value, attn_mask=mask, dropout_p=dropout_p,
            scale=1.0 / math.sqrt(self.head_dim),
        )
        return context.transpose(1, 2).flatten(2)


class SelfOutput(nn.Module):
    def __init__(self, config, in_width):
        super().__init__()
        self.dense = nn.Linear(in_width, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout)

    def forward(self, hidden, residual):
        return self.LayerNorm(self.dropout(self.dense(hidden)) + residual)


class Attention(nn.Module):
    def __init__(self, config, kv_width):
        super().__init__()
        self.self = MultiHeadAttention(config, kv_width)
        self.output = SelfOutput(config, config.hidden_size)

    def forward(self, hidden, mask=None, states=None, kv=None, groups=None):
        return self.output(self.self(hidden, mask, states, kv, groups), hidden)


class Intermediate(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)

    def forward(self, hidden):
        return F.gelu(self.dense(hidden))  # exact (erf) GELU, as BERT's "gelu"


class TextLayer(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.attention = Attention(config, config.hidden_size)
        self.crossattention = Attention(config, config.encoder_width)
        self.intermediate = Intermediate(config)
        self.output = SelfOutput(config, config.intermediate_size)

    def forward(self, hidden, mask, image_states=None, image_key=None, image_value=None, groups=None,
                first_token_only=False, self_attended=False):
        if self_attended:  # `hidden` has been through this layer's self-attention (TextEncoder.text_prefix)
            hidden = hidden[:, :1] if first_token_only else hidden
        elif first_token_only:  # only row 0 is read on: its query still attends to every token's keys/values
            hidden = self.attention(hidden[:, :1], mask, states=hidden)
        else:
            hidden = self.attention(hidden, mask)
        if image_states is not None or image_key is not None:
            kv = None if image_key is None else (image_key, image_value)
            hidden = self.crossattention(hidden, None, image_states, kv, groups)  # image tokens: all attended
        return self.output(self.intermediate(hidden), hidden)


class TextEncoderLayers(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.layer = nn.ModuleList([TextLayer(config) for _ in range(config.num_layers)])


class TextEncoder(nn.Module):
    """MED BertModel without pooler: `forward(input_ids, attention_mask, image_embeds=None) -> last hidden`."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.embeddings = TextEmbeddings(config)
        self.encoder = TextEncoderLayers(config)
        self.grad_ckpt = config.grad_ckpt

    def extended_mask(self, attention_mask, dtype):
        """[B, L] 1/0 mask -> additive [B, 1, 1, L] mask, official values (0 or -10000)."""
        mask = attention_mask[:, None, None, :].to(dtype)
        return (1.0 - mask) * MASK_VALUE

    def cross_kv(self, image_embeds):
        """Cross-attention keys/values of every layer for `image_embeds` [N, 1+P, Wv]: compute once, reuse."""
        keys, values = [], []
        for layer in self.encoder.layer:
            key, value = layer.crossattention.self.project_kv(image_embeds)
            keys.append(key)
            values.append(value)
        return CrossKV(keys, values)

    def text_prefix(self, input_ids, attention_mask):
        """Embeddings and the first layer's self-attention: the part that sees no image, so a caption's
        prefix can be computed once and reused for every image it is paired with (`forward(prefix=...)`)."""
        hidden = self.embeddings(input_ids)
        return self.encoder.layer[0].attention(hidden, self.extended_mask(attention_mask, hidden.dtype))

    def forward(self, input_ids, attention_mask, image_embeds=None, cross_kv=None, image_index=None,
                first_token_only=False, prefix=None):
        """Text-only when neither `image_embeds` nor `cross_kv` is given.

        first_token_only: the last layer computes only token 0 (returns [N, 1, H]): the same numbers for
        that token (its query attends to all keys/values), for callers that read only it (the ITM head).
        prefix: `text_prefix(input_ids, attention_mask)` computed earlier (input_ids is then not read).

        With `cross_kv` (from `cross_kv()`), row n attends to image `image_index[n]` of the cached set
        (all rows to image n when image_index is None and the counts match). `image_index` may also be a
        `CrossGroups` plan (`plan_cross_groups`); the rows sharing an image attend to its cached
        keys/values together, with no per-row copy. A CPU index avoids a device sync.
        """
        hidden = self.embeddings(input_ids) if prefix is None else prefix
        mask = self.extended_mask(attention_mask, hidden.dtype)
        groups = None
        if cross_kv is not None and image_index is not None:
            if not isinstance(image_index, CrossGroups):
                image_index = plan_cross_groups(image_index, cross_kv.num_images)
            groups = image_index.to(hidden.device)
        last = len(self.encoder.layer) - 1
        for i, layer in enumerate(self.encoder.layer):
            first_only, self_attended = first_token_only and i == last, prefix is not None and i == 0
            key = value = None
            if cross_kv is not None:
                key, value = cross_kv.keys[i], cross_kv.values[i]
                if groups is None:
                    key, value = key.to(hidden.dtype), value.to(hidden.dtype)
            if self.grad_ckpt and self.training and torch.is_grad_enabled():
                hidden = checkpoint(layer, hidden, mask, image_embeds, key, value, groups, first_only, self_attended)
            else:
                hidden = layer(hidden, mask, image_embeds, key, value, groups, first_only, self_attended)
        return hidden
