"""RandomAugment of official BLIP (transform/randaugment.py at 056a169), on OpenCV as the official.

The ten operations of the retrieval recipe, each computing what the official function computes, bit for
bit: the same OpenCV calls (warpAffine, getRotationMatrix2D, filter2D, calcHist) and the same numpy
arithmetic, with the per-channel lookup tables applied through cv2.LUT. Same magnitudes, probabilities
and random-number use as the official (the global `np.random`): each call samples N ops with replacement
and applies each with probability 0.5 at level M. Images are HWC uint8 numpy arrays; like the official, a
PIL input (isPIL=True) is converted and a numpy array is returned.
"""
import cv2
import numpy as np

MAX_LEVEL = 10
TRANSLATE_CONST = 10
REPLACE_VALUE = (128, 128, 128)
OFFICIAL_AUGS = (
    "Identity", "AutoContrast", "Brightness", "Sharpness", "Equalize",
    "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate",
)
_SHARPNESS_KERNEL = np.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]], dtype=np.float32) / 13


# ---- ops on HWC uint8 arrays -------------------------------------------------------------------------
def identity(img):
    return img


def _apply_tables(img, tables):
    """img [H, W, C] uint8, tables [C] arrays of 256 uint8 -> each channel through its table."""
    return cv2.LUT(img, np.stack(tables, axis=1).reshape(1, 256, len(tables)))


def _autocontrast_table(ch):
    low, high = int(ch.min()), int(ch.max())
    if high <= low:
        return np.arange(256, dtype=np.uint8)
    scale = 255 / (high - low)
    # The official writes `-low * scale` with `low` a numpy uint8 scalar: the negation wraps to 256 - low
    # (0 stays 0). Kept: a channel whose minimum is above 0 therefore comes out all 255.
    offset = ((-low) % 256) * scale
    table = np.arange(256) * scale + offset
    table[table < 0] = 0
    table[table > 255] = 255
    return table.clip(0, 255).astype(np.uint8)


def autocontrast(img):
    """Official autocontrast_func (cutoff 0): PIL's autocontrast on channels whose minimum is 0; a
    non-constant channel whose minimum is above 0 becomes 255 (the official uint8 wrap, see above)."""
    return _apply_tables(img, [_autocontrast_table(img[:, :, c]) for c in range(img.shape[2])])


def _equalize_table(ch):
    hist = cv2.calcHist([ch], [0], None, [256], [0, 256])  # float32 [256, 1], as official
    non_zero = hist[hist != 0].reshape(-1)
    step = np.sum(non_zero[:-1]) // 255
    if step == 0:
        return np.arange(256, dtype=np.uint8)
    n = np.empty_like(hist)
    n[0] = step // 2
    n[1:] = hist[:-1]
    return (np.cumsum(n) // step).clip(0, 255).astype(np.uint8)


def equalize(img):
    """Official equalize_func: PIL.ImageOps.equalize's histogram equalisation, per channel."""
    return _apply_tables(img, [_equalize_table(np.ascontiguousarray(img[:, :, c])) for c in range(img.shape[2])])


def brightness(img, factor):
    table = (np.arange(256, dtype=np.float32) * factor).clip(0, 255).astype(np.uint8)
    return cv2.LUT(img, table)


def sharpness(img, factor):
    """Official sharpness_func: blend with cv2.filter2D's 3x3 smoothing (1,1,1/1,5,1/1,1,1 over 13); the
    one-pixel border keeps the input unless factor is 0."""
    if factor == 1.0:
        return img
    degenerate = cv2.filter2D(img, -1, _SHARPNESS_KERNEL)
    if factor == 0.0:
        return degenerate
    out = img.astype(np.float32)
    degenerate = degenerate.astype(np.float32)[1:-1, 1:-1, :]
    out[1:-1, 1:-1, :] = degenerate + factor * (out[1:-1, 1:-1, :] - degenerate)
    return out.astype(np.uint8)


def _warp(img, matrix, fill):
    height, width = img.shape[0], img.shape[1]
    return cv2.warpAffine(img, matrix, (width, height), borderValue=fill, flags=cv2.INTER_LINEAR)


def shear_x(img, factor, fill=(0, 0, 0)):
    return _warp(img, np.float32([[1, factor, 0], [0, 1, 0]]), fill)


def shear_y(img, factor, fill=(0, 0, 0)):
    return _warp(img, np.float32([[1, 0, 0], [factor, 1, 0]]), fill)


def translate_x(img, offset, fill=(0, 0, 0)):
    return _warp(img, np.float32([[1, 0, -offset], [0, 1, 0]]), fill)


def translate_y(img, offset, fill=(0, 0, 0)):
    return _warp(img, np.float32([[1, 0, 0], [0, 1, -offset]]), fill)


def rotate(img, degree, fill=(0, 0, 0)):
    """Counter-clockwise by `degree` about (W/2, H/2), like PIL rotate (official rotate_func)."""
    height, width = img.shape[0], img.shape[1]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degree, 1)
    return _warp(img, matrix, fill)


# ---- level -> arguments (official: signs drawn from np.random) -----------------------------------------
def _no_args(level):
    return ()


def _enhance_args(level):
    return ((level / MAX_LEVEL) * 1.8 + 0.1,)


def _shear_args(level):
    level = (level / MAX_LEVEL) * 0.3
    if np.random.random() > 0.5:
        level = -level
    return (level, REPLACE_VALUE)


def _translate_args(level):
    level = (level / MAX_LEVEL) * float(TRANSLATE_CONST)
    if np.random.random() > 0.5:
        level = -level
    return (level, REPLACE_VALUE)


def _rotate_args(level):
    level = (level / MAX_LEVEL) * 30
    if np.random.random() < 0.5:
        level = -level
    return (level, REPLACE_VALUE)


OPS = {
    "Identity": (identity, _no_args),
    "AutoContrast": (autocontrast, _no_args),
    "Equalize": (equalize, _no_args),
    "Brightness": (brightness, _enhance_args),
    "Sharpness": (sharpness, _enhance_args),
    "ShearX": (shear_x, _shear_args),
    "ShearY": (shear_y, _shear_args),
    "TranslateX": (translate_x, _translate_args),
    "TranslateY": (translate_y, _translate_args),
    "Rotate": (rotate, _rotate_args),
}


class RandomAugment:
    """N ops drawn with replacement from `augs`, each applied with probability 0.5 at magnitude M."""

    def __init__(self, N=2, M=5, isPIL=True, augs=OFFICIAL_AUGS):
        unknown = [a for a in augs if a not in OPS]
        if unknown:
            raise ValueError(f"unknown augmentation(s) {unknown}; known: {', '.join(OPS)}")
        self.N, self.M, self.isPIL = N, M, isPIL
        self.augs = list(augs) if augs else list(OPS)

    def __call__(self, img):
        if self.isPIL:
            img = np.array(img)
        for name in np.random.choice(self.augs, self.N):
            if np.random.random() > 0.5:
                continue
            fn, to_args = OPS[name]
            img = fn(img, *to_args(self.M))
        return img

    def __repr__(self):
        return f"RandomAugment(N={self.N}, M={self.M}, augs={self.augs})"
