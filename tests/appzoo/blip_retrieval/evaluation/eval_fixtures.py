"""Helpers of the evaluation and predict tests: real JPEG galleries with flickr-format annotations, tiny models.

A uniquely named module (not conftest) so that test files in several folders can import it."""
import json
import os

import numpy as np
import torch
from PIL import Image

from appzoo.blip_retrieval.data.datasets import RetrievalEvalDataset
from appzoo.blip_retrieval.data.transforms import create_transform
from appzoo.blip_retrieval.model.blip_retrieval import BlipRetrieval
from appzoo.blip_retrieval.model.config import create_config
from appzoo.blip_retrieval.model.tokenizer import build_wordpiece_vocab, create_tokenizer

WORDS = ("red green blue dog cat man woman boat lake grass park runs sits walks on the a in near big small "
         "house tree car bird fence beach window book sofa child plays").split()
IMAGE_SIZE = 32


def write_gallery(root, num_images, captions_per_image=(1, 5), seed=0):
    """num_images real JPEGs of random blocks and an annotation file; returns the annotation path."""
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    entries = []
    for i in range(num_images):
        pixels = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8).repeat(10, 0).repeat(10, 1)
        name = f"img_{i:04d}.jpg"
        Image.fromarray(pixels).save(os.path.join(root, "images", name), format="JPEG", quality=90)
        n = int(rng.integers(captions_per_image[0], captions_per_image[1] + 1))
        caps = [" ".join(rng.choice(WORDS, size=int(rng.integers(3, 9)))) for _ in range(n)]
        entries.append({"image": name, "caption": caps})
    ann = os.path.join(root, "ann.json")
    with open(ann, "w", encoding="utf-8") as handle:
        json.dump(entries, handle)
    return ann


def make_dataset(root, num_images, seed=0, image_size=IMAGE_SIZE):
    ann = write_gallery(root, num_images, seed=seed)
    return RetrievalEvalDataset(ann, os.path.join(root, "images"), create_transform(image_size, train=False))


def make_tokenizer(folder):
    return create_tokenizer(build_wordpiece_vocab([" ".join(WORDS)] * 3, os.path.join(folder, "vocab.txt"),
                                                  vocab_size=120))


def make_model(tokenizer, seed=0, vit="tiny", image_size=IMAGE_SIZE):
    torch.manual_seed(seed)
    config = create_config(vit, image_size, vocab_size=len(tokenizer), queue_size=8)
    return BlipRetrieval(config, tokenizer).eval()
