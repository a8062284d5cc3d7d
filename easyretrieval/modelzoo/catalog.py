"""The named checkpoints and files `resolve()` knows, with what each one is.

A URL in the catalog is either absolute or relative to a base: EasyNLP's modelzoo (override with
EASYRETRIEVAL_MODELZOO_URL, e.g. for a mirror or another region) or Salesforce's BLIP bucket (override
with EASYRETRIEVAL_SALESFORCE_URL). An entry on the HF hub names a repository and its files, each with
its sha256 (checked after download). Sizes on disk are approximate (for display only).

A checkpoint entry says what it is: model size (`vit`), the image size it was trained at, its ITC
embed_dim and what it was fine-tuned on (None: pre-trained only), so `pretrained=NAME` can set the sizes.
"""
import dataclasses
import os
from typing import Optional, Tuple

HUB_PREFIX = "hf://"

MODELZOO_URL_ENV = "EASYRETRIEVAL_MODELZOO_URL"
SALESFORCE_URL_ENV = "EASYRETRIEVAL_SALESFORCE_URL"
DEFAULT_MODELZOO_URL = "http://atp-modelzoo-sh.oss-cn-shanghai.aliyuncs.com/release/easynlp_modelzoo/"
DEFAULT_SALESFORCE_URL = "https://storage.googleapis.com/sfr-vision-language-research/BLIP/models/"
MODELZOO, SALESFORCE, HUGGINGFACE = "modelzoo", "salesforce", "huggingface"


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    name: str
    path: str  # relative to the base named by `host`; for HUGGINGFACE the repository id
    host: str  # MODELZOO, SALESFORCE or HUGGINGFACE
    kind: str  # "checkpoint" or "tokenizer"
    vit: Optional[str]  # "base" / "large"; None for non-BLIP entries
    finetuned_on: Optional[str]  # "coco" / "flickr30k"; None for pre-trained only
    approx_size: str  # what to expect on disk, e.g. "~0.9 GB"
    description: str
    image_size: Optional[int] = None  # input resolution the checkpoint was trained at (px)
    embed_dim: Optional[int] = None  # width of its ITC features
    files: Tuple[Tuple[str, str], ...] = ()  # HUGGINGFACE: (file name, sha256) of each file to fetch

    @property
    def url(self):
        if self.host == HUGGINGFACE:
            return f"{HUB_PREFIX}{self.path}"
        return base_url(self.host) + self.path


def base_url(host):
    if host == MODELZOO:
        base = os.environ.get(MODELZOO_URL_ENV) or DEFAULT_MODELZOO_URL
    elif host == SALESFORCE:
        base = os.environ.get(SALESFORCE_URL_ENV) or DEFAULT_SALESFORCE_URL
    else:
        raise ValueError(f"unknown catalog host {host!r}")
    return base if base.endswith("/") else base + "/"


def _blip(name, path, host, vit, finetuned_on, approx_size, description):
    # Official configs: pre-training at 224 px (configs/pretrain.yaml), retrieval fine-tuning at 384 px
    # (configs/retrieval_{coco,flickr}.yaml); embed_dim 256 (models/blip_retrieval.py).
    image_size = 384 if finetuned_on else 224
    return ModelEntry(name, path, host, "checkpoint", vit, finetuned_on, approx_size, description,
                      image_size=image_size, embed_dim=256)


_PAI = "alibaba-pai/blip/pretrained/"
_ENTRIES = (
    # The seed's four checkpoints, as hosted by EasyNLP's modelzoo.
    _blip("blip_base", _PAI + "model_base.pth", MODELZOO, "base", None, "~0.9 GB",
          "BLIP ViT-B/16 pre-trained on 14M images (EasyNLP mirror)"),
    _blip("blip_large", _PAI + "model_large.pth", MODELZOO, "large", None, "~1.8 GB",
          "BLIP ViT-L/16 pre-trained on 129M images (EasyNLP mirror)"),
    _blip("blip_base_retrieval_flickr", _PAI + "model_base_retrieval_flickr.pth", MODELZOO, "base", "flickr30k",
          "~1.8 GB", "BLIP ViT-B retrieval fine-tuned on Flickr30k (EasyNLP mirror)"),
    _blip("blip_large_retrieval_flickr", _PAI + "model_large_retrieval_flickr.pth", MODELZOO, "large", "flickr30k",
          "~3.4 GB", "BLIP ViT-L retrieval fine-tuned on Flickr30k (EasyNLP mirror)"),
    # Official Salesforce release (salesforce/BLIP configs/retrieval_{coco,flickr}.yaml).
    _blip("salesforce_blip_base", "model_base.pth", SALESFORCE, "base", None, "~0.9 GB",
          "BLIP ViT-B/16 pre-trained on 14M images (Salesforce)"),
    _blip("salesforce_blip_large", "model_large.pth", SALESFORCE, "large", None, "~1.8 GB",
          "BLIP ViT-L/16 pre-trained on 129M images (Salesforce)"),
    _blip("salesforce_blip_base_retrieval_coco", "model_base_retrieval_coco.pth", SALESFORCE, "base", "coco",
          "~1.8 GB", "BLIP ViT-B retrieval fine-tuned on COCO (Salesforce)"),
    _blip("salesforce_blip_large_retrieval_coco", "model_large_retrieval_coco.pth", SALESFORCE, "large", "coco",
          "~3.4 GB", "BLIP ViT-L retrieval fine-tuned on COCO (Salesforce)"),
    _blip("salesforce_blip_base_retrieval_flickr", "model_base_retrieval_flickr.pth", SALESFORCE, "base",
          "flickr30k", "~1.8 GB", "BLIP ViT-B retrieval fine-tuned on Flickr30k (Salesforce)"),
    _blip("salesforce_blip_large_retrieval_flickr", "model_large_retrieval_flickr.pth", SALESFORCE, "large",
          "flickr30k", "~3.4 GB", "BLIP ViT-L retrieval fine-tuned on Flickr30k (Salesforce)"),
    # bert-base-uncased's vocab.txt from the HF hub: sha256 of the file (its git blob sha1 on the hub is
    # fb140275c155a9c7c5a3b3e0e77a9e839594a938, the same bytes as the vocab of sentence-transformers' MiniLM).
    ModelEntry("bert-base-uncased", "google-bert/bert-base-uncased", HUGGINGFACE, "tokenizer", None, None, "~0.2 MB",
               "BERT base uncased WordPiece vocab (HF hub google-bert/bert-base-uncased, sha256-checked)",
               files=(("vocab.txt", "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"),)),
    # UNVERIFIED path: EasyNLP maps names to tgz files through modelzoo_alibaba.json, which we could not read.
    # EasyNLP unpacks this model to ~/.easynlp/modelzoo/public/bert-base-uncased and hosts other public files
    # under public/, so public/bert-base-uncased.tgz is the likely location. Override the base if needed.
    ModelEntry("easynlp_bert-base-uncased", "public/bert-base-uncased.tgz", MODELZOO, "tokenizer", None, None,
               "~0.4 GB", "BERT base uncased (tokenizer vocab + config) as EasyNLP hosts it, unpacked to a folder"),
)

CATALOG = {entry.name: entry for entry in _ENTRIES}


def get_entry(name):
    return CATALOG.get(name)


def names():
    return sorted(CATALOG)
