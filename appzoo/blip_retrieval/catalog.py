"""BLIP's weights in the modelzoo catalog (registered with easyretrieval.modelzoo when the app is imported).

Each entry says what it is in its `details`: `vit` (model size), `image_size` it was trained at, `embed_dim`
of its ITC features and what it was fine-tuned on ('-': pre-trained only). `pretrained=NAME` takes vit from
it, and image_size from a fine-tuned one (model/sources.py).
"""
from easyretrieval.modelzoo.catalog import MODELZOO, ModelEntry, register, register_host

SALESFORCE = "salesforce"
SALESFORCE_URL_ENV = "EASYRETRIEVAL_SALESFORCE_URL"
DEFAULT_SALESFORCE_URL = "https://storage.googleapis.com/sfr-vision-language-research/BLIP/models/"
PRETRAINED_ONLY = "-"


def _blip(name, path, host, vit, finetuned_on, approx_size, description):
    # Official configs: pre-training at 224 px (configs/pretrain.yaml), retrieval fine-tuning at 384 px
    # (configs/retrieval_{coco,flickr}.yaml); embed_dim 256 (models/blip_retrieval.py).
    details = (("vit", vit), ("image_size", 384 if finetuned_on else 224), ("embed_dim", 256),
               ("finetuned_on", finetuned_on or PRETRAINED_ONLY))
    return ModelEntry(name, path, host, "checkpoint", approx_size, description, details=details)


_PAI = "alibaba-pai/blip/pretrained/"
ENTRIES = (
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
)

register_host(SALESFORCE, SALESFORCE_URL_ENV, DEFAULT_SALESFORCE_URL)
register(*ENTRIES)
