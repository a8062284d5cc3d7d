"""The named checkpoints and files `resolve()` knows, with what each one is.

A URL in the catalog is either absolute or relative to a base: EasyNLP's modelzoo (override with
EASYRETRIEVAL_MODELZOO_URL, e.g. for a mirror or another region) or Salesforce's BLIP bucket (override
with EASYRETRIEVAL_SALESFORCE_URL). Sizes are approximate (for display; no length check relies on them).
"""
import dataclasses
import os
from typing import Optional

MODELZOO_URL_ENV = "EASYRETRIEVAL_MODELZOO_URL"
SALESFORCE_URL_ENV = "EASYRETRIEVAL_SALESFORCE_URL"
DEFAULT_MODELZOO_URL = "http://atp-modelzoo-sh.oss-cn-shanghai.aliyuncs.com/release/easynlp_modelzoo/"
DEFAULT_SALESFORCE_URL = "https://storage.googleapis.com/sfr-vision-language-research/BLIP/models/"
MODELZOO, SALESFORCE = "modelzoo", "salesforce"


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    name: str
    path: str  # relative to the base named by `host`
    host: str  # MODELZOO or SALESFORCE
    kind: str  # "checkpoint" or "tokenizer"
    vit: Optional[str]  # "base" / "large"; None for non-BLIP entries
    finetuned_on: Optional[str]  # "coco" / "flickr30k"; None for pre-trained only
    approx_size: str  # what to expect on disk, e.g. "~0.9 GB"
    description: str

    @property
    def url(self):
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
    return ModelEntry(name, path, host, "checkpoint", vit, finetuned_on, approx_size, description)


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
    # UNVERIFIED path: EasyNLP maps names to tgz files through modelzoo_alibaba.json, which we could not read.
    # EasyNLP unpacks this model to ~/.easynlp/modelzoo/public/bert-base-uncased and hosts other public files
    # under public/, so public/bert-base-uncased.tgz is the likely location. Override the base if needed.
    ModelEntry("bert-base-uncased", "public/bert-base-uncased.tgz", MODELZOO, "tokenizer", None, None, "~0.4 GB",
               "BERT base uncased (tokenizer vocab + config) as EasyNLP hosts it, unpacked to a folder"),
)

CATALOG = {entry.name: entry for entry in _ENTRIES}


def get_entry(name):
    return CATALOG.get(name)


def names():
    return sorted(CATALOG)
