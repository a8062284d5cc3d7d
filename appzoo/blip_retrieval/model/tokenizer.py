"""BLIP's tokenizer (bert-base-uncased WordPiece + [DEC] bos + [ENC]) and official caption normalisation."""
import os
import re

from easyretrieval.errors import UserError
from easyretrieval.text_input import decode_text, split_lines

DEC_TOKEN = "[DEC]"
ENC_TOKEN = "[ENC]"
BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def pre_caption(caption, max_words=30):
    """Official BLIP data/utils.py pre_caption: lower-case, drop .!"()*#:;~, squeeze spaces, cut to max_words."""
    caption = re.sub(r"([.!\"()*#:;~])", " ", caption.lower())
    caption = re.sub(r"\s{2,}", " ", caption)
    caption = caption.rstrip("\n")
    caption = caption.strip(" ")
    words = caption.split(" ")
    if len(words) > max_words:
        caption = " ".join(words[:max_words])
    return caption


def _vocab_file(vocab_path):
    path = os.fspath(vocab_path)
    if os.path.isdir(path):
        path = os.path.join(path, "vocab.txt")
    if not os.path.isfile(path):
        raise UserError(f"tokenizer vocab not found: {path} (give a vocab.txt file or a folder holding one)")
    return path


def read_vocab(vocab_path):
    """token -> id of a WordPiece vocab.txt (one token a line, id = line number), or of the WordPiece
    model in a transformers tokenizer.json when a folder holds no vocab.txt."""
    path = os.fspath(vocab_path)
    if os.path.isdir(path) and not os.path.isfile(os.path.join(path, "vocab.txt")) and \
            os.path.isfile(os.path.join(path, "tokenizer.json")):
        from appzoo.blip_retrieval.model.hf_folder import hf_vocab

        vocab = hf_vocab(path)
        if not isinstance(vocab, dict):
            raise UserError(f"{path}/tokenizer.json holds no WordPiece vocab")
    else:
        vocab = {}
        vocab_file = _vocab_file(vocab_path)
        with open(vocab_file, "rb") as handle:
            text = decode_text(handle.read(), vocab_file, "tokenizer vocab")
        for index, token in enumerate(split_lines(text)):
            if token in vocab:
                raise UserError(f"vocab {vocab_path}: token {token!r} appears twice (lines {vocab[token] + 1}, "
                                f"{index + 1})")
            vocab[token] = index
    missing = [t for t in BERT_SPECIALS if t not in vocab]
    if missing:
        raise UserError(f"vocab {vocab_path} lacks the BERT special tokens {missing}")
    return vocab


def create_tokenizer(vocab):
    """BLIP's init_tokenizer on a local vocab: BertTokenizer + bos [DEC] + additional special [ENC].

    vocab: a vocab.txt file, a folder holding one, or a token -> id dict. With bert-base-uncased's
    30522-token vocab, [DEC] is 30522 and [ENC] is 30523 (len 30524). The result has `enc_token_id`,
    like the official tokenizer.
    """
    from transformers import BertTokenizer

    tokenizer = BertTokenizer(vocab=vocab if isinstance(vocab, dict) else read_vocab(vocab), do_lower_case=True)
    tokenizer.add_special_tokens({"bos_token": DEC_TOKEN})
    tokenizer.add_special_tokens({"additional_special_tokens": [ENC_TOKEN]})
    tokenizer.enc_token_id = tokenizer.convert_tokens_to_ids(ENC_TOKEN)
    return tokenizer


def build_wordpiece_vocab(captions, out_path, vocab_size=8000, min_frequency=1, max_words=30):
    """Build a lower-cased WordPiece vocab from `captions` (after pre_caption) and write it as vocab.txt.

    For from-scratch runs (tiny/demo configs) where no pre-trained vocab is wanted. Deterministic (the same
    captions give the same file, so runs are reproducible): the BERT specials ([PAD] = 0), every character
    seen and its `##` continuation (any word can be spelled), then whole words by frequency, ties by
    spelling, up to `vocab_size` tokens. Returns the path written (out_path, or out_path/vocab.txt when
    it is a folder).
    """
    from collections import Counter

    from tokenizers import normalizers, pre_tokenizers

    texts = [pre_caption(c, max_words) for c in captions]
    if not texts:
        raise UserError("cannot build a vocab from zero captions")
    normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=None, clean_text=True)
    split = pre_tokenizers.BertPreTokenizer()  # the same word split as BertTokenizer's basic tokenizer
    counts = Counter(word for text in texts for word, _ in split.pre_tokenize_str(normalizer.normalize_str(text)))
    chars = sorted({ch for word in counts for ch in word})
    tokens = list(BERT_SPECIALS) + chars + ["##" + ch for ch in chars]
    known = set(tokens)
    words = sorted((w for w, n in counts.items() if n >= min_frequency and w not in known), key=lambda w: (-counts[w], w))
    tokens += words[: max(0, vocab_size - len(tokens))]
    path = os.fspath(out_path)
    if os.path.isdir(path) or path.endswith(os.sep):
        os.makedirs(path, exist_ok=True)
        path = os.path.join(path, "vocab.txt")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write("\n".join(tokens) + "\n")
    os.replace(tmp, path)
    return path
