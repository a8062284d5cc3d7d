"""Checks of a blip_retrieval run: those that need no data (`check_run`, called by BlipRetrievalApp.check
before any download, process group, data preparation or model build) and the first one that needs the
training set's size (`check_train_batches`, before the model is built).
"""
import os

from easyretrieval.errors import UserError

from appzoo.blip_retrieval.factories import VOCAB_FILE, vocab_candidates
from appzoo.blip_retrieval.model.config import stem_fits_patch


def check_image_size(config):
    """image_size must be a whole number of ViT patches (patch_size: 16 for ViT-B/16 and ViT-L/16)."""
    size, patch = config.image_size, config.patch_size
    if size % patch:
        low = size - size % patch
        nearest = f"{low} or {low + patch}" if low else f"{patch}"
        raise UserError(f"parameter 'image_size': {size} is not a multiple of the ViT patch size {patch} "
                        f"(patch_size); use e.g. {nearest}")


def check_vit_stem(config):
    """vit_stem=conv halves the image with each stride-2 convolution: patch_size must be a power of two."""
    if not stem_fits_patch(config.vit_stem, config.patch_size):
        raise UserError(f"parameter 'vit_stem': conv needs a patch_size that is a power of two (each of its "
                        f"stride-2 convolutions halves the image), not {config.patch_size}; use e.g. patch_size=8 "
                        "or 16")


def check_queue(config, world_size):
    """The momentum queues must hold at least one global batch (all ranks' features enqueued per step).

    Official BLIP asserts queue_size % global batch == 0 because its enqueue writes one slice without
    wrapping. Ours wraps around (model.losses.ring_write: an exact FIFO of the last queue_size features) and
    equals the official enqueue whenever the official assert holds; a queue that is not a multiple is accepted.
    A queue shorter than one batch is refused: it would keep only part of the previous batch.
    """
    batch = config.batch_size_train * world_size
    if config.queue_size < batch:
        ranks = f"{world_size} rank" + ("s" if world_size != 1 else "")
        raise UserError(f"parameter 'queue_size': {config.queue_size} is smaller than the global batch of {batch} "
                        f"(batch_size_train {config.batch_size_train} x {ranks}); the momentum queues must hold "
                        f"at least one batch: use queue_size >= {batch} (official BLIP needs a multiple of {batch})")


def check_eval_precision(config):
    if config.eval_precision != "fp32":
        import torch

        if not torch.cuda.is_available():
            raise UserError(f"eval_precision={config.eval_precision} needs a GPU; use eval_precision=fp32 on CPU")


def check_train_batches(num_samples, config, world_size):
    """An epoch must hold at least one optimizer step on every rank (the train loader drops partial batches)."""
    per_rank = -(-num_samples // world_size)  # DistributedSampler pads every rank to ceil(n / world)
    batches = per_rank // config.batch_size_train
    ranks = "" if world_size == 1 else f" ({per_rank} per rank on {world_size} ranks)"
    if batches == 0:
        raise UserError(f"batch_size_train={config.batch_size_train} is larger than the {num_samples} training "
                        f"samples{ranks}: an epoch would have no batch; use batch_size_train <= {per_rank}")
    gas = config.gradient_accumulation_steps
    if batches < gas:
        raise UserError(f"an epoch has {batches} batches of batch_size_train={config.batch_size_train} "
                        f"({num_samples} training samples{ranks}), fewer than gradient_accumulation_steps={gas}; "
                        "lower one of them")


def check_vocab_available(config, output_dirs):
    """tokenizer=build outside training needs the vocab a training run built."""
    if config.tokenizer != "build":
        return
    if not any(os.path.isfile(p) for p in vocab_candidates(config, output_dirs)):
        raise UserError(f"tokenizer=build: no {VOCAB_FILE} in output_dir '{output_dirs[0]}' or beside pretrained=; "
                        "evaluate/predict need the vocab the training run built (or tokenizer=<vocab>)")


def check_report_path(path, what="report"):
    """UserError unless `path` ('' = no page) names an .html file that can be written (before any work)."""
    if not path:
        return
    if not path.lower().endswith((".html", ".htm")):
        raise UserError(f"{what}={path}: give a file name ending in .html")
    if os.path.isdir(path):
        raise UserError(f"{what}={path} is a folder; give a file name ending in .html")
    probe = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(probe):  # the folders still to create: the nearest existing one must be writable
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe) or not os.access(probe, os.W_OK):
        raise UserError(f"{what}={path}: cannot write into '{probe}'")
