"""The parameters of the blip_retrieval app: names and defaults follow the official BLIP / EasyNLP example.

Defaults that differ by model size are derived from `vit`, those that differ between the official Flickr and
COCO configs from `dataset`, unless the user sets them.
"""
from easyretrieval.errors import UserError
from easyretrieval.parameters import Param, ParamSchema

from appzoo.blip_retrieval.model.config import VIT_STEMS

VITS = ("base", "large", "small", "tiny")  # small and tiny are for tests and the demo
DATASETS = ("flickr", "coco", "custom", "custom_oss", "synthetic")


def _by_vit(base, large, small, tiny):
    return ("vit", {"base": base, "large": large, "small": small, "tiny": tiny})


def _by_dataset(coco, other):
    """Official configs/retrieval_coco.yaml vs retrieval_flickr.yaml (custom data follows Flickr, as EasyNLP)."""
    return ("dataset", {name: (coco if name == "coco" else other) for name in DATASETS})


SCHEMA = ParamSchema([
    # data
    Param("dataset", str, "flickr", "dataset name", choices=DATASETS),
    Param("image_root", str, "", "folder (or oss://bucket/prefix) that image paths are relative to"),
    Param("ann_root", str, "", "folder (or oss://) holding the annotation files"),
    Param("train_file", str, "", "train annotation file(s) in ann_root, comma-separated; default per dataset"),
    Param("val_file", str, "", "validation annotation file in ann_root; default per dataset"),
    Param("test_file", str, "", "test annotation file in ann_root; default per dataset"),
    Param("image_size", int, 384, "input resolution (a multiple of patch_size)", min=1),
    Param("train_augment", str, "official", "train image augmentation: official (RandomResizedCrop 0.5-1, flip, "
          "RandomAugment), light (RandomResizedCrop 0.8-1 only), none (resize only)",
          choices=("official", "light", "none")),
    Param("max_words", int, 30, "captions are cut to this many words, as official pre_caption", min=1),
    Param("skip_bad_images", bool, False, "skip and count unreadable images instead of failing"),
    Param("verify_images", bool, False, "before starting, fully decode every image (slower; finds corrupt files early)"),
    Param("cache_images", bool, False, "keep each image in memory after its first read: the resized tensor when the "
          "transform is deterministic (eval, train_augment=none), else the decoded image; per process (each loader "
          "worker its own; kept across epochs with num_workers=0 or persistent_workers); for small datasets"),
    Param("num_workers", int, 4, "data-loader worker processes per rank", min=0),
    Param("pin_memory", bool, True, "pin host memory for faster GPU copies"),
    Param("persistent_workers", bool, True, "keep loader workers alive between epochs"),
    Param("worker_start_method", str, "forkserver", "how loader workers start: forkserver/spawn from a clean "
          "process; fork copies this multi-threaded one (faster, but the child can deadlock)",
          choices=("forkserver", "spawn", "fork")),
    Param("synthetic_dir", str, "", "cache dir of the synthetic dataset (default: under the cache dir)"),
    Param("synthetic_seed", int, 0, "seed of the synthetic dataset"),
    # model
    Param("vit", str, "base", "model size: base (ViT-B/16), large (ViT-L/16); small/tiny for tests", choices=VITS),
    Param("patch_size", int, 16, "ViT patch side in pixels (official: 16; a smaller patch gives a small image more "
          "tokens, for models trained from scratch; pretrained checkpoints need their own)", min=1),
    Param("vit_stem", str, "patch", "how the ViT turns pixels into tokens: patch (official linear patch embedding) "
          "or conv (a stride-2 3x3 convolution stack, Xiao et al. 2021, for models trained from scratch)",
          choices=VIT_STEMS),
    Param("pretrained", str, "", "weights: a save_pretrained folder (e.g. a run's best/), an official .pth or "
          ".safetensors file, a modelzoo name, an http(s)/oss:// URL, an HF BlipForImageTextRetrieval folder or "
          "hub id (org/name); '' = scratch. A folder, hub id or modelzoo entry sets the sizes it describes "
          "(vit, image_size, ...) unless you set them"),
    Param("resize_pretrained", bool, False, "allow image_size to differ from the size pretrained= describes "
          "(its position embeddings are interpolated, bicubic, as official)"),
    Param("tokenizer", str, "bert-base-uncased", "vocab: vocab.txt or folder, modelzoo name, URL or HF hub id; "
          "'build' = from captions; default: pretrained='s own vocab, else bert-base-uncased from the HF hub"),
    Param("vit_grad_ckpt", bool, None, "gradient checkpointing of the last vit_ckpt_layer ViT blocks",
          default_from=_by_vit(True, True, False, False)),
    Param("vit_ckpt_layer", int, None, "how many of the last ViT blocks to checkpoint", min=0,
          default_from=_by_vit(4, 10, 0, 0)),
    Param("text_grad_ckpt", bool, False, "gradient checkpointing of the text encoder layers"),
    Param("text_init_std", float, 0.02, "std of the text encoder's normal weight init when training from scratch "
          "(official BERT: 0.02, under which every caption starts with the same ITC feature, cosine > 0.9999, "
          "at the demo's width; a pretrained= checkpoint overwrites it)", min=0.0),
    Param("text_dropout", float, 0.1, "dropout of the text encoder's hidden states and attention (official MED/BERT: "
          "0.1; a model trained from scratch on a small dataset learns faster without it)", min=0.0, max=1.0),
    Param("vit_init_std", float, 0.02, "std of the ViT blocks' truncated-normal Linear init when training from "
          "scratch (timm and official: 0.02; a pretrained= checkpoint overwrites it)", min=0.0),
    Param("queue_size", int, 57600, "size of the momentum feature queues", min=1),
    Param("alpha", float, 0.4, "weight of the momentum-distilled ITC targets", min=0.0, max=1.0),
    Param("momentum", float, 0.995, "EMA momentum of the momentum encoders", min=0.0, max=1.0),
    Param("negative_all_rank", bool, None, "sample ITM hard negatives from all ranks",
          default_from=_by_dataset(True, False)),
    # optimisation
    Param("batch_size_train", int, None, "micro batch per rank", min=1, default_from=_by_vit(32, 16, 32, 32)),
    Param("batch_size_test", int, None, "evaluation batch per rank", min=1, default_from=_by_vit(64, 32, 64, 64)),
    Param("init_lr", float, None, "peak learning rate (cosine to min_lr)", min=0.0,
          default_from=_by_vit(1e-5, 5e-6, 1e-4, 1e-4)),
    Param("min_lr", float, 0.0, "final learning rate", min=0.0),
    Param("warmup_steps", int, 0, "linear LR warm-up over the first optimizer steps, from warmup_lr to init_lr "
          "(official pre-training; 0 = none, as official retrieval fine-tuning)", min=0),
    Param("warmup_lr", float, 1e-6, "learning rate of the first warm-up step", min=0.0),
    Param("weight_decay", float, 0.05, "AdamW weight decay", min=0.0),
    Param("temp_lr_scale", float, 1.0, "LR of the ITC temperature `temp` as a multiple of the schedule's LR "
          "(official: 1; AdamW moves temp by about the LR each step, so a from-scratch LR swings it)", min=0.0),
    Param("max_epoch", int, 6, "epochs", min=1),
    Param("gradient_accumulation_steps", int, 1, "micro batches per optimizer step", min=1),
    Param("gradient_clipping", float, 0.0, "max gradient norm (0 = off, as official)", min=0.0),
    Param("precision", str, "", "override the DeepSpeed config's precision: fp32, bf16 or fp16 ('' = as config)",
          choices=("", "fp32", "bf16", "fp16")),
    Param("zero_stage", int, None, "override the DeepSpeed config's ZeRO stage", nullable=True, min=0, max=3),
    # checkpoints
    Param("save_steps", int, 0, "also checkpoint every this many optimizer steps (0 = per epoch only)", min=0),
    Param("keep_last", int, 2, "how many resumable checkpoints to keep", min=1),
    Param("resume", str, "", "'' (start fresh), 'auto' (latest in output_dir) or a checkpoint dir"),
    Param("log_steps", int, 50, "log every this many steps", min=1),
    # evaluation
    Param("k_test", int, None, "candidates re-ranked by ITM per query", min=1, default_from=_by_dataset(256, 128)),
    Param("eval_precision", str, "fp32", "compute dtype of evaluation (bf16/fp16 only on GPU)",
          choices=("fp32", "bf16", "fp16")),
    Param("eval_splits", str, "val,test", "splits evaluated after each epoch and in evaluate mode"),
    Param("collective_timeout", float, 1800.0, "seconds before a collective is declared hung", min=1.0),
    # predict
    Param("gallery", str, "", "predict: image folder or annotation file of the gallery"),
    Param("queries", str, "", "predict: text file (one query a line) or image folder/annotation file"),
    Param("top_k", int, 10, "predict: results per query", min=1),
    Param("save_embeddings", bool, False, "predict: also write gallery/query embeddings (.npy + ids)"),
    # pictures
    Param("report", str, "", "evaluate/predict: also write this HTML page (.html) of the results with thumbnails "
          "(evaluate: the R@K table and the queries that missed R@1, worst first, ground truth marked)"),
])


def eval_splits(config):
    """The splits `eval_splits` names, in order (UserError for another name)."""
    splits = [s.strip() for s in config.eval_splits.split(",") if s.strip()]
    bad = [s for s in splits if s not in ("val", "test")]
    if bad:
        raise UserError(f"eval_splits: {', '.join(bad)} not one of val, test")
    return splits


def select_split(splits):
    """The split whose r_mean selects the best epoch: val when evaluated, else the first one."""
    return "val" if "val" in splits else (splits[0] if splits else "val")
