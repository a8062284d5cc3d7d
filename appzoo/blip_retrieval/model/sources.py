"""What `pretrained=` (and `BlipRetrieval.from_pretrained(source)`) names, and its weights in the official layout.

`locate(spec)` turns a spec into a `PretrainedSource`, reading no weights:
  kind "folder"  a save_pretrained folder (ours, also OUTPUT_DIR/best/): describes its model, ships its vocab
  kind "hf"      a transformers BlipForImageTextRetrieval folder, local or an HF hub id (`org/name`,
                 `hf://org/name`, downloaded through huggingface_hub): describes its model, usually ships a vocab
  kind "file"    a weights file: an official .pth ({'model': sd}), or .safetensors in the official or HF
                 layout; a modelzoo name or an http(s)/oss:// URL resolves to one (a catalog entry describes
                 its sizes). A model.safetensors inside a described folder stands for that folder.
Folders that hold no model are refused with what they are and what to do (a training checkpoint: `export`
or `resume=`; a training output folder: its best/). `read_weights(source)` returns the official-layout
state dict that `checkpoint.load_state` loads with the official rules.
"""
import glob
import os
from dataclasses import dataclass, field
from typing import Optional

from easyretrieval.errors import UserError

from appzoo.blip_retrieval.catalog import PRETRAINED_ONLY

FOLDER, HF, FILE = "folder", "hf", "file"


@dataclass
class PretrainedSource:
    spec: str                      # what the user gave
    kind: str                      # FOLDER, HF or FILE
    path: str                      # the local folder (FOLDER, HF) or file (FILE)
    config: Optional[object] = None    # BlipRetrievalConfig when the source says what model it is
    vocab: Optional[object] = None     # the vocab it ships: vocab.txt path or token -> id dict
    entry: Optional[object] = None     # the modelzoo catalog entry of a name
    tokenizer_ids: dict = field(default_factory=dict)  # special ids a save_pretrained folder recorded
    about: dict = field(default_factory=dict)          # what a save_pretrained folder says the weights are

    def sizes(self):
        """{parameter: value} the source fixes: vit, image_size, patch_size, vit_stem (and queue_size, max_words
        of a folder).

        A pre-trained-only catalog entry fixes vit only: official fine-tuning starts from it at another
        image size (224 -> 384 px, position embeddings interpolated)."""
        if self.config is not None:
            sizes = {"vit": self.config.vit, "image_size": self.config.vision.image_size,
                     "patch_size": self.config.vision.patch_size, "vit_stem": self.config.vision.stem}
            if self.kind == FOLDER:  # an HF folder has no queue (blip_extras aside) nor caption length
                sizes.update(queue_size=self.config.queue_size, max_words=self.config.max_words)
            return sizes
        if self.entry is not None and self.entry.detail("vit"):  # details: appzoo/blip_retrieval/catalog.py
            sizes = {"vit": self.entry.detail("vit")}
            finetuned = self.entry.detail("finetuned_on", PRETRAINED_ONLY) != PRETRAINED_ONLY
            if finetuned and self.entry.detail("image_size"):
                sizes["image_size"] = self.entry.detail("image_size")
            return sizes
        return {}

    def describe(self):
        what = {FOLDER: "save_pretrained folder", HF: "transformers BlipForImageTextRetrieval folder",
                FILE: "weights file"}[self.kind]
        if self.entry is not None:
            what = f"modelzoo entry {self.entry.name} ({self.entry.description})"
        return f"{what} {self.path}" if self.path else what


def _is_training_checkpoint(path):
    from easyretrieval.engine.checkpointing import LATEST, MARKER

    return (os.path.isfile(os.path.join(path, MARKER)) or bool(glob.glob(os.path.join(path, "*model_states.pt")))
            or (os.path.isfile(os.path.join(path, LATEST)) and bool(glob.glob(os.path.join(path, "step_*")))))


def _refuse_folder(spec, path):
    from appzoo.blip_retrieval.model.pretrained_folder import is_pretrained_folder

    if _is_training_checkpoint(path):
        raise UserError(
            f"{spec} is a resumable training checkpoint (DeepSpeed state), not model weights: to "
            f"continue that training give resume={spec}; to evaluate or fine-tune from its weights, first "
            f"`easyretrieval export {spec} --output weights.pth`, then pretrained=weights.pth")
    best = os.path.join(path, "best")
    if is_pretrained_folder(best) or os.path.isfile(os.path.join(path, "checkpoint_best.pth")):
        target = best if is_pretrained_folder(best) else os.path.join(path, "checkpoint_best.pth")
        raise UserError(f"{spec} is a training output folder, not a model: its best epoch's model is "
                        f"pretrained={target}")
    raise UserError(f"{spec} is a folder without a model: give a save_pretrained folder (config.json, "
                    "model.safetensors, vocab.txt), a transformers BlipForImageTextRetrieval folder (config.json "
                    "and weights) or a weights file (.pth / .safetensors)")


def _from_folder(spec, path):
    from appzoo.blip_retrieval.model import hf_folder, pretrained_folder

    if pretrained_folder.is_pretrained_folder(path):
        info = pretrained_folder.read_info(path)
        return PretrainedSource(spec, FOLDER, path, config=info.config, vocab=info.vocab,
                                tokenizer_ids=info.tokenizer, about=info.about)
    if hf_folder.is_hf_folder(path):
        info = hf_folder.read_info(path)
        return PretrainedSource(spec, HF, path, config=info.config, vocab=info.vocab)
    _refuse_folder(spec, path)


def _from_file(spec, path, entry=None):
    from appzoo.blip_retrieval.model import hf_folder, pretrained_folder
    from appzoo.blip_retrieval.model.checkpoint import sniff_checkpoint

    folder = os.path.dirname(os.path.abspath(path))
    if os.path.basename(path) == pretrained_folder.WEIGHTS_FILE and (
            pretrained_folder.is_pretrained_folder(folder) or hf_folder.is_hf_folder(folder)):
        return _from_folder(spec, folder)  # the weights of a folder that says what model they are
    kind = sniff_checkpoint(path)  # refuse a non-checkpoint now, before any heavy work
    if kind not in ("zip", "pickle", "safetensors"):
        from appzoo.blip_retrieval.model.checkpoint import not_a_checkpoint

        raise not_a_checkpoint(path, kind)
    vocab = os.path.join(folder, "vocab.txt")  # e.g. tokenizer=build's vocab beside checkpoint_best.pth
    return PretrainedSource(spec, FILE, path, entry=entry, vocab=vocab if os.path.isfile(vocab) else None)


def _from_hub(spec, repo_id, weights):
    from easyretrieval.modelzoo._hub import hub_file

    from appzoo.blip_retrieval.model import hf_folder, pretrained_folder

    folder = os.path.dirname(hub_file(repo_id, "config.json"))
    if not (hf_folder.is_hf_folder(folder) or pretrained_folder.is_pretrained_folder(folder)):
        raise UserError(f"hub repository {repo_id} is not a BLIP model (its config.json is not a transformers "
                        "BLIP config): give a BlipForImageTextRetrieval repository, e.g. Salesforce/blip-itm-base-coco")
    if hub_file(repo_id, "vocab.txt", required=False) is None:
        hub_file(repo_id, "tokenizer.json", required=False)
    if not weights:
        return _from_folder(spec, folder)
    hub_file(repo_id, "blip_extras.safetensors", required=False)
    if hub_file(repo_id, "model.safetensors", required=False) is None:
        index = hub_file(repo_id, "model.safetensors.index.json", required=False)
        if index is not None:
            import json

            with open(index, encoding="utf-8") as handle:
                for shard in sorted(set(json.load(handle).get("weight_map", {}).values())):
                    hub_file(repo_id, shard)
        elif hub_file(repo_id, "pytorch_model.bin", required=False) is None:
            raise UserError(f"hub repository {repo_id} holds no model.safetensors(.index.json) or pytorch_model.bin")
    return _from_folder(spec, folder)


def locate(spec, weights=True) -> PretrainedSource:
    """Resolve `spec` (path, modelzoo name, URL or HF hub id) and say what it is; no weights are read.

    weights=False: only say what it is, downloading no weights: a modelzoo name gives its catalog entry,
    a URL nothing (path None), a hub id its config and vocab."""
    from easyretrieval.modelzoo import resolve
    from easyretrieval.modelzoo._hub import hub_repo_id
    from easyretrieval.modelzoo.catalog import get_entry

    if not isinstance(spec, str) or not spec.strip():
        raise UserError("pretrained: empty source (give a folder, a weights file, a modelzoo name, a URL or an "
                        "HF hub id)")
    spec = spec.strip()
    local = os.path.expanduser(spec[len("file://"):] if spec.startswith("file://") else spec)
    if os.path.isdir(local):
        return _from_folder(spec, local)
    if os.path.isfile(local):
        return _from_file(spec, local)
    entry = get_entry(spec)
    repo_id = hub_repo_id(spec) if entry is None else None
    if repo_id is not None:
        return _from_hub(spec, repo_id, weights)
    if not weights and (entry is not None or "://" in spec):
        return PretrainedSource(spec, FILE, None, entry=entry)
    path = resolve(spec)  # a catalog name, a URL, or a path that does not exist (a clear error)
    if os.path.isdir(path):
        return _from_folder(spec, path)
    return _from_file(spec, path, entry=entry)


def read_weights(source: PretrainedSource):
    """The source's state dict in the official BLIP layout."""
    from appzoo.blip_retrieval.model import hf_folder, pretrained_folder
    from appzoo.blip_retrieval.model.checkpoint import read_state_dict
    from appzoo.blip_retrieval.model.hf_convert import from_hf, infer_config, official_key_layout

    if source.kind == FOLDER:
        return pretrained_folder.read_weights(source.path)
    if source.kind == HF:
        return hf_folder.read_weights(hf_folder.read_info(source.path))
    state = read_state_dict(source.path)
    if official_key_layout(state) == "hf":  # a bare HF model.safetensors: sizes from its shapes
        from appzoo.blip_retrieval.model.hf_convert import from_hf_keys

        renamed = from_hf_keys(state)
        return from_hf(state, infer_config(renamed))
    return state


def config_of(source: PretrainedSource, state):
    """The model config the source describes, else the one its weights' shapes give."""
    from appzoo.blip_retrieval.model.hf_convert import infer_config

    return source.config if source.config is not None else infer_config(state)
