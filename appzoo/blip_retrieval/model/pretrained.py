"""`BlipRetrieval.from_pretrained(source)` and `model.save_pretrained(folder)`: a self-describing model.

from_pretrained builds the model the source describes (a save_pretrained folder, an HF folder or hub id),
or the one its weights' shapes give (an official .pth, a .safetensors file, a modelzoo name or URL), loads
the weights with the official rules (`checkpoint.load_state`), attaches BLIP's tokenizer and puts the model
in eval mode on `device`. No process group is needed.
"""
import os

from easyretrieval.errors import UserError

DEFAULT_TOKENIZER = "bert-base-uncased"  # the vocab official BLIP uses (30522 tokens + [DEC] + [ENC])
BERT_VOCAB_SIZE = 30524


def tokenizer_for(source, config, tokenizer=None):
    """BLIP's tokenizer for a located source: `tokenizer` when given (a tokenizer, or a vocab path, modelzoo
    name or hub id), else the vocab the source ships, else bert-base-uncased when the model has its size.
    UserError when no vocab fits the model's text embedding."""
    from appzoo.blip_retrieval.model.tokenizer import create_tokenizer

    if tokenizer is not None and not isinstance(tokenizer, (str, os.PathLike)):
        result = tokenizer
    elif tokenizer is not None:
        from easyretrieval.modelzoo import resolve

        result = create_tokenizer(resolve(os.fspath(tokenizer), hub_files=("vocab.txt",)))
    elif source.vocab is not None:
        result = create_tokenizer(source.vocab)
        if source.tokenizer_ids:
            from appzoo.blip_retrieval.model.pretrained_folder import check_tokenizer

            check_tokenizer(result, source.tokenizer_ids, source.path)
    elif config.text.vocab_size == BERT_VOCAB_SIZE:
        from easyretrieval.modelzoo import resolve

        result = create_tokenizer(resolve(DEFAULT_TOKENIZER))
    else:
        raise UserError(f"{source.spec}: its text encoder has {config.text.vocab_size} tokens, not "
                        f"bert-base-uncased's {BERT_VOCAB_SIZE}, and no vocab.txt comes with it: give the vocab "
                        "it was trained with (tokenizer=)")
    if len(result) != config.text.vocab_size:
        raise UserError(f"{source.spec}: the tokenizer has {len(result)} tokens, the model's text encoder "
                        f"{config.text.vocab_size}: give the vocab the model was trained with")
    return result


class PretrainedMixin:
    """from_pretrained / save_pretrained for BlipRetrieval."""

    @classmethod
    def from_pretrained(cls, source, device=None, tokenizer=None):
        """The model `source` names, with its tokenizer and image transform, in eval mode.

        source: a folder written by `save_pretrained` (or training's OUTPUT_DIR/best), an official BLIP
        .pth, a .safetensors file, a modelzoo name (`easyretrieval models`), an http(s):// or oss:// URL,
        a transformers BlipForImageTextRetrieval folder, or an HF hub id (`Salesforce/blip-itm-base-coco`,
        through huggingface_hub: its cache, HF_ENDPOINT, HF_HUB_OFFLINE).
        device: where the model goes (default CPU). tokenizer: overrides the vocab (a path, modelzoo name,
        hub id or a tokenizer); by default the source's own vocab, else bert-base-uncased.
        The load report (missing / unexpected / initialised / interpolated keys) is `model.load_report`.
        Raises easyretrieval.UserError with what to do when the source is missing, is not a model (a JPEG,
        a training checkpoint folder), or does not fit (sizes, vocab).
        """
        from appzoo.blip_retrieval.model.checkpoint import load_state
        from appzoo.blip_retrieval.model.sources import config_of, locate, read_weights

        located = locate(os.fspath(source))
        state = read_weights(located)
        config = config_of(located, state)
        model = cls(config, tokenizer_for(located, config, tokenizer))
        model.load_report = load_state(model, state, source=located.describe())
        model.about = dict(located.about)
        return model.to(device if device is not None else "cpu").eval()

    def save_pretrained(self, folder, about=None):
        """Write `folder`: config.json (every size and setting that rebuilds this model, the tokenizer's
        special ids, the image preprocessing, `about`), model.safetensors (fp32, official layout, every key)
        and vocab.txt. The folder is replaced whole and atomically. Returns the folder's path."""
        from appzoo.blip_retrieval.model.checkpoint import official_state_dict
        from appzoo.blip_retrieval.model.pretrained_folder import write_folder

        if self.tokenizer is None:
            raise RuntimeError("save_pretrained needs the model's tokenizer (BlipRetrieval(config, tokenizer))")
        info = dict(getattr(self, "about", {}) or {})
        info.update(about or {})
        return write_folder(os.fspath(folder), self.config, self.tokenizer, official_state_dict(self), info)
