import cv2
import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from torchvision import transforms

from appzoo.blip_retrieval.data import randaugment as ra
from appzoo.blip_retrieval.data.transforms import (
    CLIP_MEAN, CLIP_STD, ToNormalizedTensor, create_transform, official_transform,
)

LOW = min((0 - m) / s for m, s in zip(CLIP_MEAN, CLIP_STD))
HIGH = max((1 - m) / s for m, s in zip(CLIP_MEAN, CLIP_STD))
FILL = (128, 128, 128)


def _photo(w=50, h=37, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8))


def _smooth_photo(w=61, h=45, seed=0):
    """Photo-like content (smooth, every channel reaching 0 somewhere or not, by seed)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(4, 5, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize((w, h), Image.BICUBIC)


@pytest.mark.parametrize("train", [True, False])
def test_transform_shape_and_range(train):
    np.random.seed(0)
    torch.manual_seed(0)
    t = create_transform(32, train=train)
    for seed in range(10):
        x = t(_photo(seed=seed))
        assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and x.is_contiguous()
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
    assert names == ["RandomResizedCrop", "RandomHorizontalFlip", "RandomAugment", "ToNormalizedTensor"]
    crop, aug, to_tensor = t.transforms[0], t.transforms[2], t.transforms[3]
    assert crop.scale == (0.5, 1.0) and crop.interpolation.value == "bicubic"
    assert (aug.N, aug.M, aug.isPIL) == (2, 5, True)
    assert aug.augs == ["Identity", "AutoContrast", "Brightness", "Sharpness", "Equalize",
                        "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate"]
    assert (to_tensor.mean, to_tensor.std) == (CLIP_MEAN, CLIP_STD)


def test_to_normalized_tensor_equals_totensor_then_normalize_on_every_value():
    every = np.stack(np.meshgrid(np.arange(256), np.arange(3), indexing="ij"), -1)[..., 0]  # [256, 3]
    image = np.repeat(every[None].astype(np.uint8), 2, axis=0)  # [2, 256, 3]: each value in each channel
    official = transforms.Compose([transforms.ToTensor(), transforms.Normalize(CLIP_MEAN, CLIP_STD)])
    ours = ToNormalizedTensor(CLIP_MEAN, CLIP_STD)
    assert torch.equal(ours(image), official(image))
    assert torch.equal(ours(_photo()), official(_photo()))  # a PIL image
    with pytest.raises(ValueError, match="HWC uint8"):
        ours(np.zeros((4, 4), np.uint8))


@pytest.mark.parametrize("train", [True, False])
def test_ours_equals_the_official_composition(train):
    """Same seeds -> the same tensor, bit for bit, as torchvision's ToTensor + Normalize after the same ops."""
    ours, official = create_transform(40, train), official_transform(40, train)
    for seed in range(12):
        image = _smooth_photo(seed=seed)
        torch.manual_seed(seed)
        np.random.seed(seed)
        a = ours(image)
        torch.manual_seed(seed)
        np.random.seed(seed)
        b = official(image)
        assert torch.equal(a, b), seed


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


def test_random_augment_draws_numpy_numbers_in_the_official_order():
    """Official __call__: choice of N ops, then per op a draw against prob 0.5 and, when applied, the
    op's own sign draw."""
    aug = ra.RandomAugment(2, 5, isPIL=True)
    image = np.array(_smooth_photo(seed=4))
    for seed in range(30):
        np.random.seed(seed)
        ours = aug(image)
        np.random.seed(seed)
        expected = image
        for name in np.random.choice(list(ra.OFFICIAL_AUGS), 2):
            if np.random.random() > 0.5:
                continue
            fn, to_args = ra.OPS[name]
            expected = fn(expected, *to_args(5))
        assert np.array_equal(ours, expected), seed
        next_expected = np.random.random()
        np.random.seed(seed)
        aug(image)
        assert np.random.random() == next_expected  # the same number of draws


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


def test_autocontrast_is_the_official_one():
    """PIL's autocontrast on a channel whose minimum is 0; the official uint8 wrap (`-low` on a uint8 is
    256 - low) turns a channel whose minimum is above 0 into 255."""
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 200, size=(20, 30, 3), dtype=np.uint8)
    arr[0, 0] = 0  # every channel's minimum is 0
    assert np.array_equal(ra.autocontrast(arr), np.array(ImageOps.autocontrast(Image.fromarray(arr))))
    lifted = arr.copy()
    lifted[:, :, 1] = np.maximum(lifted[:, :, 1], 40)  # channel 1: minimum 40
    out = ra.autocontrast(lifted)
    assert np.array_equal(out[:, :, [0, 2]], np.array(ImageOps.autocontrast(Image.fromarray(arr)))[:, :, [0, 2]])
    assert (out[:, :, 1] == 255).all()
    flat = np.full((4, 4, 3), 77, np.uint8)
    assert np.array_equal(ra.autocontrast(flat), flat)


def test_equalize_matches_pil():
    arr = (np.array(_photo(seed=1)) // 3 + 40).astype(np.uint8)  # a low-contrast image
    assert np.array_equal(ra.equalize(arr), np.array(ImageOps.equalize(Image.fromarray(arr))))
    flat = np.full((4, 4, 3), 9, np.uint8)
    assert np.array_equal(ra.equalize(flat), flat)


def test_brightness_and_sharpness():
    arr = np.array(_photo())
    assert np.array_equal(ra.brightness(arr, 1.0), arr)
    assert np.array_equal(ra.sharpness(arr, 1.0), arr)
    assert np.array_equal(ra.brightness(arr, 0.5), (arr.astype(np.float32) * 0.5).astype(np.uint8))
    kernel = np.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]], np.float32) / 13
    smooth = cv2.filter2D(arr, -1, kernel)
    assert np.array_equal(ra.sharpness(arr, 0.0), smooth)
    out = ra.sharpness(arr, 0.4)
    assert np.array_equal(out[0], arr[0]) and np.array_equal(out[:, -1], arr[:, -1])  # borders kept
    inner = smooth[1:-1, 1:-1].astype(np.float32)
    expected = (inner + 0.4 * (arr[1:-1, 1:-1].astype(np.float32) - inner)).astype(np.uint8)
    assert np.array_equal(out[1:-1, 1:-1], expected)


def _dot(h=9, w=9, y=4, x=4):
    arr = np.zeros((h, w, 3), np.uint8)
    arr[y, x] = 255
    return arr


def test_translate_moves_pixels_left_and_up_by_offset_with_fill():
    out = ra.translate_x(_dot(), 2.0, fill=FILL)
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


def test_geometric_ops_are_the_official_opencv_calls():
    """The official ops: cv2.warpAffine(img, M, (W, H), borderValue=fill, flags=INTER_LINEAR) with these
    float32 matrices, and getRotationMatrix2D((W/2, H/2), degree, 1) for Rotate: equal bit for bit."""
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(45, 61, 3), dtype=np.uint8)

    def official(matrix):
        return cv2.warpAffine(img, matrix, (61, 45), borderValue=FILL, flags=cv2.INTER_LINEAR).astype(np.uint8)

    cases = [
        (ra.shear_x(img, 0.15, FILL), official(np.float32([[1, 0.15, 0], [0, 1, 0]]))),
        (ra.shear_y(img, -0.15, FILL), official(np.float32([[1, 0, 0], [-0.15, 1, 0]]))),
        (ra.translate_x(img, 5.0, FILL), official(np.float32([[1, 0, -5.0], [0, 1, 0]]))),
        (ra.translate_y(img, -5.0, FILL), official(np.float32([[1, 0, 0], [0, 1, 5.0]]))),
        (ra.rotate(img, 15.0, FILL), official(cv2.getRotationMatrix2D((30.5, 22.5), 15.0, 1))),
    ]
    for ours, theirs in cases:
        assert ours.dtype == np.uint8 and np.array_equal(ours, theirs)


def test_train_augment_light_is_a_mild_crop_only_and_none_is_the_test_transform():
    light = create_transform(24, train=True, augment="light")
    assert [type(s).__name__ for s in light.transforms] == ["RandomResizedCrop", "ToNormalizedTensor"]
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
