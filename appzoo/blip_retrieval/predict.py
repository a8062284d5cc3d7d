"""Predict mode: rank a gallery for each query with the official two-stage scores, write JSONL.

text -> image: gallery = images (a folder, an image file, or a JSON annotation file whose entries name
"image"), queries = a text file (one query a line). image -> text: gallery = a text file, queries =
images. ITC top-max(k_test, top_k) candidates, re-ranked by ITM (score = ITM positive logit + ITC
similarity, as the evaluator); `predictions.jsonl` in output_dir holds one line per query:
{"query_id", "query", "ranked_ids", "scores"}. With save_embeddings=True the normalised ITC embeddings
are written as gallery_embeddings.npy / query_embeddings.npy (float32 rows) plus *_ids.json, for a
vector index. Several ranks split the images (each encodes and re-ranks its share); rank 0 writes.
"""
import json
import os
from dataclasses import dataclass

import numpy as np
from torch.utils.data import Dataset

from appzoo.blip_retrieval.predict_inputs import Items, read_inputs, read_items  # noqa: F401 - re-exported
from easyretrieval.errors import UserError
from easyretrieval.log import get_logger

PREDICTIONS_FILE = "predictions.jsonl"


class ImageFiles(Dataset):
    """Images by path -> (transformed image, index); the item protocol of the eval image loader."""

    def __init__(self, paths, transform):
        self.paths, self.transform = list(paths), transform

    def __len__(self):
        return len(self.paths)

    def get_with_skips(self, index):
        from appzoo.blip_retrieval.data.datasets import read_image

        try:
            image = read_image(self.paths[index])
        except Exception as e:  # noqa: BLE001 - any read/decode failure is reported the same way
            raise UserError(f"cannot read image '{self.paths[index]}': {type(e).__name__}: {e}") from None
        return (self.transform(image), index), 0

    def __getitem__(self, index):
        return self.get_with_skips(index)[0]


@dataclass
class Rankings:
    text_to_image: bool
    index: np.ndarray        # [num_queries, top_k] gallery indices, best first (-1 = none)
    score: np.ndarray        # [num_queries, top_k]
    image_feat: np.ndarray   # [num_images, D] ITC embeddings
    text_feat: np.ndarray    # [num_texts, D]


def rank(model, evaluator, images: Items, texts: Items, text_to_image: bool, top_k: int, max_words=30) -> Rankings:
    """Two-stage rankings of the gallery for every query (all ranks call it together).

    Images load as the evaluator loads them (its num_workers and worker_start_method). Texts are normalised
    as the training captions were (official pre_caption, max_words)."""
    from appzoo.blip_retrieval.data import create_transform
    from appzoo.blip_retrieval.model.tokenizer import pre_caption

    device = evaluator.resolve_device(model)
    dataset = ImageFiles(images.values, create_transform(model.config.vision.image_size, train=False))
    loader = evaluator.image_loader(dataset)
    k = max(evaluator.k_test, top_k)
    with evaluator.inference(model, device):
        scored = evaluator.two_stage(model, [pre_caption(t, max_words) for t in texts.values], loader, len(dataset), device,
                                     k_i2t=0 if text_to_image else k, k_t2i=k if text_to_image else 0)
    top = scored.t2i if text_to_image else scored.i2t
    return Rankings(text_to_image, top.index[:, :top_k], top.score[:, :top_k], scored.image_feat.numpy(),
                    scored.text_feat.numpy())


def _write_atomic(path, write):
    tmp = f"{path}.tmp.{os.getpid()}"
    write(tmp)
    os.replace(tmp, path)


def _npy_writer(array):
    def write(tmp):
        with open(tmp, "wb") as handle:
            np.save(handle, array.astype(np.float32))
    return write


def _json_writer(obj):
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(obj, handle)
    return write


def write_outputs(rankings: Rankings, gallery: Items, queries: Items, output_dir: str, save_embeddings: bool):
    """predictions.jsonl (and the embeddings); returns the JSONL path."""
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, PREDICTIONS_FILE)

    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as handle:
            for q, (qid, query) in enumerate(zip(queries.ids, queries.values)):
                keep = rankings.index[q] >= 0
                line = {"query_id": qid, "query": query if queries.kind == "texts" else qid,
                        "ranked_ids": [gallery.ids[i] for i in rankings.index[q][keep]],
                        "scores": [round(float(s), 6) for s in rankings.score[q][keep]]}
                handle.write(json.dumps(line, ensure_ascii=False) + "\n")

    _write_atomic(path, write)
    if save_embeddings:
        image_side, text_side = rankings.image_feat, rankings.text_feat
        gallery_feat, query_feat = (image_side, text_side) if rankings.text_to_image else (text_side, image_side)
        for name, feat, items in (("gallery", gallery_feat, gallery), ("query", query_feat, queries)):
            _write_atomic(os.path.join(output_dir, f"{name}_embeddings.npy"), _npy_writer(feat))
            _write_atomic(os.path.join(output_dir, f"{name}_ids.json"), _json_writer(items.ids))
    return path


def run_predict(config, run) -> str:
    """The app's predict mode: returns the path of predictions.jsonl (on every rank)."""
    from appzoo.blip_retrieval.components import create_app_model, create_app_tokenizer, create_evaluator
    from easyretrieval.distributed import barrier, device_for, init_distributed

    gallery, queries = read_inputs(config)
    info = run.dist
    init_distributed(info, config.collective_timeout)
    device = device_for(info)
    tokenizer = create_app_tokenizer(config, run.output_dir, info,
                                     search_dirs=[run.given_output_dir] if run.given_output_dir else [])
    model = create_app_model(config, tokenizer, verbose=info.is_main).to(device)
    evaluator = create_evaluator(config, info, device)
    text_to_image = gallery.kind == "images"
    images, texts = (gallery, queries) if text_to_image else (queries, gallery)
    rankings = rank(model, evaluator, images, texts, text_to_image, config.top_k, max_words=config.max_words)
    path = os.path.join(run.output_dir, PREDICTIONS_FILE)
    if info.is_main:
        path = write_outputs(rankings, gallery, queries, run.output_dir, config.save_embeddings)
        get_logger().info("%d queries ranked against %d %s: %s", len(queries.ids), len(gallery.ids), gallery.kind, path)
    barrier()
    return path
