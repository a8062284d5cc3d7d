"""BLIP's MED text encoder: BERT with cross-attention to image tokens in every layer (official names).

Parameter names equal official models/med.py `BertModel(add_pooling_layer=False)` and transformers'
`BlipTextModel`, so checkpoints load unchanged. Differences from those, none of which changes the math:
attention runs through torch's scaled_dot_product_attention, and the image-side keys/values of the
cross-attention can be computed once per image (`cross_kv`) and reused for many captions.

One method per mode (B texts, L tokens, H = hidden_size, float as the weights; ids int64, mask 1/0):
  forward(ids, mask) -> [B, L, H]                        text only (official mode='text')
  forward_cross(ids, mask, image_embeds) -> [B, L, H]    cross-attention to image tokens ('multimodal')
  first_token(ids, mask) -> [B, H]                       text only, token 0 ([CLS]: the ITC feature)
  first_token_cross(ids, mask, image_embeds) -> [B, H]   cross-attention, token 0 ([ENC]: the ITM input)
  first_token_cached(prefix, mask, cross_kv, groups) -> [N, H]   the re-rank fast path: cached image
      keys/values (`cross_kv`), rows grouped by image (`plan_cross_groups`), the image-free prefix
      (`text_prefix`) computed once per caption
The first_token* methods compute only token 0 in the last layer: the same numbers for that token (its query
attends to all keys/values), for callers that read only it.
"""
import math
from dataclasses import dataclass
from typing import List

import torch
import torch.nn.functional as F
from torch import nn

from appzoo.blip_retrieval.model._checkpointing import checkpoint
from appzoo.blip_retrieval.model.cross_groups import CrossGroups, grouped_cross_attention

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
        """Keys and values of `states` [N, S, kv_width]: two [N, heads, S, head_dim]."""
        return self._split(self.key(states)), self._split(self.value(states))

    def _dropout_p(self):
        return self.dropout_p if self.training else 0.0

    def forward(self, hidden, states, mask=None):
        """Queries of `hidden` [N, Q, H] attend to `states` [N, S, kv_width] (`mask`: additive, broadcast to
        [N, heads, Q, S]): [N, Q, H]."""
        return self.attend(hidden, *self.project_kv(states), mask=mask)

    def attend(self, hidden, key, value, mask=None):
        """Queries of `hidden` [N, Q, H] attend to keys/values [N, heads, S, head_dim]: [N, Q, H]."""
        context = F.scaled_dot_product_attention(
            self._split(self.query(hidden)), key, value, attn_mask=mask, dropout_p=self._dropout_p(),
            scale=1.0 / math.sqrt(self.head_dim),
        )
        return context.transpose(1, 2).flatten(2)

    def attend_grouped(self, hidden, key, value, groups: CrossGroups):
        """Rows of `hidden` [N, Q, H] attend to the cached keys/values [num_images, heads, S, head_dim] of
        their image, rows sharing an image together (no per-row copy): [N, Q, H]."""
        return grouped_cross_attention(self.query(hidden), key, value, groups, self.num_heads, self._dropout_p())


class SelfOutput(nn.Module):
    def __init__(self, config, in_width):
        super().__init__()
        self.dense = nn.Linear(in_width, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout)

    def forward(self, hidden, residual):
        return self.LayerNorm(self.dropout(self.dense(hidden)) + residual)


class Attention(nn.Module):
    """An attention sub-layer with its residual output (official `BertAttention`)."""

    def __init__(self, config, kv_width):
        super().__init__()
        self.self = MultiHeadAttention(config, kv_width)
        self.output = SelfOutput(config, config.hidden_size)

    def forward(self, hidden, states, mask=None):
        return self.output(self.self(hidden, states, mask), hidden)

    def forward_cached(self, hidden, key, value, groups: CrossGroups):
        return self.output(self.self.attend_grouped(hidden, key, value, groups), hidden)


class Intermediate(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)

    def forward(self, hidden):
        return F.gelu(self.dense(hidden))  # exact (erf) GELU, as BERT's "gelu"


class TextLayer(nn.Module):
    """One MED layer: self-attention, cross-attention to image tokens (all attended), feed-forward.

    Each step is a method, composed by TextEncoder per mode; `forward` / `forward_cross` are the whole
    layer over every token, [B, L, H] -> [B, L, H].
    """

    def __init__(self, config):
        super().__init__()
        self.attention = Attention(config, config.hidden_size)
        self.crossattention = Attention(config, config.encoder_width)
        self.intermediate = Intermediate(config)
        self.output = SelfOutput(config, config.intermediate_size)

    def self_attend(self, hidden, mask, first_token_only=False):
        """[B, L, H] -> [B, L, H]; first_token_only: [B, 1, H], token 0's query attending to every token."""
        query = hidden[:, :1] if first_token_only else hidden
        return self.attention(query, hidden, mask)

    def feed_forward(self, hidden):
        return self.output(self.intermediate(hidden), hidden)

    def forward(self, hidden, mask):
        """Text only (no image): [B, L, H] -> [B, L, H]."""
        return self.feed_forward(self.self_attend(hidden, mask))

    def forward_cross(self, hidden, mask, image_states):
        """With cross-attention to `image_states` [B, P, Wv]: [B, L, H] -> [B, L, H]."""
        return self.feed_forward(self.crossattention(self.self_attend(hidden, mask), image_states))


class TextEncoderLayers(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.layer = nn.ModuleList([TextLayer(config) for _ in range(config.num_layers)])


class TextEncoder(nn.Module):
    """MED BertModel without pooler; one method per mode (module docstring). Input ids [B, L] int64,
    attention_mask [B, L] 1/0; image_embeds [B, 1+P, Wv] (Wv = config.encoder_width)."""

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

    def _checkpointing(self):
        return self.grad_ckpt and self.training and torch.is_grad_enabled()

    # ------------------------------------------------------------------ every token (training, official modes)
    def forward(self, input_ids, attention_mask):
        """Text only (official mode='text'): [B, L] -> last hidden state [B, L, H]."""
        hidden = self.embeddings(input_ids)
        mask = self.extended_mask(attention_mask, hidden.dtype)
        for layer in self.encoder.layer:
            hidden = checkpoint(layer, hidden, mask) if self._checkpointing() else layer(hidden, mask)
        return hidden

    def forward_cross(self, input_ids, attention_mask, image_embeds):
        """Cross-attention to `image_embeds` [B, 1+P, Wv] in every layer (official mode='multimodal'):
        [B, L] -> last hidden state [B, L, H]."""
        hidden = self.embeddings(input_ids)
        mask = self.extended_mask(attention_mask, hidden.dtype)
        for layer in self.encoder.layer:
            if self._checkpointing():  # tensors as arguments: DeepSpeed's checkpoint sends gradients to them
                hidden = checkpoint(layer.forward_cross, hidden, mask, image_embeds)
            else:
                hidden = layer.forward_cross(hidden, mask, image_embeds)
        return hidden

    # ------------------------------------------------------------------ token 0 only (inference)
    def first_token(self, input_ids, attention_mask):
        """Text only, token 0 of the last hidden state ([CLS], the ITC feature's input): [B, L] -> [B, H]."""
        hidden = self.embeddings(input_ids)
        mask = self.extended_mask(attention_mask, hidden.dtype)
        *layers, last = self.encoder.layer
        for layer in layers:
            hidden = layer(hidden, mask)
        return last.feed_forward(last.self_attend(hidden, mask, first_token_only=True))[:, 0]

    def first_token_cross(self, input_ids, attention_mask, image_embeds):
        """`forward_cross`'s token 0 ([ENC], the ITM head's input): [B, L] -> [B, H]."""
        hidden = self.embeddings(input_ids)
        mask = self.extended_mask(attention_mask, hidden.dtype)
        *layers, last = self.encoder.layer
        for layer in layers:
            hidden = layer.forward_cross(hidden, mask, image_embeds)
        hidden = last.crossattention(last.self_attend(hidden, mask, first_token_only=True), image_embeds)
        return last.feed_forward(hidden)[:, 0]

    def cross_kv(self, image_embeds):
        """Cross-attention keys/values of every layer for `image_embeds` [N, 1+P, Wv]: compute once, reuse."""
        keys, values = [], []
        for layer in self.encoder.layer:
            key, value = layer.crossattention.self.project_kv(image_embeds)
            keys.append(key)
            values.append(value)
        return CrossKV(keys, values)

    def text_prefix(self, input_ids, attention_mask):
        """Embeddings and the first layer's self-attention, the part that sees no image, so a caption's
        prefix is computed once for every image it is paired with: [B, L] -> [B, L, H]."""
        hidden = self.embeddings(input_ids)
        return self.encoder.layer[0].self_attend(hidden, self.extended_mask(attention_mask, hidden.dtype))

    def first_token_cached(self, prefix, attention_mask, cross_kv: CrossKV, groups: CrossGroups):
        """`first_token_cross` of N (text, image) pairs from cached parts: `prefix` [N, L, H] (`text_prefix`
        of each row's caption), `cross_kv` (of a set of images) and `groups` (which cached image each row
        attends to: `plan_cross_groups`, rows sharing an image attend together): [N, H]."""
        mask = self.extended_mask(attention_mask, prefix.dtype)
        groups = groups.to(prefix.device)
        last = len(self.encoder.layer) - 1
        hidden = prefix
        for i, layer in enumerate(self.encoder.layer):
            if i > 0:
                hidden = layer.self_attend(hidden, mask, first_token_only=i == last)
            elif last == 0:
                hidden = hidden[:, :1]
            hidden = layer.crossattention.forward_cached(hidden, cross_kv.keys[i], cross_kv.values[i], groups)
            hidden = layer.feed_forward(hidden)
        return hidden[:, 0]
