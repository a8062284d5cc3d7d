"""An image file's bytes -> the RGB PIL image the transforms take.

Official BLIP reads `Image.open(path).convert('RGB')`. We do exactly that where Pillow's conversion keeps
the picture, and convert correctly, or refuse, where it does not:

- 8-bit modes (1, L, P, PA, LA, RGB, RGBA, RGBX, CMYK, YCbCr, LAB, HSV): `convert('RGB')`, as official.
  Alpha is dropped, not composited onto a background: a transparent pixel shows the colour stored under
  it (often black). CMYK uses Pillow's plain formula (no ICC colour management), as official. A palette
  image with transparency goes through RGBA first: the same pixels, without Pillow's warning.
- Premultiplied alpha (La, RGBa): un-premultiplied (LA, RGBA) first, then as above.
- 16-bit grayscale (I;16, I;16B, I;16L, I;16N) and 32-bit integer `I` images whose samples lie in
  0..65535 (what Pillow opens 16-bit PNG, PGM and TIFF files as): scaled to 8 bits, round(v / 257).
  Pillow's `convert('RGB')` would clip every sample above 255 to white.
- 32-bit float (F) images, and `I` images with samples outside 0..65535: refused (ValueError), because
  their value range is unknown; save them as 8- or 16-bit images.
- EXIF orientation is not applied (official BLIP does not apply it either: a photo stored sideways with an
  orientation tag is seen sideways). Multi-frame files (GIF, TIFF) give their first frame.
"""
import io

import numpy as np
from PIL import Image

SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")


def _sixteen_bit_to_rgb(image):
    samples = np.asarray(image).astype(np.int64)
    low, high = int(samples.min()), int(samples.max())
    if low < 0 or high > 65535:
        raise ValueError(f"mode {image.mode} image with samples {low}..{high}, outside the 16-bit range "
                         "0..65535 whose scale is known; save it as an 8- or 16-bit image")
    eight_bit = ((samples + 128) // 257).astype(np.uint8)  # round(v / 257): 0 -> 0, 65535 -> 255
    return Image.fromarray(eight_bit, "L").convert("RGB")


def to_rgb(image: Image.Image) -> Image.Image:
    """`image` (decoded in full here, so a truncated file fails) as an 8-bit RGB image; ValueError when its
    mode has no known conversion (see the module docstring)."""
    mode = image.mode
    if mode in SIXTEEN_BIT_MODES or mode == "I":
        image.load()
        return _sixteen_bit_to_rgb(image)
    if mode == "F":
        raise ValueError("mode F (32-bit float samples) has no known value range; save the image as an 8- or "
                         "16-bit image")
    if mode in ("La", "RGBa"):
        image = image.convert(mode[:-1] + "A")
    elif mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    image.load()  # the full decode, so that a truncated file fails here
    return image if image.mode == "RGB" else image.convert("RGB")  # (convert would copy an RGB image)


def decode_rgb(data: bytes) -> Image.Image:
    """The bytes of an image file as an 8-bit RGB image (see `to_rgb`)."""
    return to_rgb(Image.open(io.BytesIO(data)))
