"""The folder `BlipRetrieval.save_pretrained` writes (and training writes as OUTPUT_DIR/best/).

    config.json        {"format": "easyretrieval/blip_retrieval", "format_version": 1,
                        "model": every size and setting of BlipRetrievalConfig (rebuilds the model),
                        "tokenizer": vocab file, size and the special tokens' ids,
                        "image_processor": test-time resize and normalisation,
                        "about": what the weights are (e.g. fine-tuned on, epoch, metrics)}
    model.safetensors  the state dict in the official BLIP layout, every key (encoders, momentum encoders,
                       queues, temp), fp32, so it loads like the official .pth it was made from
    vocab.txt          the WordPiece vocab; [DEC] and [ENC] are appended on load, as official init_tokenizer

The reader checks that the rebuilt tokenizer gives the recorded special ids, so a folder never silently
pairs weights with another vocab.
"""
import json
import os
from dataclasses import dataclass, field

from easyretrieval.errors import UserError

FORMAT = "easyretrieval/blip_retrieval"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
VOCAB_FILE = "vocab.txt"
_SPECIALS = ("pad", "unk", "cls", "sep", "mask", "bos")


@dataclass
class FolderInfo:
    """What a save_pretrained folder's config.json says (no weights read)."""

    path: str
    config: object          # BlipRetrievalConfig
    vocab: str              # path of vocab.txt
    tokenizer: dict         # the recorded special-token ids
    about: dict = field(default_factory=dict)


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"cannot read {path}: {type(error).__name__}: {error}") from None


def is_pretrained_folder(path) -> bool:
    """True when `path` is a folder whose config.json names our format."""
    config = os.path.join(path, CONFIG_FILE)
    if not os.path.isfile(config):
        return False
    try:
        with open(config, encoding="utf-8") as handle:
            return json.load(handle).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def read_info(path) -> FolderInfo:
    """The config of a save_pretrained folder (UserError when a file is missing or malformed)."""
    from appzoo.blip_retrieval.model.config import BlipRetrievalConfig

    data = _read_json(os.path.join(path, CONFIG_FILE))
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise UserError(f"{path}: format_version {version} is not {FORMAT_VERSION}, the one this version reads; "
                        "upgrade easyretrieval")
    for name in (WEIGHTS_FILE, VOCAB_FILE):
        if not os.path.isfile(os.path.join(path, name)):
            raise UserError(f"{path} has a config.json but no {name}: the folder is incomplete; write it again "
                            "with save_pretrained")
    try:
        config = BlipRetrievalConfig.from_dict(data["model"])
    except (KeyError, TypeError) as error:
        raise UserError(f"{path}/{CONFIG_FILE}: the model section is malformed ({error})") from None
    return FolderInfo(path, config, os.path.join(path, VOCAB_FILE), dict(data.get("tokenizer", {})),
                      dict(data.get("about", {})))


def read_weights(path):
    """The official-layout state dict of a save_pretrained folder."""
    from safetensors.torch import load_file

    return load_file(os.path.join(path, WEIGHTS_FILE))


def tokenizer_record(tokenizer) -> dict:
    """Vocab size and special-token ids of BLIP's tokenizer, as config.json records them."""
    record = {"vocab_file": VOCAB_FILE, "vocab_size": len(tokenizer), "do_lower_case": True,
              "bos_token": tokenizer.bos_token, "enc_token": "[ENC]", "enc_token_id": tokenizer.enc_token_id}
    for name in _SPECIALS:
        record[f"{name}_token_id"] = getattr(tokenizer, f"{name}_token_id")
    return record


def check_tokenizer(tokenizer, record, where):
    """UserError when `tokenizer` does not give the ids `record` (from config.json) names."""
    actual = tokenizer_record(tokenizer)
    wrong = [f"{k} {actual[k]} (recorded {v})" for k, v in record.items() if k in actual and actual[k] != v]
    if wrong:
        raise UserError(f"{where}: the tokenizer does not match the one the model was saved with: "
                        + ", ".join(wrong))


def base_vocab(tokenizer):
    """The tokens of the WordPiece vocab in id order, without the [DEC] / [ENC] that BLIP appends."""
    from appzoo.blip_retrieval.model.tokenizer import DEC_TOKEN, ENC_TOKEN

    by_id = sorted((i, t) for t, i in tokenizer.get_vocab().items())
    tokens = [t for _, t in by_id]
    while tokens and tokens[-1] in (DEC_TOKEN, ENC_TOKEN):
        tokens.pop()
    if [i for i, _ in by_id[:len(tokens)]] != list(range(len(tokens))):
        raise ValueError("the tokenizer's vocab ids are not contiguous; it cannot be written as vocab.txt")
    return tokens


def image_processor_record(image_size):
    from appzoo.blip_retrieval.data.transforms import CLIP_MEAN, CLIP_STD

    return {"image_size": image_size, "resize": "bicubic, to image_size x image_size", "mean": list(CLIP_MEAN),
            "std": list(CLIP_STD)}


def write_folder(folder, config, tokenizer, state_dict, about=None):
    """Write config.json, model.safetensors and vocab.txt into `folder` (replaced whole, atomically).

    `state_dict`: official-layout tensors (written as contiguous CPU copies). Returns `folder`.
    """
    from safetensors.torch import save_file

    from easyretrieval.fileio import write_dir

    tokens = base_vocab(tokenizer)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "model": config.to_dict(),
            "tokenizer": tokenizer_record(tokenizer),
            "image_processor": image_processor_record(config.vision.image_size), "about": dict(about or {})}
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}

    def write(tmp):
        save_file(tensors, os.path.join(tmp, WEIGHTS_FILE), metadata={"format": "pt", "layout": "official BLIP"})
        with open(os.path.join(tmp, VOCAB_FILE), "w", encoding="utf-8") as handle:
            handle.write("\n".join(tokens) + "\n")
        with open(os.path.join(tmp, CONFIG_FILE), "w", encoding="utf-8") as handle:
            json.dump(meta, handle, indent=2)
            handle.write("\n")

    return write_dir(folder, write)
