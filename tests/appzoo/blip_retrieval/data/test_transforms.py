import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from appzoo.blip_retrieval.data import randaugment as ra
from appzoo.blip_retrieval.data.transforms import CLIP_MEAN, CLIP_STD, create_transform

LOW = min((0 - m) / s for m, s in zip(CLIP_MEAN, CLIP_STD))
HIGH = max((1 - m) / s for m, s in zip(CLIP_MEAN, CLIP_STD))


def _photo(w=50, h=37, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8))


@pytest.mark.parametrize("train", [True, False])
def test_transform_shape_and_range(train):
    np.random.seed(0)
    torch.manual_seed(0)
    t = create_transform(32, train=train)
    for seed in range(10):
        x = t(_photo(seed=seed))
        assert x.shape == (3, 32, 32) and x.dtype == torch.float32
        assert LOW - 1e-5 <= x.min() and x.max() <= HIGH + 1e-5


def test_test_transform_is_deterministic_and_normalises_with_clip_stats():
    t = create_transform(16, train=False)
    white = Image.new("RGB", (20, 30), (255, 255, 255))
    x = t(white)
    expected = torch.tensor([(1 - m) / s for m, s in zip(CLIP_MEAN, CLIP_STD)])
    assert torch.allclose(x[:, 5, 5], expected, atol=1e-5)
    assert torch.equal(t(_photo()), t(_photo()))


def test_train_transform_uses_official_ops():
    t = create_transform(24, train=True)
    names = [type(s).__name__ for s in t.transforms]
    assert names == ["RandomResizedCrop", "RandomHorizontalFlip", "RandomAugment", "ToTensor", "Normalize"]
    crop, aug = t.transforms[0], t.transforms[2]
    assert crop.scale == (0.5, 1.0) and crop.interpolation.value == "bicubic"
    assert (aug.N, aug.M, aug.isPIL) == (2, 5, True)
    assert aug.augs == ["Identity", "AutoContrast", "Brightness", "Sharpness", "Equalize",
                        "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate"]


def test_random_augment_returns_uint8_array_and_is_seeded_by_numpy():
    aug = ra.RandomAugment(2, 5, isPIL=True)
    img = _photo()
    np.random.seed(3)
    a = [aug(img) for _ in range(20)]
    np.random.seed(3)
    b = [aug(img) for _ in range(20)]
    assert all(x.dtype == np.uint8 and x.shape == (37, 50, 3) for x in a)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert any(not np.array_equal(x, np.array(img)) for x in a)  # some op changed the image


def test_random_augment_rejects_unknown_op():
    with pytest.raises(ValueError, match="Solarise"):
        ra.RandomAugment(augs=["Solarise"])


def test_magnitudes_at_m5_match_official_levels():
    assert ra._enhance_args(5) == (1.0,)  # Brightness/Sharpness at M=5 are the identity, as official
    np.random.seed(0)
    assert abs(ra._shear_args(5)[0]) == pytest.approx(0.15)
    assert abs(ra._translate_args(5)[0]) == pytest.approx(5.0)
    assert abs(ra._rotate_args(5)[0]) == pytest.approx(15.0)
    assert ra._rotate_args(5)[1] == (128, 128, 128)


def test_autocontrast_and_equalize_match_pil():
    img = _photo(seed=1)
    arr = (np.array(img) // 3 + 40).astype(np.uint8)  # a low-contrast image
    assert np.array_equal(ra.autocontrast(arr), np.array(ImageOps.autocontrast(Image.fromarray(arr))))
    assert np.array_equal(ra.equalize(arr), np.array(ImageOps.equalize(Image.fromarray(arr))))
    flat = np.full((4, 4, 3), 77, np.uint8)
    assert np.array_equal(ra.autocontrast(flat), flat)


def test_brightness_and_sharpness_identity_at_factor_one():
    arr = np.array(_photo())
    assert np.array_equal(ra.brightness(arr, 1.0), arr)
    assert np.array_equal(ra.sharpness(arr, 1.0), arr)
    assert np.array_equal(ra.brightness(arr, 0.5), (arr.astype(np.float32) * 0.5).astype(np.uint8))
    out = ra.sharpness(arr, 1.9)
    assert np.array_equal(out[0], arr[0]) and np.array_equal(out[:, -1], arr[:, -1])  # borders kept


def _dot(h=9, w=9, y=4, x=4):
    arr = np.zeros((h, w, 3), np.uint8)
    arr[y, x] = 255
    return arr


def test_translate_moves_pixels_left_and_up_by_offset_with_fill():
    out = ra.translate_x(_dot(), 2.0, fill=(128, 128, 128))
    assert out[4, 2].tolist() == [255] * 3 and out[4, 4].tolist() == [0] * 3
    assert out[0, -1].tolist() == [128] * 3 and out[0, -3].tolist() == [0] * 3  # vacated columns filled
    out = ra.translate_y(_dot(), -3.0)
    assert out[7, 4].tolist() == [255] * 3


def test_shear_follows_opencv_forward_matrix():
    out = ra.shear_x(_dot(y=4, x=2), 0.5)  # (x, y) -> (x + 0.5 y, y)
    assert out[4, 4].tolist() == [255] * 3
    out = ra.shear_y(_dot(y=2, x=4), 0.5)  # (x, y) -> (x, y + 0.5 x)
    assert out[4, 4].tolist() == [255] * 3
    assert np.array_equal(ra.shear_x(_dot(), 0.0), _dot())


def test_rotate_is_counter_clockwise_about_the_centre():
    arr = np.zeros((10, 10, 3), np.uint8)
    arr[5, 8] = 255  # right of the centre (5, 5)
    out = ra.rotate(arr, 90)
    assert out[2, 5].tolist() == [255] * 3  # counter-clockwise: now above the centre
    assert np.array_equal(ra.rotate(arr, 0), arr)


def test_geometric_ops_match_opencv_when_it_is_installed():
    """The official ops run cv2.warpAffine; ours agree to within one intensity level on a few pixels (rounding
    of exact ties; OpenCV versions differ there too). OpenCV is not a dependency: runs only where installed."""
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(45, 61, 3), dtype=np.uint8)
    fill = (128, 128, 128)

    def official(matrix):
        return cv2.warpAffine(img, np.asarray(matrix), (61, 45), borderValue=fill, flags=cv2.INTER_LINEAR)

    cases = [
        (ra.shear_x(img, 0.15, fill), official(np.float32([[1, 0.15, 0], [0, 1, 0]]))),
        (ra.shear_y(img, -0.15, fill), official(np.float32([[1, 0, 0], [-0.15, 1, 0]]))),
        (ra.translate_x(img, 5.0, fill), official(np.float32([[1, 0, -5.0], [0, 1, 0]]))),
        (ra.rotate(img, 15.0, fill), official(cv2.getRotationMatrix2D((30.5, 22.5), 15.0, 1))),
    ]
    for ours, theirs in cases:
        diff = np.abs(ours.astype(int) - theirs.astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 0.05


def test_train_augment_light_is_a_mild_crop_only_and_none_is_the_test_transform():
    light = create_transform(24, train=True, augment="light")
    assert [type(s).__name__ for s in light.transforms] == ["RandomResizedCrop", "ToTensor", "Normalize"]
    assert light.transforms[0].scale == (0.8, 1.0) and light.transforms[0].interpolation.value == "bicubic"
    none, test = create_transform(24, train=True, augment="none"), create_transform(24, train=False)
    assert torch.equal(none(_photo()), test(_photo()))
    # light keeps left and right: a mark on the left half stays on the left half (no flip) in every draw
    img = Image.new("RGB", (40, 40), (255, 255, 255))
    img.paste((0, 0, 0), (2, 10, 12, 30))
    for seed in range(20):
        torch.manual_seed(seed)
        dark = light(img).mean(0) < 0
        cols = dark.nonzero()[:, 1]
        assert cols.numel() and cols.float().mean() < 12


def test_unknown_train_augment_names_the_known_ones():
    with pytest.raises(ValueError, match="official, light, none"):
        create_transform(24, train=True, augment="strong")
