"""Optical flow between aligned face crops, occlusion masks, and warping.

Flow comes from OpenCV's DIS estimator (Kroeger et al., ECCV 2016): no weights, ~20 ms per
512 px pair on 2 CPU cores. A batch's pairs run on a thread pool (OpenCV lets go of the GIL), so a
many-core host keeps up with a GPU; masks are computed for the whole batch at once. Occlusions are found with the forward-backward test of Sundaram et al.
(ECCV 2010): a pixel is valid when ``|f + b(p + f)|^2 < a (|f|^2 + |b(p + f)|^2) + c``.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import torch
import torch.nn.functional as F


def _gray(crop: np.ndarray) -> np.ndarray:
    g = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    return cv2.GaussianBlur(g, (0, 0), 1.0)  # LQ crops are noisy; DIS tracks structure, not grain


def gray_flow(src_gray: np.ndarray, dst_gray: np.ndarray) -> np.ndarray:
    """Flow (H, W, 2) such that ``src(p) ~ dst(p + flow(p))``, between :func:`_gray` images."""
    return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(src_gray, dst_gray, None)


def dis_flow(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Flow (H, W, 2) such that ``src(p) ~ dst(p + flow(p))``, for RGB uint8 crops."""
    return gray_flow(_gray(src), _gray(dst))


def sampling_grid(flow: torch.Tensor) -> torch.Tensor:
    """``grid_sample``'s grid (B, H, W, 2) for reading at ``p + flow(p)``; ``flow`` (B, 2, H, W) in pixels."""
    h, w = flow.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(h, device=flow.device), torch.arange(w, device=flow.device), indexing="ij")
    gx = (xs + flow[:, 0]) * 2 / max(w - 1, 1) - 1
    gy = (ys + flow[:, 1]) * 2 / max(h - 1, 1) - 1
    return torch.stack([gx, gy], -1)


def warp_by_grid(image: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Sample ``image`` (B, C, H, W) at a :func:`sampling_grid`."""
    return F.grid_sample(image, grid.to(image.dtype), mode="bilinear", padding_mode="border", align_corners=True)


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``image`` (B, C, H, W) at ``p + flow(p)``; ``flow`` (B, 2, H, W) in pixels."""
    return warp_by_grid(image, sampling_grid(flow))


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


def pair_flows(crops: np.ndarray, pairs: list[tuple[int, int]], device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """For crops (T, H, W, 3) uint8 and ``pairs`` of their indices (i, j): the flow from crop i to
    crop j (P, 2, H, W; ``crop_i(p) ~ crop_j(p + flow(p))``) and its validity mask (P, 1, H, W), on ``device``."""
    with ThreadPoolExecutor(max(1, min(len(pairs), os.cpu_count() or 1))) as pool:
        grays = list(pool.map(_gray, crops))
        # each pair's flow, then its flow back, which the mask tests it against
        both = np.stack(list(pool.map(lambda pair: gray_flow(grays[pair[0]], grays[pair[1]]), [*pairs, *((j, i) for i, j in pairs)])))
    both = torch.from_numpy(both).permute(0, 3, 1, 2).to(device)
    flows, back = both[: len(pairs)], both[len(pairs) :]
    return flows, consistency_mask(back, flows)


def flows_to_previous(crops: np.ndarray, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """For consecutive crops (T, H, W, 3) uint8, the flow from each frame to the one before it and
    its validity mask, on ``device``. Entry 0 is zero flow with an all-invalid mask (no previous frame)."""
    t, h, w, _ = crops.shape
    flows = torch.zeros(t, 2, h, w, device=device)
    masks = torch.zeros(t, 1, h, w, device=device)
    if t >= 2:
        flows[1:], masks[1:] = pair_flows(crops, [(i, i - 1) for i in range(1, t)], device)
    return flows, masks
