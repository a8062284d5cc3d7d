"""RandomAugment of official BLIP (transform/randaugment.py), in numpy without OpenCV.

Same op list, magnitudes, probabilities and random-number use as the official (global `np.random`):
each call samples N ops with replacement, applies each with probability 0.5 at level M. Images are HWC
uint8 numpy arrays; like the official, a PIL input (isPIL=True) is converted and a numpy array is returned
(torchvision's ToTensor accepts it). Geometric ops follow OpenCV's `warpAffine` convention (forward matrix,
integer pixel coordinates, bilinear, constant border) so that shear/translate/rotate move pixels the same
way as the official.
"""
import math

import numpy as np

MAX_LEVEL = 10
TRANSLATE_CONST = 10
REPLACE_VALUE = (128, 128, 128)
OFFICIAL_AUGS = (
    "Identity", "AutoContrast", "Brightness", "Sharpness", "Equalize",
    "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate",
)


# ---- ops on HWC uint8 arrays -------------------------------------------------------------------------
def identity(img):
    return img


def _per_channel(img, tune):
    return np.stack([tune(img[:, :, c]) for c in range(img.shape[2])], axis=2)


def autocontrast(img):
    """PIL.ImageOps.autocontrast (cutoff 0): stretch each channel's [min, max] to [0, 255]."""

    def tune(ch):
        low, high = int(ch.min()), int(ch.max())
        if high <= low:
            return ch
        scale = 255.0 / (high - low)
        table = np.arange(256) * scale - low * scale
        return np.clip(table, 0, 255).astype(np.uint8)[ch]

    return _per_channel(img, tune)


def equalize(img):
    """PIL.ImageOps.equalize (the official reimplementation): histogram equalisation per channel."""

    def tune(ch):
        hist = np.bincount(ch.reshape(-1), minlength=256).astype(np.float64)
        non_zero = hist[hist != 0]
        step = np.sum(non_zero[:-1]) // 255
        if step == 0:
            return ch
        n = np.empty_like(hist)
        n[0] = step // 2
        n[1:] = hist[:-1]
        table = np.clip(np.cumsum(n) // step, 0, 255).astype(np.uint8)
        return table[ch]

    return _per_channel(img, tune)


def brightness(img, factor):
    table = np.clip(np.arange(256, dtype=np.float32) * factor, 0, 255).astype(np.uint8)
    return table[img]


def sharpness(img, factor):
    """Blend with a 3x3 smoothing of the image (kernel 1,1,1/1,5,1/1,1,1 over 13); borders unchanged."""
    if factor == 1.0:
        return img
    f = img.astype(np.float32)
    pad = np.pad(f, ((1, 1), (1, 1), (0, 0)), mode="reflect")  # OpenCV's default border (reflect-101)
    h, w = img.shape[:2]
    blur = sum(pad[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)) + 4.0 * f
    blur = blur / 13.0
    degenerate = np.clip(np.rint(blur), 0, 255)
    if factor == 0.0:
        return degenerate.astype(np.uint8)
    out = f.copy()
    inner = degenerate[1:-1, 1:-1]
    out[1:-1, 1:-1] = inner + factor * (f[1:-1, 1:-1] - inner)
    return out.astype(np.uint8)


def warp_affine(img, matrix, fill):
    """OpenCV warpAffine(img, matrix, (W, H), borderValue=fill, INTER_LINEAR) in numpy.

    `matrix` (2x3) maps source to destination; each destination pixel samples the source at the inverse
    map with bilinear weights, pixels outside the source taking `fill`.
    """
    h, w = img.shape[:2]
    m = np.vstack([np.asarray(matrix, dtype=np.float64), [0.0, 0.0, 1.0]])
    inv = np.linalg.inv(m)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    sx = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    sy = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    x0, y0 = np.floor(sx).astype(np.int64), np.floor(sy).astype(np.int64)
    ax, ay = (sx - x0)[..., None], (sy - y0)[..., None]
    padded = np.empty((h + 2, w + 2, img.shape[2]), dtype=np.float64)
    padded[:] = np.asarray(fill, dtype=np.float64)
    padded[1:-1, 1:-1] = img

    def at(yy, xx):  # source pixel, or fill outside (indices shifted by the 1-pixel frame)
        return padded[np.clip(yy + 1, 0, h + 1), np.clip(xx + 1, 0, w + 1)]

    out = ((1 - ay) * ((1 - ax) * at(y0, x0) + ax * at(y0, x0 + 1))
           + ay * ((1 - ax) * at(y0 + 1, x0) + ax * at(y0 + 1, x0 + 1)))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def shear_x(img, factor, fill=(0, 0, 0)):
    return warp_affine(img, np.float32([[1, factor, 0], [0, 1, 0]]), fill)  # float32 as official


def shear_y(img, factor, fill=(0, 0, 0)):
    return warp_affine(img, np.float32([[1, 0, 0], [factor, 1, 0]]), fill)


def translate_x(img, offset, fill=(0, 0, 0)):
    return warp_affine(img, np.float32([[1, 0, -offset], [0, 1, 0]]), fill)


def translate_y(img, offset, fill=(0, 0, 0)):
    return warp_affine(img, np.float32([[1, 0, 0], [0, 1, -offset]]), fill)


def rotate(img, degree, fill=(0, 0, 0)):
    """Counter-clockwise by `degree` about the centre (OpenCV getRotationMatrix2D, like PIL rotate)."""
    h, w = img.shape[:2]
    cx, cy = w / 2, h / 2
    a, b = math.cos(math.radians(degree)), math.sin(math.radians(degree))
    return warp_affine(img, [[a, b, (1 - a) * cx - b * cy], [-b, a, b * cx + (1 - a) * cy]], fill)


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
