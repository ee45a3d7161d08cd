"""Optical flow between aligned face crops, occlusion masks, and warping.

Flow comes from OpenCV's DIS estimator (Kroeger et al., ECCV 2016): no weights, ~20 ms per
512 px pair on 2 CPU cores. Occlusions are found with the forward-backward test of Sundaram et al.
(ECCV 2010): a pixel is valid when ``|f + b(p + f)|^2 < a (|f|^2 + |b(p + f)|^2) + c``.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F


def _gray(crop: np.ndarray) -> np.ndarray:
    g = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    return cv2.GaussianBlur(g, (0, 0), 1.0)  # LQ crops are noisy; DIS tracks structure, not grain


def dis_flow(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Flow (H, W, 2) such that ``src(p) ~ dst(p + flow(p))``, for RGB uint8 crops."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(_gray(src), _gray(dst), None)


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``image`` (B, C, H, W) at ``p + flow(p)``; ``flow`` (B, 2, H, W) in pixels."""
    h, w = image.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(h, device=image.device), torch.arange(w, device=image.device), indexing="ij")
    gx = (xs + flow[:, 0]) * 2 / max(w - 1, 1) - 1
    gy = (ys + flow[:, 1]) * 2 / max(h - 1, 1) - 1
    grid = torch.stack([gx, gy], -1).to(image.dtype)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


def consistency_mask(fwd: torch.Tensor, bwd: torch.Tensor, alpha: float = 0.01, beta: float = 0.5) -> torch.Tensor:
    """Valid-pixel mask (B, 1, H, W) for flow ``bwd`` (current -> previous) given ``fwd`` (previous -> current)."""
    _, _, h, w = bwd.shape
    fwd_at = warp(fwd, bwd)
    diff = (bwd + fwd_at).pow(2).sum(1, keepdim=True)
    mag = bwd.pow(2).sum(1, keepdim=True) + fwd_at.pow(2).sum(1, keepdim=True)
    ok = diff < alpha * mag + beta
    ys, xs = torch.meshgrid(torch.arange(h, device=bwd.device), torch.arange(w, device=bwd.device), indexing="ij")
    tx, ty = xs + bwd[:, 0], ys + bwd[:, 1]
    inside = (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)
    return (ok & inside[:, None]).float()


def flows_to_previous(crops: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """For consecutive crops (T, H, W, 3) uint8, the flow from each frame to the one before it and
    its validity mask. Entry 0 is zero flow with an all-invalid mask (no previous frame)."""
    t, h, w, _ = crops.shape
    flows = np.zeros((t, 2, h, w), np.float32)
    masks = torch.zeros(t, 1, h, w)
    for i in range(1, t):
        bwd = torch.from_numpy(dis_flow(crops[i], crops[i - 1])).permute(2, 0, 1)[None]
        fwd = torch.from_numpy(dis_flow(crops[i - 1], crops[i])).permute(2, 0, 1)[None]
        flows[i] = bwd[0].numpy()
        masks[i] = consistency_mask(fwd, bwd)[0]
    return torch.from_numpy(flows), masks
