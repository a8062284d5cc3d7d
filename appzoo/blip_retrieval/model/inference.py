"""Notebook-style inference of BlipRetrieval: ITC embeddings of images and texts, ITM match probabilities.

The same math as evaluation (official salesforce/BLIP models/blip_retrieval.py): images through the test
transform (bicubic resize to image_size, CLIP mean/std), texts through official `pre_caption(max_words)`,
ITC features = L2-normalised projections of the [CLS] token, ITM with [ENC] at position 0.
"""
import contextlib
import os
from typing import Sequence, Union

import torch
import torch.nn.functional as F

ImageInput = Union[Sequence[object], torch.Tensor]  # PIL images / file paths, or a transformed [N,3,H,W] batch


@contextlib.contextmanager
def eval_mode(model):
    """Eval mode and no autograd for the block (the model's mode restored after). A model already in eval mode
    is left alone: switching walks every module (milliseconds a call, most of a short query's time)."""
    was_training = model.training
    switch = any(module.training for module in model.modules())
    if switch:
        model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        if switch:
            model.train(was_training)


class RetrievalInferenceMixin:
    """embed_images / embed_texts / match for BlipRetrieval (needs `config`, `tokenizer` and the encoders)."""

    @property
    def image_transform(self):
        """PIL RGB image -> float32 tensor [3, image_size, image_size]: the official test transform."""
        from appzoo.blip_retrieval.data.transforms import create_transform

        size = self.config.vision.image_size
        cached = self.__dict__.get("_image_transform")
        if cached is None or cached[0] != size:
            cached = (size, create_transform(size, train=False))
            self.__dict__["_image_transform"] = cached
        return cached[1]

    def _device(self):
        return next(self.parameters()).device

    def _pixel_batches(self, images, batch_size):
        """Batches [B, 3, S, S] (on the model's device) of `images`, in order."""
        size = self.config.vision.image_size
        if torch.is_tensor(images):
            if images.dim() != 4 or tuple(images.shape[1:]) != (3, size, size):
                raise ValueError(f"an image tensor must be [N, 3, {size}, {size}] (transformed by "
                                 f"model.image_transform), got {list(images.shape)}")
            for start in range(0, images.shape[0], batch_size):
                yield images[start:start + batch_size].to(self._device())
            return
        self._count(images)
        from PIL import Image

        from appzoo.blip_retrieval.data.datasets import read_image

        for start in range(0, len(images), batch_size):
            batch = []
            for item in images[start:start + batch_size]:
                if isinstance(item, Image.Image):
                    image = item.convert("RGB")
                elif isinstance(item, (str, os.PathLike)):
                    image = read_image(os.fspath(item))
                else:
                    raise TypeError(f"an image must be a PIL image or a file path, got {type(item).__name__}")
                batch.append(self.image_transform(image))
            yield torch.stack(batch).to(self._device())

    @staticmethod
    def _check_texts(texts):
        """len(texts); TypeError unless `texts` is a list of strings."""
        if isinstance(texts, str) or not isinstance(texts, Sequence) or not all(isinstance(t, str) for t in texts):
            raise TypeError("texts must be a list of strings (wrap a single text in a list)")
        return len(texts)

    def _tokens(self, texts):
        """Token ids and mask [M, L] of `texts` after official pre_caption, padded to the longest."""
        from appzoo.blip_retrieval.model.tokenizer import pre_caption

        self._check_texts(texts)
        if self.tokenizer is None:
            raise RuntimeError("this BlipRetrieval has no tokenizer; build it with from_pretrained")
        captions = [pre_caption(t, self.config.max_words) for t in texts]
        out = self.tokenizer(captions, padding="longest", truncation=True, max_length=self.config.max_length,
                             return_tensors="pt")
        return out.input_ids.to(self._device()), out.attention_mask.to(self._device())

    def _image_embeds(self, images, batch_size):
        return torch.cat([self.encode_image(pixels) for pixels in self._pixel_batches(images, batch_size)])

    @staticmethod
    def _count(images):
        """How many images `images` holds; TypeError for inputs that are not a list or a tensor."""
        if torch.is_tensor(images):
            return images.shape[0] if images.dim() > 0 else 0
        if isinstance(images, (str, os.PathLike)) or not isinstance(images, Sequence):
            raise TypeError("images must be a list of PIL images or file paths, or a [N, 3, H, W] tensor "
                            f"(got {type(images).__name__}; wrap a single image in a list)")
        return len(images)

    def embed_images(self, images: ImageInput, batch_size: int = 32) -> torch.Tensor:
        """ITC embeddings of images.

        images: a list of PIL images or file paths (local or oss://), or a [N, 3, image_size, image_size]
        float tensor already transformed by `model.image_transform`.
        Returns a float32 tensor [N, embed_dim] on the model's device; each row has L2 norm 1, so
        `embed_images(a) @ embed_texts(b).T` are cosine similarities in [-1, 1] (the ITC scores before the
        temperature). Raises TypeError for other inputs, ValueError for a tensor of another shape,
        FileNotFoundError / PIL.UnidentifiedImageError for a path that is missing or not an image.
        """
        if self._count(images) == 0:
            return torch.zeros(0, self.config.embed_dim, device=self._device())
        with eval_mode(self):
            feats = [self.image_feat(self.encode_image(pixels)).float()
                     for pixels in self._pixel_batches(images, batch_size)]
        return torch.cat(feats)

    def embed_texts(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        """ITC embeddings of texts: a float32 tensor [M, embed_dim] on the model's device, rows of L2 norm 1.

        Texts are normalised as the training captions were (official pre_caption: lower case, punctuation
        dropped, cut to config.max_words words) and cut to config.max_length tokens. Raises TypeError when
        `texts` is not a list of strings.
        """
        if self._check_texts(texts) == 0:
            return torch.zeros(0, self.config.embed_dim, device=self._device())
        ids, mask = self._tokens(texts)
        feats = []
        with eval_mode(self):
            for start in range(0, ids.shape[0], batch_size):
                rows = slice(start, start + batch_size)
                length = int(mask[rows].sum(dim=1).max())  # padding beyond the batch's longest is never read
                feats.append(self.text_features(ids[rows, :length], mask[rows, :length]).float())
        return torch.cat(feats)

    def match(self, images: ImageInput, texts: Sequence[str], batch_size: int = 256,
              images_per_group: int = 16) -> torch.Tensor:
        """ITM probability that image i matches text j: a float32 tensor [N, M] in [0, 1] on the model's
        device (softmax of the ITM head's two logits, the "match" one).

        images and texts as for `embed_images` / `embed_texts`. Every pair is scored by the cross-encoder;
        each image's cross-attention keys/values are computed once for all texts (as the evaluator does).
        batch_size: pairs per forward; images_per_group: images whose keys/values are held at once.
        """
        num_images = self._count(images)
        if num_images == 0 or self._check_texts(texts) == 0:
            return torch.zeros(num_images, len(texts), device=self._device())
        ids, mask = self._tokens(texts)
        num_texts = ids.shape[0]
        with eval_mode(self):
            embeds = self._image_embeds(images, images_per_group)
            prefix = self.itm_text_prefix(ids, mask)  # the image-free start of each text, computed once
            probs = torch.empty(embeds.shape[0] * num_texts, device=ids.device)
            for g0 in range(0, embeds.shape[0], images_per_group):
                kv = self.cross_kv(embeds[g0:g0 + images_per_group])
                count = kv.num_images * num_texts
                pair_image = torch.arange(kv.num_images).repeat_interleave(num_texts)
                pair_text = torch.arange(num_texts).repeat(kv.num_images)
                for b0 in range(0, count, batch_size):
                    image_rows, text_rows = pair_image[b0:b0 + batch_size], pair_text[b0:b0 + batch_size]
                    rows = text_rows.to(ids.device)
                    logits = self.itm_logits_cached(kv, image_rows, ids[rows], mask[rows], prefix[rows])
                    start = g0 * num_texts + b0
                    probs[start:start + image_rows.numel()] = F.softmax(logits.float(), dim=1)[:, 1]
        return probs.view(-1, num_texts)
