"""Retrieval datasets as official BLIP (flickr30k_train / flickr30k_retrieval_eval), reading through fileio.

Train entries: `{"image", "caption": str, "image_id"}` (official) or `{"image", "caption": [str, ...]}`
(one sample per caption; image_id = the image path when absent). Eval entries: `{"image", "caption": [...]}`.

Bad images: by default the first unreadable image raises UserError naming its path. With
`skip_bad_images=True` a train sample whose image is bad is replaced by the next good sample (batch shapes
and step counts stay equal on every rank) and an eval image is dropped (its index is missing from the
batch); each skip is counted. `get_with_skips(i) -> (sample or None, 1 if entry i was skipped else 0)`
carries the count out of DataLoader workers; the loaders in loaders.py sum it in the main process.

`cache_images=True` keeps each image in this process's memory after its first read (a loader worker keeps
its own copy): the transform's output when the transform draws no random numbers (test resize,
train_augment=none), else the decoded image, which is then transformed afresh at every read.
"""
import json
from dataclasses import dataclass

from torch.utils.data import Dataset

from easyretrieval import fileio
from appzoo.blip_retrieval.data.image_decode import decode_rgb
from appzoo.blip_retrieval.model.tokenizer import pre_caption
from easyretrieval.errors import UserError
from easyretrieval.text_input import decode_text

MAX_CONSECUTIVE_BAD = 100  # a train sample gives up after this many bad images in a row


def load_annotation(path):
    """The JSON list in `path`; UserError naming the file when it is missing or malformed."""
    try:
        raw = fileio.read_bytes(path)
    except FileNotFoundError:
        raise UserError(f"annotation file '{path}' not found") from None
    except OSError as e:
        raise UserError(f"cannot read annotation file '{path}': {e}") from None
    text = decode_text(raw, path, "annotation file")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"annotation file '{path}' is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    if not isinstance(data, list):
        raise UserError(f"annotation file '{path}' must hold a JSON list of entries, got {type(data).__name__}")
    return data


def annotation_image_names(path):
    """The distinct image paths an annotation file names (each entry's "image", or the entry itself when it is
    a string), in first-seen order. UserError naming the file and entry when an entry has none."""
    names, seen = [], set()
    for n, entry in enumerate(load_annotation(path)):
        name = entry.get("image") if isinstance(entry, dict) else entry
        if not isinstance(name, str) or not name:
            raise UserError(f"annotation file '{path}': entry {n} has no \"image\" path")
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def expand_train_entries(entries):
    """Official train entries: one `{"image", "caption": str, "image_id"}` per caption, in file order."""
    out = []
    for ann in entries:
        image_id = ann.get("image_id", ann["image"])
        captions = ann["caption"] if isinstance(ann["caption"], list) else [ann["caption"]]
        out.extend({"image": ann["image"], "caption": c, "image_id": image_id} for c in captions)
    return out


def read_image(path):
    """RGB PIL image from `path` (local or remote), decoded in full (image_decode.to_rgb: official
    convert('RGB') where it is right); any failure raises (OSError, ValueError, ...)."""
    return decode_rgb(fileio.read_bytes(path))


@dataclass
class _SkipCounter:
    """Skips seen by this process (exact only without loader workers; loaders count across workers)."""

    count: int = 0


class _ImageReading:
    """Shared: read image i with the bad-image policy and, when `cache` is a dict, the image cache."""

    image_root: str
    skip_bad_images: bool
    cache = None  # with cache_images: rel_path -> the transform's output (deterministic transform) or the image

    def _image_input(self, rel_path):
        """transform(image at rel_path), or None for a bad image under skip_bad_images. With the cache: a
        deterministic transform's output is cached, otherwise the decoded image (and transformed each time)."""
        if self.cache is None:
            image = self._try_image(rel_path)
            return None if image is None else self.transform(image)
        cached = self.cache.get(rel_path)
        keep_output = getattr(self.transform, "deterministic", False)
        if cached is None:
            image = self._try_image(rel_path)
            if image is None:
                return None
            cached = self.transform(image) if keep_output else image
            self.cache[rel_path] = cached
        return cached.clone() if keep_output else self.transform(cached.copy())  # copies: callers may edit theirs

    def _try_image(self, rel_path):
        path = fileio.join(self.image_root, rel_path)
        try:
            return read_image(path)
        except Exception as e:  # noqa: BLE001 - every decode/read failure is reported the same way
            if not self.skip_bad_images:
                raise UserError(
                    f"cannot read image '{path}': {type(e).__name__}: {e} (fix or remove it, or set skip_bad_images=True)"
                ) from None
            return None


class RetrievalTrainDataset(_ImageReading, Dataset):
    """(image_tensor, pre_caption'd caption, img_idx): img_idx numbers image_ids in order of first appearance."""

    def __init__(self, ann_files, image_root, transform, max_words=30, skip_bad_images=False, cache_images=False):
        if isinstance(ann_files, str):
            ann_files = [ann_files]
        self.annotation = []
        for f in ann_files:
            self.annotation += expand_train_entries(load_annotation(f))
        self.transform = transform
        self.image_root = image_root
        self.max_words = max_words
        self.skip_bad_images = skip_bad_images
        self.cache = {} if cache_images else None
        self.skipped = _SkipCounter()
        self.img_ids = {}
        for ann in self.annotation:
            self.img_ids.setdefault(ann["image_id"], len(self.img_ids))

    def __len__(self):
        return len(self.annotation)

    def get_with_skips(self, index):
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        index %= len(self)
        tries = min(MAX_CONSECUTIVE_BAD, len(self))
        for n_bad in range(tries):
            ann = self.annotation[(index + n_bad) % len(self)]
            image = self._image_input(ann["image"])
            if image is not None:
                sample = (image, pre_caption(ann["caption"], self.max_words), self.img_ids[ann["image_id"]])
                return sample, int(n_bad > 0)  # one skipped sample: entry `index` itself
        raise UserError(f"{tries} bad images in a row from train entry {index} under image_root '{self.image_root}'")

    def __getitem__(self, index):
        sample, n_bad = self.get_with_skips(index)
        self.skipped.count += n_bad
        return sample


class RetrievalEvalDataset(_ImageReading, Dataset):
    """Images with their captions: `.text`, `.image`, `.txt2img`, `.img2txt`; item i -> (image_tensor, i)."""

    def __init__(self, ann_file, image_root, transform, max_words=30, skip_bad_images=False, cache_images=False):
        self.annotation = load_annotation(ann_file)
        self.transform = transform
        self.image_root = image_root
        self.skip_bad_images = skip_bad_images
        self.cache = {} if cache_images else None
        self.skipped = _SkipCounter()
        self.text, self.image, self.txt2img, self.img2txt = [], [], {}, {}
        txt_id = 0
        for img_id, ann in enumerate(self.annotation):
            self.image.append(ann["image"])
            self.img2txt[img_id] = []
            for caption in ann["caption"]:
                self.text.append(pre_caption(caption, max_words))
                self.img2txt[img_id].append(txt_id)
                self.txt2img[txt_id] = img_id
                txt_id += 1

    def __len__(self):
        return len(self.annotation)

    def get_with_skips(self, index):
        image = self._image_input(self.annotation[index]["image"])
        if image is None:
            return None, 1
        return (image, index), 0

    def __getitem__(self, index):
        sample, n_bad = self.get_with_skips(index)
        self.skipped.count += n_bad
        return sample  # None for a skipped image; the eval loader drops it
