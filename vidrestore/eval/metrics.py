"""Metrics, each with the definition it implements. Images are (B, 3, H, W) floats in [0, 1].

* PSNR: ``10 log10(1 / MSE)``.
* SSIM: Wang et al. 2004, 11x11 Gaussian window (sigma 1.5), via kornia.
* Identity cosine: cosine of dlib's 128-d descriptors (same person ~> 0.9; dlib's own threshold is
  a Euclidean distance of 0.6).
* Warping error: mean absolute difference between frame ``i`` and frame ``i-1`` warped along the
  flow, inside the forward-backward-consistent mask (Lai et al., ECCV 2018).
* Flicker index: the same motion-compensated difference, taken on the high-frequency band (image
  minus its Gaussian blur, sigma 2). Reported with the input's value beside it; their ratio is
  below 1 when restoration flickers less than the input.
* Identity stability: mean cosine of each frame's descriptor to the track's mean descriptor.
* Landmark distance: mean distance between the 5 landmarks found on the restored and on the
  reference image, over the reference's inter-ocular distance (NME, as in face alignment papers).
* NIQE (no reference): see :mod:`vidrestore.eval.niqe`.
LPIPS, FID and ArcFace need weights that are not available offline. They are reported as
unavailable and never approximated under their names.
"""

from __future__ import annotations

import kornia
import numpy as np
import torch

from ..diffusion.flow import warp

UNAVAILABLE = {"lpips": "unavailable (no weights)", "fid": "unavailable (no weights)",
               "arcface_identity": "unavailable (no weights)"}


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    mse = (a - b).pow(2).flatten(1).mean(1).clamp_min(1e-12)
    return 10 * torch.log10(1 / mse)


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return kornia.metrics.ssim(a, b, 11).flatten(1).mean(1)


def identity_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two (N, D) descriptor arrays."""
    a = a / np.linalg.norm(a, axis=1, keepdims=True).clip(1e-8)
    b = b / np.linalg.norm(b, axis=1, keepdims=True).clip(1e-8)
    return (a * b).sum(1)


def _motion_compensated_diff(frames: torch.Tensor, flows: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Per-step masked mean |x_i - W(x_{i-1})| for i = 1..T-1; ``flows[i]`` maps frame i to i-1."""
    prev = warp(frames[:-1], flows[1:])
    diff = (frames[1:] - prev).abs().mean(1, keepdim=True) * valid[1:]
    return diff.flatten(1).sum(1) / valid[1:].flatten(1).sum(1).clamp_min(1)


def per_step_warping_error(frames: torch.Tensor, flows: torch.Tensor, valid: torch.Tensor) -> np.ndarray:
    """Warping error between each frame and the previous one (T-1 values)."""
    return _motion_compensated_diff(frames, flows, valid).numpy() if len(frames) > 1 else np.zeros(0)


def landmark_distance(found: np.ndarray, reference: np.ndarray) -> float:
    """Mean 5-point landmark distance over the reference's inter-ocular distance."""
    inter_ocular = np.linalg.norm(reference[1] - reference[0])
    return float(np.linalg.norm(found - reference, axis=1).mean() / max(inter_ocular, 1e-6))


def warping_error(frames: torch.Tensor, flows: torch.Tensor, valid: torch.Tensor) -> float:
    if len(frames) < 2:
        return 0.0
    return float(_motion_compensated_diff(frames, flows, valid).mean())


def high_frequency(frames: torch.Tensor, sigma: float = 2.0) -> torch.Tensor:
    k = int(2 * round(3 * sigma) + 1)
    return frames - kornia.filters.gaussian_blur2d(frames, (k, k), (sigma, sigma))


def flicker(frames: torch.Tensor, flows: torch.Tensor, valid: torch.Tensor) -> float:
    return warping_error(high_frequency(frames), flows, valid)


def identity_stability(descriptors: np.ndarray) -> float:
    if len(descriptors) == 0:
        return float("nan")
    return float(identity_cosine(descriptors, np.repeat(descriptors.mean(0, keepdims=True), len(descriptors), 0)).mean())
