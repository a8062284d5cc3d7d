"""The identity of a BlipRetrieval model, as a gallery index records it: what a query's model must equal.

    identity = {"model": "blip_retrieval",
                "config": the sizes and settings that change features or scores (training-only ones left out),
                "weights_sha256": sha256 over the inference weights of the state dict as loaded,
                "vocab_sha256": sha256 of the tokenizer's vocab (token -> id)}

The weights hash covers every key but the momentum encoders and the feature queues: retrieval never reads
them, and a source that lacks the queues gets random ones, which would make the same weights look like
another model. Hashing ViT-B takes about a second, so the result is cached per model object until one of
its tensors changes (in place, or replaced).
"""
import hashlib
import os
import weakref

from easyretrieval.secrets import mask_secrets

# Settings that only training reads: an index stays valid whatever they are.
_TRAINING_ONLY = {"queue_size", "momentum", "negative_all_rank", "temp_init", "temp_min", "temp_max"}
_TRAINING_ONLY_VISION = {"drop_path_rate", "grad_ckpt", "ckpt_layer"}
_TRAINING_ONLY_TEXT = {"hidden_dropout", "attention_dropout", "grad_ckpt"}
_SKIPPED_PREFIXES = ("visual_encoder_m.", "vision_proj_m.", "text_encoder_m.", "text_proj_m.")
_SKIPPED_KEYS = {"image_queue", "text_queue", "idx_queue", "ptr_queue"}

_CACHE = weakref.WeakKeyDictionary()  # model -> (tensor versions, identity)


def inference_config(config) -> dict:
    """The model config without the training-only settings."""
    values = config.to_dict()
    out = {k: v for k, v in values.items() if k not in _TRAINING_ONLY and k not in ("vision", "text")}
    out["vision"] = {k: v for k, v in values["vision"].items() if k not in _TRAINING_ONLY_VISION}
    out["text"] = {k: v for k, v in values["text"].items() if k not in _TRAINING_ONLY_TEXT}
    return out


def weights_sha256(model) -> str:
    """sha256 over (key, dtype, shape, bytes) of the inference weights, keys sorted."""
    import torch

    digest = hashlib.sha256()
    state = model.state_dict()
    for key in sorted(state):
        if key in _SKIPPED_KEYS or key.startswith(_SKIPPED_PREFIXES):
            continue
        tensor = state[key].detach()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        flat = tensor.to("cpu").contiguous().reshape(-1)
        if flat.numel():
            digest.update(flat.view(torch.uint8).numpy())
    return digest.hexdigest()


def vocab_sha256(tokenizer) -> str:
    if tokenizer is None:
        return ""
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    return hashlib.sha256("\n".join(f"{token}\t{i}" for token, i in vocab).encode("utf-8")).hexdigest()


def _versions(model):
    return tuple((t.data_ptr(), t._version) for t in list(model.parameters()) + list(model.buffers()))


def model_identity(model) -> dict:
    """The identity dict of `model` (cached until one of its tensors changes)."""
    versions = _versions(model)
    cached = _CACHE.get(model)
    if cached is not None and cached[0] == versions and cached[2] is model.tokenizer:
        return dict(cached[1])
    identity = {"model": "blip_retrieval", "config": inference_config(model.config),
                "weights_sha256": weights_sha256(model), "vocab_sha256": vocab_sha256(model.tokenizer)}
    _CACHE[model] = (versions, identity, model.tokenizer)
    return dict(identity)


def source_record(spec) -> str:
    """How an index records the model's source: an existing local path made absolute, anything else (a
    name, hub id, URL) as given, with signatures and keys masked."""
    if not spec:
        return ""
    spec = os.fspath(spec)
    local = os.path.expanduser(spec[len("file://"):] if spec.startswith("file://") else spec)
    if os.path.exists(local):
        return os.path.abspath(local)
    return mask_secrets(spec)
