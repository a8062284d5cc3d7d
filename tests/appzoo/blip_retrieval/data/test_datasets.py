import os

import pytest
import torch

from appzoo.blip_retrieval.data.datasets import RetrievalEvalDataset, RetrievalTrainDataset, expand_train_entries
from appzoo.blip_retrieval.data.transforms import create_transform
from easyretrieval.errors import UserError

from data_helpers import write_json

T = create_transform(16, train=False)


def test_official_train_format(tmp_path, image_root):
    ann = write_json(str(tmp_path / "train.json"), [
        {"image": "a.jpg", "caption": "A red Square!", "image_id": "x1"},
        {"image": "sub/c.jpg", "caption": "blue (thing)", "image_id": "x3"},
        {"image": "a.jpg", "caption": "Another: red one.", "image_id": "x1"},
    ])
    ds = RetrievalTrainDataset([ann], image_root, T)
    assert len(ds) == 3 and ds.img_ids == {"x1": 0, "x3": 1}
    image, caption, idx = ds[2]
    assert image.shape == (3, 16, 16) and caption == "another red one" and idx == 0
    assert ds[1][1:] == ("blue thing", 1)


def test_list_caption_train_format_one_sample_per_caption(tmp_path, image_root):
    ann = write_json(str(tmp_path / "train.json"), [
        {"image": "b.jpg", "caption": ["green one", "a GREEN two"]},
        {"image": "sub/d.jpg", "caption": ["yellow"], "image_id": 7},
    ])
    ds = RetrievalTrainDataset(ann, image_root, T, max_words=2)
    assert [ds[i][1:] for i in range(3)] == [("green one", 0), ("a green", 0), ("yellow", 1)]
    assert ds.img_ids == {"b.jpg": 0, 7: 1}  # image_id derived from the image path when absent


def test_several_train_files_are_concatenated(tmp_path, image_root):
    a = write_json(str(tmp_path / "a.json"), [{"image": "a.jpg", "caption": "one", "image_id": 1}])
    b = write_json(str(tmp_path / "b.json"), [{"image": "b.jpg", "caption": "two", "image_id": 2}])
    assert [x[1:] for x in RetrievalTrainDataset([a, b], image_root, T)] == [("one", 0), ("two", 1)]


def test_expand_train_entries_keeps_order():
    out = expand_train_entries([{"image": "i", "caption": ["x", "y"]}, {"image": "j", "caption": "z", "image_id": 3}])
    assert out == [{"image": "i", "caption": "x", "image_id": "i"}, {"image": "i", "caption": "y", "image_id": "i"},
                   {"image": "j", "caption": "z", "image_id": 3}]


def test_eval_maps_as_official(tmp_path, image_root):
    ann = write_json(str(tmp_path / "test.json"), [
        {"image": "a.jpg", "caption": ["Red.", "RED square", "crimson"]},
        {"image": "sub/c.jpg", "caption": ["blue"]},
        {"image": "b.jpg", "caption": ["green!", "lime"]},
    ])
    ds = RetrievalEvalDataset(ann, image_root, T)
    assert ds.image == ["a.jpg", "sub/c.jpg", "b.jpg"]
    assert ds.text == ["red", "red square", "crimson", "blue", "green", "lime"]
    assert ds.img2txt == {0: [0, 1, 2], 1: [3], 2: [4, 5]}
    assert ds.txt2img == {0: 0, 1: 0, 2: 0, 3: 1, 4: 2, 5: 2}
    image, index = ds[1]
    assert index == 1 and image.shape == (3, 16, 16)
    assert image[2].mean() > image[0].mean()  # the blue image


def _corrupt(image_root):
    path = os.path.join(image_root, "b.jpg")
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])  # truncated JPEG
    return path


def test_bad_image_fails_with_its_path_by_default(tmp_path, image_root):
    bad = _corrupt(image_root)
    ann = write_json(str(tmp_path / "t.json"), [{"image": "b.jpg", "caption": "x", "image_id": 1}])
    with pytest.raises(UserError, match="cannot read image") as e:
        RetrievalTrainDataset(ann, image_root, T)[0]
    assert bad in str(e.value) and "skip_bad_images" in str(e.value) and "\n" not in str(e.value)


def test_skip_bad_images_substitutes_next_train_sample_and_counts(tmp_path, image_root):
    _corrupt(image_root)
    os.remove(os.path.join(image_root, "sub/c.jpg"))  # a missing file is a bad image too
    ann = write_json(str(tmp_path / "t.json"), [
        {"image": "b.jpg", "caption": "bad", "image_id": 1},
        {"image": "sub/c.jpg", "caption": "gone", "image_id": 2},
        {"image": "a.jpg", "caption": "good", "image_id": 3},
    ])
    ds = RetrievalTrainDataset(ann, image_root, T, skip_bad_images=True)
    sample, skipped = ds.get_with_skips(0)
    assert sample[1:] == ("good", 2) and skipped == 1
    assert ds[1][1] == "good" and ds.skipped.count == 1


def test_skip_bad_images_drops_eval_image(tmp_path, image_root):
    _corrupt(image_root)
    ann = write_json(str(tmp_path / "t.json"), [{"image": "a.jpg", "caption": ["x"]}, {"image": "b.jpg", "caption": ["y"]}])
    ds = RetrievalEvalDataset(ann, image_root, T, skip_bad_images=True)
    assert ds.get_with_skips(1) == (None, 1)
    assert ds.get_with_skips(0)[1] == 0 and isinstance(ds.get_with_skips(0)[0][0], torch.Tensor)


def test_all_bad_train_images_give_up_with_a_user_error(tmp_path, image_root):
    ann = write_json(str(tmp_path / "t.json"), [{"image": "missing.jpg", "caption": "x", "image_id": 1}])
    with pytest.raises(UserError, match="bad images in a row"):
        RetrievalTrainDataset(ann, image_root, T, skip_bad_images=True)[0]


def _remove_images(image_root):
    for name in ("a.jpg", "b.jpg", "sub/c.jpg", "sub/d.jpg"):
        os.remove(os.path.join(image_root, name))


def test_cache_images_reads_each_file_once_and_gives_the_same_tensors(tmp_path, image_root):
    """cache_images: after one pass the files may go (nothing is read again); every tensor equals the uncached
    one, train and eval, and a caller editing its tensor leaves the cache alone."""
    train_ann = write_json(str(tmp_path / "train.json"), [
        {"image": "a.jpg", "caption": "one", "image_id": 1}, {"image": "sub/c.jpg", "caption": "two", "image_id": 2},
        {"image": "a.jpg", "caption": "three", "image_id": 1}])
    eval_ann = write_json(str(tmp_path / "eval.json"), [{"image": "b.jpg", "caption": ["x"]},
                                                        {"image": "sub/d.jpg", "caption": ["y"]}])
    plain = [RetrievalTrainDataset(train_ann, image_root, T), RetrievalEvalDataset(eval_ann, image_root, T)]
    cached = [RetrievalTrainDataset(train_ann, image_root, T, cache_images=True),
              RetrievalEvalDataset(eval_ann, image_root, T, cache_images=True)]
    expected = [[ds[i][0] for i in range(len(ds))] for ds in plain]
    for ds in cached:
        for i in range(len(ds)):
            ds[i][0].zero_()  # the caller's copy
    _remove_images(image_root)
    for ds, want in zip(cached, expected):
        assert [torch.equal(ds[i][0], want[i]) for i in range(len(ds))] == [True] * len(ds)
    with pytest.raises(UserError, match="cannot read image"):
        plain[0][0]  # without the cache the file is read again


def test_cache_images_with_a_random_transform_keeps_the_image_and_augments_afresh(tmp_path, image_root):
    """A random train transform (train_augment=light) still draws anew at every read of a cached image."""
    from PIL import Image

    Image.new("RGB", (64, 64), (255, 255, 255)).save(os.path.join(image_root, "grad.png"))
    with Image.open(os.path.join(image_root, "grad.png")) as im:  # a picture that crops change
        im = im.copy()
    for x in range(64):
        for y in range(64):
            im.putpixel((x, y), (4 * x, 4 * y, 128))
    im.save(os.path.join(image_root, "grad.png"))
    ann = write_json(str(tmp_path / "train.json"), [{"image": "grad.png", "caption": "g", "image_id": 1}])
    ds = RetrievalTrainDataset(ann, image_root, create_transform(16, train=True, augment="light"), cache_images=True)
    torch.manual_seed(0)
    first = ds[0][0]
    os.remove(os.path.join(image_root, "grad.png"))
    draws = [ds[0][0] for _ in range(4)]  # from the cached image: no file any more
    assert not all(torch.equal(first, d) for d in draws)
    assert isinstance(next(iter(ds.cache.values())), Image.Image)
