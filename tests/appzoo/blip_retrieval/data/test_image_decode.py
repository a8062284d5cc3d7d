"""Every image mode Pillow opens becomes the right 8-bit RGB image or is refused: official convert('RGB')
where that is right (8-bit modes, alpha dropped), 16-bit samples scaled, float samples refused."""
import io
import warnings

import numpy as np
import pytest
from PIL import Image

from appzoo.blip_retrieval.data.datasets import RetrievalEvalDataset
from appzoo.blip_retrieval.data.image_decode import decode_rgb
from appzoo.blip_retrieval.data.transforms import create_transform
from easyretrieval.errors import UserError


def encoded(image, fmt, **kwargs):
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def official(data):
    """What official BLIP reads: Image.open(...).convert('RGB')."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def rgba_picture():
    pixels = np.zeros((6, 8, 4), np.uint8)
    pixels[..., 0] = np.arange(8) * 30
    pixels[..., 1] = 200
    pixels[..., 2] = np.arange(6)[:, None] * 40
    pixels[..., 3] = np.where(np.arange(8) < 4, 255, 0)  # right half transparent
    return Image.fromarray(pixels, "RGBA")


def palette_with_transparency():
    image = Image.new("P", (4, 4))
    image.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    image.putpixel((1, 1), 1)
    return encoded(image, "PNG", transparency=0)


@pytest.mark.parametrize("name,data", [
    ("RGB JPEG", encoded(rgba_picture().convert("RGB"), "JPEG", quality=95)),
    ("L PNG", encoded(rgba_picture().convert("L"), "PNG")),
    ("1 PNG", encoded(rgba_picture().convert("1"), "PNG")),
    ("RGBA PNG", encoded(rgba_picture(), "PNG")),
    ("LA PNG", encoded(rgba_picture().convert("LA"), "PNG")),
    ("P PNG", encoded(rgba_picture().convert("RGB").convert("P"), "PNG")),
    ("P PNG with transparency", palette_with_transparency()),
    ("CMYK JPEG", encoded(rgba_picture().convert("RGB").convert("CMYK"), "JPEG", quality=95)),
    ("CMYK TIFF", encoded(rgba_picture().convert("RGB").convert("CMYK"), "TIFF")),
])
def test_eight_bit_modes_read_as_official(name, data):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. Pillow's palette-transparency warning: none is printed
        ours = decode_rgb(data)
    assert ours.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(ours), official(data))


def test_alpha_is_dropped_not_composited():
    ours = np.asarray(decode_rgb(encoded(rgba_picture(), "PNG")))
    np.testing.assert_array_equal(ours, np.asarray(rgba_picture())[..., :3])  # the colour under alpha 0 kept


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_sixteen_bit_grayscale_is_scaled_not_clipped(fmt):
    samples = np.array([[0, 257, 32896, 65535], [128, 129, 60000, 1000]], np.uint16)
    data = encoded(Image.fromarray(samples), fmt)
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    ours = np.asarray(decode_rgb(data))
    expected = np.round(samples / 257.0).astype(np.uint8)
    np.testing.assert_array_equal(ours[..., 0], expected)
    assert (ours[..., 0] == ours[..., 2]).all()
    assert official(data)[0, 3, 0] == 255 and official(data)[1, 3, 0] == 255  # official clips 1000 to white


def test_sixteen_bit_pgm_opens_as_i_and_is_scaled():
    data = b"P5\n3 1\n65535\n" + np.array([0, 32768, 65535], ">u2").tobytes()
    assert Image.open(io.BytesIO(data)).mode == "I"
    np.testing.assert_array_equal(np.asarray(decode_rgb(data))[0, :, 1], [0, 128, 255])


@pytest.mark.parametrize("image,match", [
    (Image.fromarray(np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4)), "mode F"),
    (Image.fromarray((np.arange(16, dtype=np.int32) * 100000).reshape(4, 4)), "outside the 16-bit range"),
])
def test_unknown_ranges_are_refused(image, match):
    with pytest.raises(ValueError, match=match):
        decode_rgb(encoded(image, "TIFF"))


def test_a_refused_mode_is_one_line_naming_the_file(tmp_path):
    Image.fromarray(np.zeros((4, 4), np.float32)).save(tmp_path / "depth.tif")
    import json

    (tmp_path / "val.json").write_text(json.dumps([{"image": "depth.tif", "caption": ["a depth map"]}]))
    dataset = RetrievalEvalDataset(str(tmp_path / "val.json"), str(tmp_path), create_transform(32, train=False))
    with pytest.raises(UserError) as info:
        dataset[0]
    assert "depth.tif" in str(info.value) and "mode F" in str(info.value) and "\n" not in str(info.value)


def test_truncated_file_fails():
    data = encoded(rgba_picture().convert("RGB").resize((64, 64)), "JPEG", quality=95)
    with pytest.raises(OSError):
        decode_rgb(data[:300])


def test_exif_orientation_is_not_applied():
    image = rgba_picture().convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    ours = decode_rgb(encoded(image, "PNG", exif=exif))
    assert ours.size == image.size  # as official: pixels as stored
