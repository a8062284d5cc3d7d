"""The blip_retrieval evaluator: official two-stage scores (ITC top-k, then ITM re-rank), fast and exact.

Stage 1: text features (each rank encodes a share of the texts), image features (each rank its loader
slice), ITC feature vectors gathered. Stage 2: every distinct (image, text) pair among the i2t and t2i
top-k candidates is scored once, by the rank holding the image's embeddings, grouped by image so that
the image side of the cross-attention (keys/values of every layer) is computed once per image; the
score of a re-ranked candidate is its ITM positive logit + its ITC similarity, -100 for the rest
(official). No work goes to padding tokens (length-sorted batches cut to their longest caption), the
last text layer computes only the [CLS] row, and each caption's image-free prefix is computed once; all
exact (README.md). Only top-k indices and scores travel between ranks; each rank keeps only its own
images' embeddings (in the compute dtype, on the device when they fit). Metrics: metrics.itm_eval_topk.
"""
import contextlib
import time
from dataclasses import dataclass, field
from typing import Dict, Optional

import numpy as np
import torch

try:  # torch >= 2.3
    from torch.nn.attention import SDPBackend, sdpa_kernel
except ImportError:  # older torch has no cuDNN attention backend to avoid
    SDPBackend = sdpa_kernel = None

from easyretrieval.distributed import DistInfo, dist_info_from_env
from easyretrieval.errors import UserError
from easyretrieval.registry import register_evaluator

from appzoo.blip_retrieval.evaluation.comm import EvalComm, split_range
from appzoo.blip_retrieval.evaluation.metrics import FILL_SCORE, dense_from_topk, itm_eval_topk
from appzoo.blip_retrieval.evaluation.rerank_plan import image_groups, plan_rerank
from appzoo.blip_retrieval.evaluation.zero_inference import gathered_for_inference, unwrap

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
_SIM_BLOCK = 1024  # query rows per ITC similarity block (bounds the [rows, gallery] matrix)
_PREFIX_CACHE_BYTES = 1 << 30  # the captions' cached ITM prefixes may take this much (else computed per batch)
# ITM re-rank batching when not given, per device type (measured on an H200, ViT-B 384 px: 4096 pairs in
# groups of 64 images ran 1.3x (fp32) and 5.9x (bf16) the pairs/s of 256 / 16; benchmarks/rerank_speed.py).
_ITM_BATCH_SIZE = {"cuda": 4096}
_IMAGES_PER_GROUP = {"cuda": 64}
_CPU_ITM_BATCH_SIZE, _CPU_IMAGES_PER_GROUP = 256, 16


def attention_without_cudnn():
    """A context in which scaled_dot_product_attention does not use cuDNN's backend (flash, memory-efficient
    or math kernels instead; same results to float rounding).

    The re-rank's batches come in many shapes (caption length x pairs per image), and cuDNN attention
    builds an execution plan for each new shape: on an H200 in bf16 that made the ITM re-rank of ViT-B at
    384 px 2-30x slower than without it (README, GPU figures). No effect where torch has no cuDNN backend.
    """
    if sdpa_kernel is None or not hasattr(SDPBackend, "CUDNN_ATTENTION"):
        return contextlib.nullcontext()
    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])


@dataclass
class TopK:
    """Each query's re-ranked candidates, best first (ties: lower index first): index -1 = no candidate."""

    index: np.ndarray  # [Q, k] int64
    score: np.ndarray  # [Q, k] float32: ITM positive logit + ITC similarity


@dataclass
class EvalResult:
    metrics: Dict[str, float]
    i2t: TopK  # per image, its candidate texts
    t2i: TopK  # per text, its candidate images
    timings: Dict[str, float] = field(default_factory=dict)
    stats: Dict[str, int] = field(default_factory=dict)
    # images that could not be read (skip_bad_images=True): {"count", "of" (images in the split), "files"}
    skipped: Dict[str, object] = field(default_factory=dict)

    @property
    def scores_i2t(self) -> torch.Tensor:
        """The official dense [N_img, N_txt] score matrix (-100 where not re-ranked), built on demand."""
        return dense_from_topk(self.i2t.index, self.i2t.score, self.t2i.index.shape[0])

    @property
    def scores_t2i(self) -> torch.Tensor:
        return dense_from_topk(self.t2i.index, self.t2i.score, self.i2t.index.shape[0])


def _sorted_topk(index: torch.Tensor, score: torch.Tensor) -> TopK:
    """Rows ordered by score descending, equal scores by lower index (the metrics' tie rule)."""
    key_index = torch.where(index >= 0, index, torch.full_like(index, torch.iinfo(torch.long).max))
    order = torch.argsort(key_index, dim=1, stable=True)
    index, score = index.gather(1, order), score.gather(1, order)
    order = torch.argsort(score, dim=1, descending=True, stable=True)
    return TopK(index.gather(1, order).numpy(), score.gather(1, order).numpy())


@dataclass
class TwoStageScores:
    i2t: TopK
    t2i: TopK
    image_feat: torch.Tensor  # [N_img, D] ITC features (zeros for missing images)
    text_feat: torch.Tensor   # [N_txt, D]
    present: torch.Tensor     # [N_img] bool: the image was read
    timings: Dict[str, float]
    stats: Dict[str, int]


def _token_lengths(attention_mask: torch.Tensor) -> torch.Tensor:
    """[T] tokens of each caption (CPU); the full width when the padding is not all on the right."""
    mask = attention_mask.cpu().long()
    lengths = mask.sum(1)
    right_padded = torch.equal(mask, (torch.arange(mask.shape[1]) < lengths[:, None]).long())
    return lengths if right_padded else torch.full_like(lengths, mask.shape[1])


class _Progress:
    """A tqdm bar with ETA on the main rank (stderr); silent elsewhere or when disabled."""

    def __init__(self, enabled: bool, total: int, desc: str):
        self.bar = None
        if enabled and total > 0:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="pair", dynamic_ncols=True, mininterval=2.0)

    def update(self, n: int):
        if self.bar is not None:
            self.bar.update(n)

    def close(self):
        if self.bar is not None:
            self.bar.close()


@register_evaluator("blip_retrieval")
class RetrievalEvaluator:
    """Two-stage image-text retrieval evaluation; every rank calls `evaluate` together.

    k_test: candidates re-ranked per query (clipped to the gallery). batch_size: images per encoder batch.
    precision: fp32, or bf16/fp16 autocast (GPU only). device: defaults to the model's. dist: DistInfo.
    timeout_s: collective timeout of the evaluation's process group. itm_batch_size: pairs per ITM
    forward; images_per_group: images whose cross-attention keys/values are held at once (None: 4096 / 64
    on a GPU, 256 / 16 on the CPU; the scores do not depend on them beyond float rounding).
    num_workers / worker_start_method: image-loader worker processes and how they start.
    """

    def __init__(self, k_test, batch_size, precision="fp32", device=None, dist: Optional[DistInfo] = None,
                 timeout_s=1800.0, progress=True, num_workers=0, text_batch_size=256, itm_batch_size=None,
                 images_per_group=None, worker_start_method="forkserver"):
        if precision not in PRECISIONS:
            raise UserError(f"eval_precision '{precision}' is not one of {', '.join(PRECISIONS)}")
        if k_test < 1:
            raise UserError(f"k_test must be >= 1, got {k_test}")
        self.k_test = int(k_test)
        self.batch_size = int(batch_size)
        self.precision = precision
        self.device = torch.device(device) if device is not None else None
        self.dist = dist if dist is not None else dist_info_from_env()
        self.timeout_s = float(timeout_s)
        self.progress = progress
        self.num_workers = num_workers
        self.worker_start_method = worker_start_method
        self.text_batch_size = int(text_batch_size)
        self.itm_batch_size = None if itm_batch_size is None else int(itm_batch_size)
        self.images_per_group = None if images_per_group is None else int(images_per_group)
        self._comm = None

    # ------------------------------------------------------------------ public
    def evaluate(self, model, dataset, image_loader=None) -> EvalResult:
        model = unwrap(model)
        device = self.resolve_device(model)
        if image_loader is None:
            image_loader = self.image_loader(dataset)
        with self.inference(model, device):
            return self._evaluate(model, dataset, image_loader, device)

    def image_loader(self, dataset):
        """This rank's slice of `dataset`'s images, batched for the image encoder."""
        from appzoo.blip_retrieval.data import create_eval_image_loader

        return create_eval_image_loader(dataset, self.batch_size, self.dist, num_workers=self.num_workers,
                                        start_method=self.worker_start_method)

    @contextlib.contextmanager
    def inference(self, model, device):
        """Eval mode (train mode restored after), no grad, ZeRO-3 parameters gathered, autocast, attention
        without cuDNN (attention_without_cudnn)."""
        was_training = model.training
        model.eval()
        try:
            with gathered_for_inference(model), torch.no_grad(), self._autocast(device), attention_without_cudnn():
                yield
        finally:
            model.train(was_training)

    def _communicator(self):
        if self._comm is None:
            self._comm = EvalComm(self.timeout_s)
            if (self._comm.rank, self._comm.world_size) != (self.dist.rank, self.dist.world_size):
                raise ValueError(f"dist={self.dist} disagrees with torch.distributed (rank {self._comm.rank} of "
                                 f"{self._comm.world_size})")
        return self._comm

    def resolve_device(self, model):
        """The compute device (given, else the model's); half precision needs a GPU."""
        device = self.device or next(model.parameters()).device
        if self.precision != "fp32" and device.type != "cuda":
            raise UserError(f"eval_precision={self.precision} needs a GPU; use eval_precision=fp32 on CPU")
        return device

    def save(self, result: EvalResult, output_dir: str, split: str):
        """Metrics JSON, top-k rankings npz and timings JSON of `split` (main rank only); returns paths."""
        from appzoo.blip_retrieval.evaluation.outputs import save_result

        if not self.dist.is_main:
            return {}
        return save_result(result, output_dir, split)

    # ------------------------------------------------------------------ stages
    def _autocast(self, device):
        if self.precision == "fp32":
            return torch.autocast(device.type, enabled=False)
        return torch.autocast(device.type, dtype=PRECISIONS[self.precision])

    def _evaluate(self, model, dataset, image_loader, device) -> EvalResult:
        t_start = time.perf_counter()
        texts, num_images = list(dataset.text), len(dataset)
        if not texts or num_images == 0:
            raise UserError(f"cannot evaluate: {len(texts)} captions and {num_images} images")
        scored = self.two_stage(model, texts, image_loader, num_images, device, self.k_test, self.k_test)
        present = scored.present
        txt2img = {t: (img if bool(present[img]) else -1) for t, img in dataset.txt2img.items()}
        img2txt = {i: (list(ts) if bool(present[i]) else []) for i, ts in dataset.img2txt.items()}
        metrics = itm_eval_topk(scored.i2t.index, scored.i2t.score, scored.t2i.index, scored.t2i.score, txt2img, img2txt)
        scored.timings["total_s"] = time.perf_counter() - t_start
        missing = [i for i in range(num_images) if not bool(present[i])]
        names = getattr(dataset, "image", None)
        skipped = {"count": len(missing), "of": num_images,
                   "files": [str(names[i]) if names is not None else str(i) for i in missing]}
        return EvalResult(metrics, scored.i2t, scored.t2i, scored.timings, scored.stats, skipped)

    def two_stage(self, model, texts, image_loader, num_images, device, k_i2t, k_t2i) -> "TwoStageScores":
        """Official two-stage scores of images (from this rank's `image_loader` slice) and `texts`.

        k_i2t / k_t2i: candidates re-ranked per image / per text (0 = skip that direction; clipped to the
        gallery). Call inside `evaluate`'s context (eval mode, no grad, ZeRO-3 gathered) or equivalent.
        """
        comm = self._communicator()
        timings = {}
        tick = time.perf_counter()
        text_ids, text_atts = self._tokenize(model, texts)
        lengths = _token_lengths(text_atts)
        start, end = split_range(len(texts), comm.rank, comm.world_size)
        text_feat = comm.gather_rows(self._text_features(model, text_ids[start:end], text_atts[start:end],
                                                         lengths[start:end], device))
        timings["text_features_s"] = time.perf_counter() - tick

        tick = time.perf_counter()
        local_index, image_embeds, image_feat_local = self._image_features(model, image_loader, device)
        all_index = comm.gather_rows(local_index.to(device)).cpu()
        image_feat = torch.zeros(num_images, text_feat.shape[1], device=device)
        image_feat[all_index.to(device)] = comm.gather_rows(image_feat_local)
        present = torch.zeros(num_images, dtype=torch.bool)
        present[all_index] = True
        if int(present.sum()) != all_index.numel():
            raise ValueError("the ranks' image loaders overlap: every image must be encoded by exactly one rank")
        timings["image_features_s"] = time.perf_counter() - tick

        tick = time.perf_counter()
        k_i, k_t = min(k_i2t, len(texts)), min(k_t2i, int(present.sum()))
        i2t_sim, i2t_idx = self._topk(image_feat[local_index.to(device)], text_feat, k_i, None)
        t2i_sim, t2i_idx = self._topk(text_feat[start:end], image_feat, k_t, present.to(device))
        t2i_sim, t2i_idx = comm.gather_rows(t2i_sim), comm.gather_rows(t2i_idx)
        timings["itc_topk_s"] = time.perf_counter() - tick

        tick = time.perf_counter()
        local_pos = torch.full((num_images,), -1, dtype=torch.long)
        local_pos[local_index] = torch.arange(local_index.numel())
        plan = plan_rerank(i2t_idx.cpu(), t2i_idx.cpu(), local_pos, len(texts))
        pair_logit = self._rerank(model, plan, image_embeds, text_ids, text_atts, lengths, device)
        i2t_score = pair_logit[plan.i2t_pair] + i2t_sim.float().cpu()
        t2i_score = torch.zeros(t2i_idx.shape, dtype=torch.float32)
        rows, cols = plan.t2i_rows, plan.t2i_cols
        t2i_score[rows, cols] = pair_logit[plan.t2i_pair] + t2i_sim.float().cpu()[rows, cols]
        timings["itm_rerank_s"] = time.perf_counter() - tick

        tick = time.perf_counter()
        comm.sum_(t2i_score)
        i2t_rows_index = torch.full((num_images, k_i), -1, dtype=torch.long)
        i2t_rows_score = torch.full((num_images, k_i), FILL_SCORE, dtype=torch.float32)
        i2t_rows_index[all_index] = comm.gather_rows(i2t_idx.cpu())
        i2t_rows_score[all_index] = comm.gather_rows(i2t_score)
        timings["gather_scores_s"] = time.perf_counter() - tick
        stats = {
            "num_images": num_images, "num_texts": len(texts), "missing_images": int((~present).sum()),
            "k_i2t": k_i, "k_t2i": k_t, "world_size": comm.world_size,
            "itm_pairs_this_rank": plan.num_pairs, "itm_pairs_official": num_images * k_i + len(texts) * k_t,
            "image_embeds_bytes_this_rank": image_embeds.numel() * image_embeds.element_size(),
            "image_embeds_dtype": str(image_embeds.dtype).replace("torch.", ""),
        }
        return TwoStageScores(_sorted_topk(i2t_rows_index, i2t_rows_score), _sorted_topk(t2i_idx.cpu(), t2i_score),
                              image_feat.cpu(), text_feat.cpu(), present, timings, stats)

    def _tokenize(self, model, texts):
        ids, atts = [], []
        for i in range(0, len(texts), self.text_batch_size):
            out = model.tokenizer(texts[i:i + self.text_batch_size], padding="max_length", truncation=True,
                                  max_length=model.config.max_length, return_tensors="pt")
            ids.append(out.input_ids)
            atts.append(out.attention_mask)
        return torch.cat(ids), torch.cat(atts)

    def _text_features(self, model, ids, atts, lengths, device):
        """ITC features of captions; batches of similar lengths, each cut to its longest (see _rerank)."""
        order = torch.argsort(lengths, stable=True)
        feats = torch.zeros(ids.shape[0], model.config.embed_dim, device=device)
        for i in range(0, ids.shape[0], self.text_batch_size):
            rows = order[i:i + self.text_batch_size]
            length = int(lengths[rows].max())
            b_ids, b_atts = ids[rows, :length].to(device), atts[rows, :length].to(device)
            feat = model.text_feat(model.encode_text(b_ids, b_atts, first_token_only=True)).float()
            feats[rows.to(device)] = feat
        return feats

    def _image_features(self, model, image_loader, device):
        indices, embeds, feats = [], [], []
        for images, index in image_loader:
            emb = model.encode_image(images.to(device, non_blocking=True))
            feats.append(model.image_feat(emb).float())
            # Kept in the compute dtype (autocast leaves the final LayerNorm's output in fp32).
            embeds.append(emb if self.precision == "fp32" else emb.to(PRECISIONS[self.precision]))
            indices.append(torch.as_tensor(index, dtype=torch.long).view(-1))
        if not embeds:  # a rank without images still joins every collective
            cfg = model.config.vision
            embeds = [torch.zeros(0, cfg.num_patches + 1, cfg.width, device=device)]
            feats, indices = [torch.zeros(0, model.config.embed_dim, device=device)], [torch.zeros(0, dtype=torch.long)]
        image_embeds = torch.cat(embeds)
        if device.type == "cuda" and not self._fits_on_device(image_embeds, device):
            image_embeds = image_embeds.cpu().pin_memory()
        return torch.cat(indices), image_embeds, torch.cat(feats)

    @staticmethod
    def _fits_on_device(tensor, device):
        free, _total = torch.cuda.mem_get_info(device)
        return tensor.numel() * tensor.element_size() < 0.5 * (free + tensor.numel() * tensor.element_size())

    def _topk(self, query_feat, gallery_feat, k, gallery_mask):
        """Top-k ITC similarities of each query row over the gallery, in blocks of rows."""
        sims, idxs = [], []
        for i in range(0, max(1, query_feat.shape[0]), _SIM_BLOCK):
            sim = query_feat[i:i + _SIM_BLOCK] @ gallery_feat.t()
            if gallery_mask is not None:
                sim = sim.masked_fill(~gallery_mask, float("-inf"))
            value, index = sim.topk(k, dim=1)
            sims.append(value)
            idxs.append(index)
        return torch.cat(sims), torch.cat(idxs)

    def _itm_prefixes(self, model, pair_text, text_ids, text_atts, lengths, device):
        """The image-independent ITM prefix of each caption of the plan, computed once and reused for all of
        its images: ([U, L, H], [T] row of each caption in it), or (None, None) past the memory budget."""
        needed = torch.unique(pair_text)
        if needed.numel() == 0:
            return None, None
        width = int(lengths[needed].max())
        if needed.numel() * width * model.config.text.hidden_size * 4 > _PREFIX_CACHE_BYTES:
            return None, None
        parts, needed_dev = [], needed.to(device)
        for i in range(0, needed.numel(), self.text_batch_size):
            rows = needed_dev[i:i + self.text_batch_size]
            parts.append(model.itm_text_prefix(text_ids[rows, :width], text_atts[rows, :width]))
        slot = torch.full((text_ids.shape[0],), -1, dtype=torch.long)
        slot[needed] = torch.arange(needed.numel())
        return torch.cat(parts), slot.to(device)

    def rerank_batching(self, device):
        """(pairs per ITM forward, images per key/value group) on `device`: the given values or the defaults."""
        batch = self.itm_batch_size or _ITM_BATCH_SIZE.get(device.type, _CPU_ITM_BATCH_SIZE)
        group = self.images_per_group or _IMAGES_PER_GROUP.get(device.type, _CPU_IMAGES_PER_GROUP)
        return batch, group

    def _rerank(self, model, plan, image_embeds, text_ids, text_atts, lengths, device):
        """ITM positive logit of every distinct pair of the plan (image keys/values computed once per image)."""
        itm_batch_size, images_per_group = self.rerank_batching(device)
        logits = torch.empty(plan.num_pairs, dtype=torch.float32, device=device)
        # Each batch runs at its longest caption's length: padding tokens are masked out of every attention
        # (exp(-10000) is exactly 0 in float32) and no other token reads them, so the scores do not change.
        pair_len = lengths[plan.text]
        text_ids, text_atts = text_ids.to(device), text_atts.to(device)
        prefix, slot = self._itm_prefixes(model, plan.text, text_ids, text_atts, lengths, device)
        # Within a group of images (keys/values cached together) pairs run shortest caption first, so each
        # batch is cut to nearly one length; rows sharing an image still attend to its cached keys/values
        # together. Indices stay on the CPU (the grouping is planned there, no device sync).
        pair_image = plan.image_pos.cpu()
        bar = _Progress(self.progress and self.dist.is_main, plan.num_pairs, "ITM re-rank")
        try:
            for g0, g1, p0, p1 in image_groups(plan.image_pos, image_embeds.shape[0], images_per_group):
                kv = model.cross_kv(image_embeds[g0:g1].to(device, non_blocking=True))
                order = p0 + torch.argsort(pair_len[p0:p1], stable=True)  # stable: by image within a length
                for b0 in range(0, p1 - p0, itm_batch_size):
                    rows = order[b0:b0 + itm_batch_size]
                    length = int(pair_len[rows].max())
                    texts = plan.text[rows].to(device, non_blocking=True)
                    rows_prefix = None if prefix is None else prefix[slot[texts], :length]
                    out = model.itm_logits_cached(kv, pair_image[rows] - g0, text_ids[texts, :length],
                                                  text_atts[texts, :length], rows_prefix)
                    logits[rows.to(device, non_blocking=True)] = out[:, 1].float()
                    bar.update(rows.numel())
        finally:
            bar.close()
        return logits.cpu()
