"""The BLIP retrieval model (official salesforce/BLIP models/blip_retrieval.py math, same state-dict layout).

Training: `loss_ita, loss_itm = model(image, caption, alpha, idx)`. Inference: `encode_image`,
`image_feat`, `encode_text`, `text_feat`, `text_features`, `itm_logits`, and the evaluator's fast path
`cross_kv` + `itm_text_prefix` + `itm_logits_cached` (image-side cross-attention keys/values computed once
per image, each caption's image-free prefix once).
Public API (mixins, no change to the math or the state dict): `BlipRetrieval.from_pretrained(source)`,
`save_pretrained(folder)` (pretrained.py) and `embed_images`, `embed_texts`, `match` (inference.py).
"""
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from easyretrieval.collectives import all_gather_with_grad, concat_all_gather

from appzoo.blip_retrieval.model import losses
from appzoo.blip_retrieval.model.cross_groups import CrossGroups, plan_cross_groups
from appzoo.blip_retrieval.model.inference import RetrievalInferenceMixin
from appzoo.blip_retrieval.model.momentum import copy_params, momentum_update
from appzoo.blip_retrieval.model.parts import MOMENTUM_PAIRS, QUEUE_BUFFERS
from appzoo.blip_retrieval.model.pretrained import PretrainedMixin
from appzoo.blip_retrieval.model.text_encoder import TextEncoder
from appzoo.blip_retrieval.model.vision_encoder import VisionEncoder



class _LossPair(NamedTuple):
    loss_ita: torch.Tensor
    loss_itm: torch.Tensor


class RetrievalLosses(_LossPair):
    """The two training losses; iterating yields (loss_ita, loss_itm). The sampled ITM negatives (indices
    into this rank's batch, or into the all-rank batch with negative_all_rank) are kept for inspection.

    A NamedTuple, so that DeepSpeed's ZeRO-3 hooks find the loss tensors in the forward's output (they do
    not look inside a dataclass, and the root module's parameters, e.g. temp, then get zero gradients);
    DeepSpeed rebuilds the tuple from the two losses, so under ZeRO-3 the negatives read None.
    """

    def __new__(cls, loss_ita, loss_itm, neg_image_index=None, neg_text_index=None):
        self = super().__new__(cls, loss_ita, loss_itm)
        self.neg_image_index = neg_image_index  # hard-negative image of each text
        self.neg_text_index = neg_text_index  # hard-negative text of each image
        return self


def _init_bert(module, std=0.02):
    """Official MED/BERT init: normal(0, 0.02) for Linear and Embedding weights, zero biases, unit LayerNorm."""
    for sub in module.modules():
        if isinstance(sub, (nn.Linear, nn.Embedding)):
            nn.init.normal_(sub.weight, mean=0.0, std=std)
        if isinstance(sub, nn.Linear) and sub.bias is not None:
            nn.init.zeros_(sub.bias)
        if isinstance(sub, nn.LayerNorm):
            nn.init.ones_(sub.weight)
            nn.init.zeros_(sub.bias)


class BlipRetrieval(PretrainedMixin, RetrievalInferenceMixin, nn.Module):
    """BLIP ITC + ITM retrieval model.

        model = BlipRetrieval.from_pretrained("Salesforce/blip-itm-base-coco")   # or a folder, .pth, name
        model.embed_images(images)  # [N, embed_dim] float32, L2-normalised
        model.embed_texts(texts)    # [M, embed_dim]
        model.match(images, texts)  # [N, M] ITM probability

    config: BlipRetrievalConfig; tokenizer: BLIP's tokenizer (`create_tokenizer`), needed to tokenize.
    The state dict is the official one (salesforce/BLIP models/blip_retrieval.py): checkpoints load with
    model.checkpoint.load_state, which raises UserError for another model size.
    """

    def __init__(self, config, tokenizer=None):
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer
        vision_width, text_width, embed_dim = config.vision.width, config.text.hidden_size, config.embed_dim
        # Registration order gives the official state-dict order: temp, queues, then the modules.
        # temp is held as [1] (DeepSpeed's broadcasts view parameters as bytes, which a 0-dim tensor cannot
        # do); the state dict holds it 0-dim, as official (_save_to_state_dict / _load_from_state_dict).
        self.temp = nn.Parameter(config.temp_init * torch.ones([1]))
        self.register_buffer("image_queue", F.normalize(torch.randn(embed_dim, config.queue_size), dim=0))
        self.register_buffer("text_queue", F.normalize(torch.randn(embed_dim, config.queue_size), dim=0))
        self.register_buffer("idx_queue", torch.full((1, config.queue_size), -100))
        self.register_buffer("ptr_queue", torch.zeros(1, dtype=torch.long))

        self.visual_encoder = VisionEncoder(config.vision)
        self.text_encoder = TextEncoder(config.text)
        self.vision_proj = nn.Linear(vision_width, embed_dim)
        self.text_proj = nn.Linear(text_width, embed_dim)
        self.itm_head = nn.Linear(text_width, 2)
        # Momentum encoders: never checkpointed (no gradients), as official create_vit(vit, image_size).
        self.visual_encoder_m = VisionEncoder(config.vision, grad_ckpt=False)
        self.vision_proj_m = nn.Linear(vision_width, embed_dim)
        self.text_encoder_m = TextEncoder(config.text)
        self.text_encoder_m.grad_ckpt = False
        self.text_proj_m = nn.Linear(text_width, embed_dim)
        _init_bert(self.text_encoder, std=config.text.init_std)
        copy_params(self.momentum_pairs())
        self._momentum_shadow = {}  # float32 EMA state of momentum params whose live dtype is not fp32

    # ----------------------------------------------------------------- official state-dict layout
    def _save_to_state_dict(self, destination, prefix, keep_vars):
        """temp saved 0-dim, as official (a ZeRO-3 placeholder without elements is saved as it is)."""
        super()._save_to_state_dict(destination, prefix, keep_vars)
        temp = destination.get(prefix + "temp")
        if temp is not None and temp.numel() == 1:
            destination[prefix + "temp"] = temp.reshape(())

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        """An official 0-dim temp loads into the [1] parameter."""
        key = prefix + "temp"
        if key in state_dict and state_dict[key].dim() == 0:
            state_dict[key] = state_dict[key].reshape(1)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    # ----------------------------------------------------------------- state kept in float32
    def _apply(self, fn, recurse=True):
        """Casts (.half(), .bfloat16(), .to(dtype)) leave the queues in float32/int64; moves still apply."""
        kept = {name: self._buffers[name] for name in QUEUE_BUFFERS}
        super()._apply(fn, recurse)
        for name, old in kept.items():
            new = self._buffers[name]
            if new is not None and new.dtype != old.dtype:
                self._buffers[name] = old.to(device=new.device)
        return self

    @property
    def enc_token_id(self):
        if self.tokenizer is not None:
            return self.tokenizer.enc_token_id
        return self.config.text.vocab_size - 1  # [ENC] is the last token BLIP adds

    def momentum_pairs(self):
        """[(name, online param, name_m, momentum param)] over the official model pairs."""
        pairs = []
        for online, momentum in MOMENTUM_PAIRS:
            left = list(getattr(self, online).named_parameters())
            right = list(getattr(self, momentum).named_parameters())
            if [n for n, _ in left] != [n for n, _ in right]:
                raise RuntimeError(f"{online} and {momentum} do not have the same parameters")
            for (name, p), (_, p_m) in zip(left, right):
                pairs.append((f"{online}.{name}", p, f"{momentum}.{name}", p_m))
        return pairs

    def momentum_update(self):
        """Official EMA of the momentum encoders (no grad; ZeRO-3 shards; float32 shadow for half weights)."""
        momentum_update(self.momentum_pairs(), self.config.momentum, self._momentum_shadow)

    def momentum_state_dict(self):
        """The float32 EMA shadow (this rank's shards under ZeRO-3); empty while weights are float32."""
        return {name: tensor.clone() for name, tensor in self._momentum_shadow.items()}

    def load_momentum_state_dict(self, state):
        self._momentum_shadow = {name: tensor.float().clone() for name, tensor in state.items()}

    # ----------------------------------------------------------------- encoders
    def tokenize(self, caption, device):
        """Token ids and mask [B, L] of a training batch, cut at max_length (35) tokens as official.

        Padded to the batch's longest caption, not to max_length as official: a padding token is masked out
        of every attention (exp(-10000) is exactly 0 in float32) and only the [CLS] row is read, so the
        losses are the official ones (up to float rounding) for less work; dropout draws fewer numbers.
        """
        if self.tokenizer is None:
            raise RuntimeError("BlipRetrieval was built without a tokenizer; captions cannot be tokenized")
        return self.tokenizer(caption, padding="longest", truncation=True,
                              max_length=self.config.max_length, return_tensors="pt").to(device)

    def encode_image(self, image):
        """[B, 3, H, W] -> image_embeds [B, 1+P, Wv] (the image is cast to the encoder's dtype)."""
        return self.visual_encoder(image.to(self.visual_encoder.cls_token.dtype))

    def image_feat(self, image_embeds):
        """Normalised ITC feature [B, embed_dim] of the class token."""
        return F.normalize(self.vision_proj(image_embeds[:, 0, :]), dim=-1)

    def encode_text(self, input_ids, attention_mask):
        """Text-only mode (no cross-attention): ids [B, L] int64, mask [B, L] -> [B, L, Wt]."""
        return self.text_encoder(input_ids, attention_mask)

    def text_feat(self, text_embeds):
        """Normalised ITC feature [B, embed_dim] of the [CLS] token of `encode_text`'s [B, L, Wt]."""
        return F.normalize(self.text_proj(text_embeds[:, 0, :]), dim=-1)

    def text_features(self, input_ids, attention_mask):
        """`text_feat(encode_text(...))` computing only the [CLS] token in the last layer (same numbers):
        ids [B, L] int64, mask [B, L] -> [B, embed_dim], L2-normalised."""
        return F.normalize(self.text_proj(self.text_encoder.first_token(input_ids, attention_mask)), dim=-1)

    def _enc_ids(self, input_ids):
        ids = input_ids.clone()
        ids[:, 0] = self.enc_token_id
        return ids

    def itm_logits(self, image_embeds, input_ids, attention_mask):
        """ITM logits [N, 2] of pairs (image_embeds[n] [1+P, Wv], text n); [ENC] replaces the first token."""
        return self.itm_head(self.text_encoder.first_token_cross(self._enc_ids(input_ids), attention_mask,
                                                                 image_embeds))

    def cross_kv(self, image_embeds):
        """Cross-attention keys/values of every text layer for a set of images [N, 1+P, Wv] (compute once)."""
        return self.text_encoder.cross_kv(image_embeds)

    def itm_text_prefix(self, input_ids, attention_mask):
        """The image-independent start of the ITM pass of each caption ([ENC] ids), for `itm_logits_cached`:
        [B, L] -> [B, L, Wt]."""
        return self.text_encoder.text_prefix(self._enc_ids(input_ids), attention_mask)

    def itm_logits_cached(self, cross_kv, image_index, input_ids, attention_mask, text_prefix=None):
        """`itm_logits` [N, 2] where row n uses image image_index[n] of the `cross_kv` set.

        The rows that share an image attend to its cached keys/values together (no per-row copy of them).
        image_index: [N] int64 in any order (rows sorted by image are cheapest; a CPU tensor avoids a device
        sync), or a `CrossGroups` plan from `cross_groups.plan_cross_groups`. text_prefix: the rows'
        `itm_text_prefix` [N, L, Wt] (computed once per caption; input_ids are then not read), or None to
        compute it here. IndexError for an image_index outside the cached set.
        """
        if text_prefix is None:
            text_prefix = self.itm_text_prefix(input_ids, attention_mask)
        groups = image_index if isinstance(image_index, CrossGroups) else plan_cross_groups(
            image_index, cross_kv.num_images)
        return self.itm_head(self.text_encoder.first_token_cached(text_prefix, attention_mask, cross_kv, groups))

    # ----------------------------------------------------------------- training
    def forward(self, image, caption, alpha, idx):
        """One training step's losses (official BLIP_Retrieval.forward): ITC with momentum distillation over
        the queues, and ITM on the positives plus one hard negative per image and per text.

        image: [B, 3, H, W] float (normalised as the official transform); caption: B strings (pre_caption'd);
        alpha: distillation weight in [0, 1] (schedule.alpha_at); idx: [B] int64 image ids (captions of the
        same image are positives of each other). Returns RetrievalLosses(loss_ita, loss_itm), two 0-dim
        float32 tensors. Side effects, as official: temp clamped, momentum encoders updated (EMA), the
        queues take this step's momentum features of every rank (a collective when distributed).
        """
        with torch.no_grad():
            self.temp.clamp_(self.config.temp_min, self.config.temp_max)
        # The value is clamped again so that it holds even where the in-place clamp does not persist
        # (a ZeRO-3 gathered copy, a bf16 copy of an fp32 master); in fp32 both are the same number.
        temp = self.temp.float().clamp(self.config.temp_min, self.config.temp_max)

        image_embeds = self.encode_image(image)
        image_feat = self.image_feat(image_embeds).float()
        text = self.tokenize(caption, image.device)
        text_feat = self.text_feat(self.encode_text(text.input_ids, text.attention_mask)).float()

        idx = idx.view(-1, 1).to(image.device)
        targets = losses.itc_targets(idx, self.idx_queue)
        with torch.no_grad():
            self.momentum_update()
            image_embeds_m = self.visual_encoder_m(image.to(self.visual_encoder_m.cls_token.dtype))
            image_feat_m = F.normalize(self.vision_proj_m(image_embeds_m[:, 0, :]), dim=-1).float()
            text_m = self.text_encoder_m(text.input_ids, text.attention_mask)
            text_feat_m = F.normalize(self.text_proj_m(text_m[:, 0, :]), dim=-1).float()
        loss_ita = losses.distilled_itc_loss(
            image_feat, text_feat, image_feat_m, text_feat_m,
            self.image_queue.clone().detach(), self.text_queue.clone().detach(), targets, alpha, temp,
        )
        idxs = concat_all_gather(idx)
        self._dequeue_and_enqueue(image_feat_m, text_feat_m, idxs)

        loss_itm, neg_image, neg_text = self._itm(image_embeds, image_feat, text, text_feat, idx, idxs, temp)
        return RetrievalLosses(loss_ita, loss_itm, neg_image, neg_text)

    def _itm(self, image_embeds, image_feat, text, text_feat, idx, idxs, temp):
        """ITM loss on the positives plus one sampled hard-negative text per image and image per text."""
        enc_ids = self._enc_ids(text.input_ids)
        atts = text.attention_mask
        temp = temp.detach()
        sim_i2t, sim_t2i, mask = self.negative_similarities(image_feat, text_feat, idx, idxs, temp)
        if self.config.negative_all_rank:
            image_pool = all_gather_with_grad(image_embeds)
            ids_pool, atts_pool = concat_all_gather(enc_ids), concat_all_gather(atts)
        else:
            image_pool, ids_pool, atts_pool = image_embeds, enc_ids, atts
        # As official: first a negative image for each text, then a negative text for each image.
        neg_image = losses.sample_negatives(losses.negative_weights(sim_t2i, mask))
        neg_text = losses.sample_negatives(losses.negative_weights(sim_i2t, mask))
        # One cross-encoder pass over [positives | (text, negative image) | (negative text, image)];
        # the official code runs the positives and the negatives as two passes of the same math.
        ids_all = torch.cat([enc_ids, enc_ids, ids_pool[neg_text]], dim=0)
        atts_all = torch.cat([atts, atts, atts_pool[neg_text]], dim=0)
        images_all = torch.cat([image_embeds, image_pool[neg_image], image_embeds], dim=0)
        hidden = self.text_encoder.forward_cross(ids_all, atts_all, images_all)
        logits = self.itm_head(hidden[:, 0, :])
        return losses.itm_loss(logits, image_embeds.shape[0]), neg_image, neg_text

    @torch.no_grad()
    def negative_similarities(self, image_feat, text_feat, idx, idxs, temp):
        """What the ITM hard negatives are drawn from (official): (sim_i2t, sim_t2i, same_idx).

        Over this rank's batch: [B, B] each. With negative_all_rank, over every rank's batch: sim_i2t
        [B, world*B] = this rank's images against all texts, sim_t2i = its texts against all images, and
        same_idx compares idx [B, 1] with idxs [world*B, 1] (all ranks' idx, rank order).
        """
        if self.config.negative_all_rank:
            image_feat_world = concat_all_gather(image_feat)
            text_feat_world = concat_all_gather(text_feat)
            return (image_feat @ text_feat_world.t() / temp, text_feat @ image_feat_world.t() / temp,
                    torch.eq(idx, idxs.t()))
        return image_feat @ text_feat.t() / temp, text_feat @ image_feat.t() / temp, torch.eq(idx, idx.t())

    @torch.no_grad()
    def _dequeue_and_enqueue(self, image_feat, text_feat, idxs):
        image_feats = concat_all_gather(image_feat)
        text_feats = concat_all_gather(text_feat)
        ptr = int(self.ptr_queue)
        losses.ring_write(self.image_queue, ptr, image_feats.t())
        losses.ring_write(self.text_queue, ptr, text_feats.t())
        new_ptr = losses.ring_write(self.idx_queue, ptr, idxs.t())
        self.ptr_queue[0] = new_ptr


def create_model(config, tokenizer):
    """The app's factory: a BlipRetrieval from a BlipRetrievalConfig and BLIP's tokenizer."""
    return BlipRetrieval(config, tokenizer)
